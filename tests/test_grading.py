import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handful.grading import Grader, GradeRequest, _under_deadline, check, check_with_deadline

# (gold, prediction, answer_format, correct); most come from math-verify's issue list.
CASES = [
    ("1, 2", "So the roots are \\boxed{1}, \\boxed{2}.", "math", True),  # multiple boxed (#44)
    ("1, 2", "\\boxed{1} and \\boxed{2}", "math", True),
    ("3", "I think \\boxed{1}. Checking again, the answer is \\boxed{3}", "math", True),  # far-apart boxes: last wins
    ("3x-y+13=0", "\\boxed{3x+4y+14=0}", "math", False),  # equations must not collapse to 0 = 0 (#60)
    ("3x-y+13=0", "\\boxed{6x-2y+26=0}", "math", True),
    ("f(x) = 0", "\\boxed{f(x) = 1}", "math", False),  # (#64)
    (
        "\\frac{9}{7}",
        "the result is \\dfrac{9}{7}. The answer is $\\dfrac{9}{7}$",
        "math",
        True,
    ),  # \dfrac unboxed (#70)
    ("73", "Thus ... is **73**.\n\n---\n\nFinal Answer: **73**", "math", True),  # bold (#76)
    ("73", "the number of residents is **73**.", "integer", True),
    ("1-\\frac1{e}", "\\boxed{1+\\frac1{e}}", "math", False),  # sign must matter (PR #82)
    ("1-\\frac1{e}", "\\boxed{1-\\frac{1}{e}}", "math", True),
    ("25", "\\boxed{025}", "integer", True),  # AIME zero padding
    ("25", "\\boxed{25.0}", "integer", True),
    ("25", "\\boxed{26}", "integer", False),
    ("1000", "#### 1,000", "integer", True),  # GSM8K thousands comma
    ("27", "\\boxed{27.0}", "integer", True),  # AMC floats
    ("90^\\circ", "\\boxed{90}", "math", True),
    ("90", "\\boxed{90^\\circ}", "math", True),
    ("\\text{Evelyn}", "The answer is Evelyn.", "math", True),
    ("\\text{Evelyn}", "\\boxed{\\text{Bob}}", "math", False),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\boxed{(3, \\frac{\\pi}{2})}", "math", True),
    ("[2,5)", "\\boxed{[2,5)}", "math", True),
    ("[2,5)", "\\boxed{(2,5)}", "math", False),
    ("\\frac{1}{2}", "\\fbox{0.5}", "math", True),
    (
        "5",
        "<think>Maybe \\boxed{4}?</think>The answer is \\boxed{5}. \\boxed{}",
        "math",
        True,
    ),  # after thinking, trailing empty box
    ("4", "<think>Maybe \\boxed{4}?</think>The answer is \\boxed{5}.", "math", False),
    ("4", "<think>so it is \\boxed{4}", "math", True),  # never closed thinking: fall back to it
    ("16", "<think>The answer is 16.\nWait</think>\n\nFinal Answer:", "math", True),  # an empty final answer
    ("18", "She makes 9 * 2 = 18 dollars a day.", "integer", True),  # last number, numeric gold only
    ("\\frac{14}{3}", "it is 14/3 maybe, or 5", "math", False),
    ("6 - 5i", "\\boxed{6-5i}", "math", True),
]


# (gold, prediction, correct), one group for each way a grader misses; each has a wrong answer that must stay wrong.
UNICODE_AND_WORDS = [
    ("x^2+1", "So \\boxed{x² + 1}.", True),
    ("x^3-1", "The result is **x³ − 1**.", True),
    ("x^2", "\\boxed{x³}", False),
    ("2\\pi", "The circumference is **2π**.", True),
    ("2\\pi", "\\boxed{3π}", False),
    ("3\\sqrt{2}", "\\boxed{3√2}", True),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{√3/2}", True),
    ("12", "\\boxed{3 × 4}", True),
    ("1.54", "The bond length is \\boxed{1.54 Å}.", True),
    ("1680", "So the count is **1680 distinct** arrangements.", True),
    ("1680", "So the count is **1681 distinct** arrangements.", False),
    ("15", "She has \\boxed{15 apples}.", True),
    ("12", "The side is \\boxed{12 cm}.", True),
    ("12", "The area is \\boxed{12\\ \\mathrm{cm}^2}.", True),
    ("40", "**40 students** signed up.", True),
    ("-5", "\\boxed{−5}", True),
    ("\\frac{1}{2}", "\\boxed{½}", True),
    ("5", "The answer is five.", True),
    ("5", "The answer is four.", False),
    ("3", "So the answer is three boxes.", True),
    ("3", "So the answer is three or four.", False),
]
SCIENTIFIC = [
    ("0.00001", "\\boxed{1e-5}", True),
    ("1e-5", "\\boxed{0.00001}", True),
    ("1.5 \\times 10^{-3}", "\\boxed{0.0015}", True),
    ("0.0015", "\\boxed{1.5 \\times 10^{-3}}", True),
    ("3\\times10^{8}", "\\boxed{3 \\cdot 10^8}", True),
    ("6.02 \\times 10^{23}", "The answer is 6.02e23.", True),
    ("1.5 \\times 10^{-3}", "\\boxed{1.5 \\times 10^{-4}}", False),
    ("0.0015", "\\boxed{1.5E-3}", True),
    ("0.0015", "\\boxed{1.5 x 10^-3}", True),
    ("0.0015", "\\boxed{1.5*10^(-3)}", True),
    ("2.5\\times 10^{4}", "\\boxed{25000}", True),
    ("2.5\\times 10^{4}", "\\boxed{2500}", False),
]
DEFINITIONS = [
    ("\\frac{1}{3}E_{1}+\\frac{2}{3}E_{2}", "\\boxed{\\frac{E_1}{3}+\\frac{2E_2}{3}}", True),
    ("\\frac{1}{3}E_{1}+\\frac{2}{3}E_{2}", "\\boxed{\\frac{2}{3}E_1+\\frac{1}{3}E_2}", False),
    ("f(x)=x+22", "\\boxed{x + 22}", True),
    ("f(x)=x+22", "\\boxed{x + 21}", False),
    ("y = 2x+3", "\\boxed{2x+3}", True),
    ("a_{n}=2^{n}-1", "\\boxed{2^n - 1}", True),
    ("a_{n}=2^{n}-1", "\\boxed{2^n + 1}", False),
    ("P(x)=x^2-1", "\\boxed{(x-1)(x+1)}", True),
    ("x_1 = 2, x_2 = 3", "\\boxed{2, 3}", True),
]
INLINE = [
    ("2", "Solving the system gives the time. Therefore, \\(t = 2\\).", True),
    ("2", "Solving the system gives the time. Therefore, \\(t = 3\\).", False),
    ("6, -\\frac{10}{3}", "The values are \\(m = 6\\) and \\(m = -\\frac{10}{3}\\).", True),
    ("6, -\\frac{10}{3}", "The values are \\(m = 6\\) and \\(m = \\frac{10}{3}\\).", False),
    ("\\frac{1}{2}", "Hence the probability is \\(\\frac{1}{2}\\).", True),
    ("\\sqrt{5}", "We use \\(d^2 = 1 + 4\\). So the distance is $\\sqrt{5}$.", True),
    ("\\sqrt{5}", "We use \\(d^2 = 1 + 4\\). So the distance is $\\sqrt{6}$.", False),
    ("\\frac{\\pi}{3}", "The angle between them is $\\theta = \\frac{\\pi}{3}$", True),
]
TRAILING_CLAUSE = [
    ("1164", "There are 1164 times when the display reads a palindrome on a 24-hour clock.", True),
    ("24", "There are 1164 times when the display reads a palindrome on a 24-hour clock.", False),
    ("45", "So she needs 45 minutes to finish all 3 tasks.", True),
    ("18", "The total is 9 + 9 = 18 for the 2 days.", True),
    ("12", "Each friend gets 12 cookies, since 36 split 3 ways.", True),
    ("7", "The answer: 7 people, in teams of 3.", True),
]
CLOSED_FORMS = [
    ("\\frac{\\sinh(at)}{a}", "\\boxed{\\frac{e^{at}-e^{-at}}{2a}}", True),
    ("\\frac{\\cosh(at)}{a}", "\\boxed{\\frac{e^{at}-e^{-at}}{2a}}", False),
    ("\\cos(2x)", "\\boxed{\\cos^2 x - \\sin^2 x}", True),
    ("3 \\pm 2\\sqrt{2}", "\\boxed{3+2\\sqrt{2}, 3-2\\sqrt{2}}", True),
    ("3+2\\sqrt{2}, 3-2\\sqrt{2}", "\\boxed{3 \\pm 2\\sqrt{2}}", True),
    ("3 \\pm 2\\sqrt{2}", "\\boxed{3+2\\sqrt{2}}", False),
    ("x = 3 \\pm 2\\sqrt{2}", "\\boxed{x=3-2\\sqrt{2}, x=3+2\\sqrt{2}}", True),
    ("\\frac{1}{1-x}", "\\boxed{1 + x + x^2 + \\dots}", False),
    ("\\ln 6", "\\boxed{\\ln 2 + \\ln 3}", True),
    ("x", "\\boxed{|x|}", False),  # equal only where x >= 0: the points include negatives
    ("x + 1", "\\boxed{y + 1}", False),  # another variable is another answer
    ("2", "\\boxed{2 and 3}", False),  # words that join answers are no unit
    ("5", "\\boxed{5 \\sin x}", False),
]
GROUPS = {
    "unicode/words": UNICODE_AND_WORDS,
    "scientific": SCIENTIFIC,
    "definitions": DEFINITIONS,
    "inline": INLINE,
    "trailing clause": TRAILING_CLAUSE,
    "closed forms": CLOSED_FORMS,
}
HARDER = [pytest.param(*case, id=f"{group}: {case[1][-40:]}") for group, cases in GROUPS.items() for case in cases]


@pytest.mark.parametrize("gold, pred, fmt, expected", CASES)
def test_regressions(gold, pred, fmt, expected):
    result = check(GradeRequest(pred, gold, fmt))
    assert result.correct is expected, result


@pytest.mark.parametrize("gold, pred, expected", HARDER)
def test_harder_cases(gold, pred, expected):
    result = check_with_deadline(GradeRequest(pred, gold), 5)
    assert result.correct is expected, result


def test_harder_cases_beat_plain_math_verify():
    """The reason these rules exist: plain `verify(parse(gold), parse(pred))` misses many of them."""
    from math_verify import parse, verify

    cases = [case.values for case in HARDER]
    ours = sum(check_with_deadline(GradeRequest(pred, gold), 5).correct is want for gold, pred, want in cases)
    plain = sum(bool(verify(parse(gold), parse(pred))) is want for gold, pred, want in cases)
    assert ours == len(cases) and plain < len(cases) - 10, (ours, plain)


def test_an_answer_sympy_cannot_print_is_graded_not_a_crash():
    """Omni-MATH's `2^{2015}+\\lfloor(3/2)^{2015}\\rfloor-2`: printing it runs sympy out of precision,
    which used to end the whole grading call with PrecisionExhausted."""
    gold = "2^{2015}+\\left\\lfloor\\left(\\frac{3}{2}\\right)^{2015}\\right\\rfloor-2"
    with Grader(workers=1, timeout=5) as grader:
        grades = grader.grade([GradeRequest(f"\\boxed{{{gold}}}", gold), GradeRequest("\\boxed{2}", "2")])
    assert grades[0].outcome in ("correct", "timeout") and grades[1].correct


def test_a_cut_off_output_gives_no_last_number():
    text = "She makes 9 * 2 = 18 dollars a day, then"
    assert check(GradeRequest(text, "18", "integer")).correct
    assert check(GradeRequest(text, "18", "integer", truncated=True)).outcome == "no_answer"
    assert check(GradeRequest(text + " \\boxed{18}", "18", "integer", truncated=True)).correct


def test_outcomes_are_explicit():
    assert check(GradeRequest("no answer here at all", "\\frac12")).outcome == "no_answer"
    assert check(GradeRequest("\\boxed{7}", "7")).outcome == "correct"
    assert check(GradeRequest("\\boxed{8}", "7")).outcome == "incorrect"
    weird = check(GradeRequest("\\boxed{\\foo}", "\\frac{1}{"))
    assert weird.outcome == "unparseable_gold" and not weird.correct
    # An unreadable reference still matches its own text exactly (Minerva has such answers).
    same = check(GradeRequest("\\boxed{np.arcsin(10/13)}", "np.arcsin(10/13)"))
    assert same.outcome == "correct" and same.correct


@pytest.mark.parametrize("fmt", ["math", "integer", "choice"])
def test_long_runs_of_blanks_do_not_backtrack_forever(fmt):
    texts = [
        "final answer" + " " * 20000,
        "answer" + " " * 20000 + "!",
        "the answer is" + " \n" * 10000,
        "\\boxed{1}" + " " * 20000 + "\\boxed{2}",
    ]
    with Grader(workers=1, timeout=3) as grader:
        results = grader.grade([GradeRequest(t, "2" if fmt != "choice" else "B", fmt) for t in texts])
    assert "timeout" not in [r.outcome for r in results]


def test_choice_letters():
    choices = ("10 eV", "20 eV", "30 eV", "40 eV")
    assert check(GradeRequest("The answer is (C).", "C", "choice", choices)).correct
    assert check(GradeRequest("Answer: B", "C", "choice", choices)).outcome == "incorrect"
    assert check(GradeRequest("\\boxed{\\text{C}}", "C", "choice", choices)).correct
    assert check(GradeRequest("\\boxed{30 eV}", "C", "choice", choices)).correct
    assert check(GradeRequest("I am not sure.", "C", "choice", choices)).outcome == "no_answer"


def test_canonical_answers_agree_for_equal_values():
    a = check(GradeRequest("\\boxed{27.0}", "27")).canonical
    b = check(GradeRequest("\\boxed{27}", "27")).canonical
    c = check(GradeRequest("\\boxed{0.5}", "1/2")).canonical
    d = check(GradeRequest("\\boxed{\\frac{1}{2}}", "1/2")).canonical
    assert a == b == "27" and c == d
    forms = ["\\boxed{0.0015}", "\\boxed{1.5 \\times 10^{-3}}", "\\boxed{1.5e-3}", "\\boxed{1.5 × 10⁻³}"]
    assert len({check(GradeRequest(f, "0.0015")).canonical for f in forms}) == 1
    # A percentage math-verify leaves unevaluated (7.2*(1/100)) is graded, not a crash, and votes with 0.072.
    assert check(GradeRequest("\\boxed{7.2\\%}", "7.2\\%")).correct
    assert check(GradeRequest("\\boxed{7.2\\%}", "1")).canonical == check(GradeRequest("\\boxed{0.072}", "1")).canonical
    assert check(GradeRequest("\\boxed{x²+1}", "x")).canonical == check(GradeRequest("\\boxed{x^2+1}", "x")).canonical


HANG = GradeRequest("\\boxed{9^{9^{9^{9}}}}", "5")  # sympy would work on this for hours


def test_a_slow_check_times_out_and_keeps_its_extraction():
    with Grader(workers=1, timeout=1.0) as grader:
        results = grader.grade([HANG, GradeRequest("\\boxed{5}", "5")])
    assert results[0].outcome == "timeout" and results[0].extracted == "9^{9^{9^{9}}}"
    assert results[1].outcome == "correct"


def _deaf_check(request, timeout):
    """Stands for C code that never looks at signals: SIGALRM is blocked while it spins."""
    if request.gold == "stuck":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            pass
    return check_with_deadline(request, timeout)


def test_a_worker_deaf_to_signals_is_killed_and_replaced():
    with Grader(workers=1, timeout=0.5, check_fn=_deaf_check) as grader:
        results = grader.grade([GradeRequest("\\boxed{1}", "stuck"), GradeRequest("\\boxed{5}", "5")])
    assert results[0].outcome == "timeout" and results[0].extracted == "1"
    assert results[1].outcome == "correct"  # the pool recovered after killing the worker


# Seconds of pure-Python parsing (100 terms took 1.6 s here, and warm caches made it finish inside a 0.2 s deadline
# after the rest of this file had run): 400 terms stay far past the deadlines below, and interruptible.
SLOW = GradeRequest("\\boxed{" + "+".join(f"x_{{{i}}}^{{{i}}}" for i in range(400)) + "}", "1")
# Pairs that only a real parse settles (the strings differ), unlike \\boxed{5} against 5.
NEEDS_PARSE = [GradeRequest("\\boxed{\\frac{1}{2}}", "0.5"), GradeRequest("\\boxed{x+1}", "1+x")]


def test_interval_timer_stops_slow_python_work_and_grading_goes_on():
    started = time.monotonic()
    with Grader(workers=0, timeout=0.2) as grader:
        assert grader.grade([SLOW])[0].outcome == "timeout"
        assert time.monotonic() - started < 2.5  # the timer fired; the parse did not just finish
        grader.timeout = 10
        assert [g.outcome for g in grader.grade(NEEDS_PARSE)] == ["correct", "correct"]


def test_a_worker_grades_on_after_a_timeout():
    with Grader(workers=1, timeout=0.5) as grader:
        results = grader.grade([SLOW, *NEEDS_PARSE])  # one batch: the same worker process throughout
    assert [r.outcome for r in results] == ["timeout", "correct", "correct"]


COLD = """
import sys
from handful.grading import Grader, GradeRequest
assert "math_verify" not in sys.modules and "sympy" not in sys.modules
slow = GradeRequest("\\\\boxed{" + "+".join(f"x_{{{i}}}^{{{i}}}" for i in range(100)) + "}", "1")
pairs = [GradeRequest("\\\\boxed{\\\\frac{1}{2}}", "0.5"), GradeRequest("\\\\boxed{x+1}", "1+x")]
with Grader(workers=int(sys.argv[1]), timeout=0.2) as grader:
    first = grader.grade([slow])[0].outcome
    grader.timeout = 10
    print(first, *[g.outcome for g in grader.grade(pairs)])
"""


@pytest.mark.parametrize("workers", [0, 1])
def test_the_first_check_of_a_process_times_out_without_breaking_the_next(workers):
    # A fresh process: math-verify is not imported yet, and importing it takes longer than
    # this deadline. Inside the deadline, the import was cut half-way and every later
    # parse failed (`unparseable_gold`).
    done = subprocess.run(
        [sys.executable, "-c", COLD, str(workers)], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["timeout", "correct", "correct"], done.stdout


def test_a_deadline_waits_for_an_import_to_finish(tmp_path, monkeypatch):
    # A deadline that lands inside an import (sympy imports lazily mid-check) must not leave
    # the module half-run in sys.modules.
    (tmp_path / "handful_slow_module.py").write_text(
        "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 0.5:\n    pass\nDONE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "handful_slow_module", raising=False)

    def import_then_spin(request):
        import handful_slow_module  # noqa: F401

        while True:
            pass

    assert _under_deadline(import_then_spin, GradeRequest("\\boxed{1}", "1"), 0.05).outcome == "timeout"
    assert sys.modules["handful_slow_module"].DONE
    monkeypatch.delitem(sys.modules, "handful_slow_module")


def test_grading_from_threads():
    results = {}

    def work(i):
        with Grader(workers=1, timeout=5) as grader:
            results[i] = grader.grade([GradeRequest(f"\\boxed{{{i}}}", str(i))])[0].correct

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: True, 1: True, 2: True}


def test_inline_grading_refuses_threads():
    errors = []

    def work():
        try:
            Grader(workers=0).grade([GradeRequest("\\boxed{1}", "1")])
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors and "main thread" in errors[0]


def test_agrees_with_published_labels():
    """Qwen2.5-Math's rule grader labels 800 answers; we should agree on nearly all."""
    with gzip.open(Path(__file__).parent / "data" / "qwen25math_math_cot_100.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == 100
    requests, labels = [], []
    for r in rows:
        for text, label in zip(r["code"], r["score"]):
            requests.append(GradeRequest(text, r["answer"]))
            labels.append(label)
    with Grader(workers=2, timeout=5) as grader:
        grades = grader.grade(requests)
    agreement = sum(g.correct == label for g, label in zip(grades, labels)) / len(labels)
    assert agreement >= 0.97, agreement


CUT_OFF_GUESSES = [
    # (text, gold, format): each is read as an answer when the output finished, never when it was cut off
    ("<think>Maybe \\boxed{18}? Let me check the", "18", "integer"),
    ("<think>so 18</think>Working: the answer is 18. But the carry", "18", "integer"),
    ("<think>ok</think>So far **18** apples, and then", "18", "math"),
    ("<think>ok</think>The total is 9 + 9 = 18 and", "18", "integer"),
    ("<think>ok</think>Option\n(B)\nlooks right but", "B", "choice"),
    ("<think>ok</think>Looking at the options:\nB. is tempting, however", "B", "choice"),
]


@pytest.mark.parametrize(("text", "gold", "fmt"), CUT_OFF_GUESSES)
def test_a_cut_off_output_is_never_counted_correct_by_a_fallback(text, gold, fmt):
    delimiters = ("<think>", "</think>")
    choices = ("1", "2", "3", "4") if fmt == "choice" else None
    finished = GradeRequest(text, gold, fmt, choices, delimiters)
    cut = GradeRequest(text, gold, fmt, choices, delimiters, True)
    assert check(finished).correct, check(finished)  # the fallback does find it when the output finished
    assert check(cut).outcome == "no_answer", check(cut)


@pytest.mark.parametrize(
    ("text", "gold", "fmt"),
    [
        ("<think>long</think>Final Answer: 18", "18", "integer"),
        ("<think>long</think>#### 18", "18", "integer"),
        ("<think>long</think>so \\boxed{18}", "18", "math"),
        ("<think>long</think>The answer is (B)", "B", "choice"),
    ],
)
def test_a_cut_off_output_with_a_marked_final_answer_still_counts(text, gold, fmt):
    choices = ("1", "2", "3", "4") if fmt == "choice" else None
    assert check(GradeRequest(text, gold, fmt, choices, ("<think>", "</think>"), True)).correct
