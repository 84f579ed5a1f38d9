"""`handful audit`: a second, independent grader over stored samples. The rule grader's reading
and equality rules, its deadline, the agreement numbers and the disagreement list of a real
eval folder, the folders it refuses, and an LLM judge served by llama.cpp."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from handful import rule_grader
from handful.audit import Audit, audit
from handful.cli import app
from handful.errors import ConfigError
from handful.evaluation import posed
from handful.grading import KILL_GRACE, GradeRequest
from handful.judge import OUTCOMES, UNCLEAR, Case, Judge, question, read_reply
from handful.models import ModelSpec
from handful.records import Generation, Problem, read_jsonl, write_jsonl

RUNNER = CliRunner()
SPEC = "dyn:addition?digits=3&n=20&seed=9"
BENCHMARK = "dyn:addition?digits=3"


def cli(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout + result.stderr


# ---- the rule grader -------------------------------------------------------------------

CASES = [
    # only the part after the thinking is read when there is one
    ("The answer is</think>\n\nFinal Answer: 720.", "720", "correct", "720"),
    # (output, reference, outcome, answer read)
    ("so \\boxed{\\dfrac{1}{2}} it is", "0.5", "correct", "\\dfrac{1}{2}"),
    ("\\boxed{1} first, then \\boxed{7}", "7", "correct", "7"),
    ("The answer is 42. Next question", "42", "correct", "42"),
    ("the answer is $\\frac{3}{4}$. I hope it is right", "0.75", "correct", "\\frac{3}{4}"),
    ("first 3, then a total of 1,234 apples", "1234", "correct", "1234"),
    ("\\boxed{3/4}", "\\frac34", "correct", "3/4"),
    ("\\boxed{2\\pi}", "\\pi \\cdot 2", "correct", "2\\pi"),
    ("\\boxed{6.2832}", "2\\pi", "correct", "6.2832"),
    ("\\boxed{\\sin(\\pi/6)}", "\\frac{1}{2}", "correct", "\\sin(\\pi/6)"),
    ("\\boxed{\\frac{\\pi}{3}}", "\\frac{\\pi}{2}", "incorrect", "\\frac{\\pi}{3}"),
    ("\\boxed{(1, 2)}", "(1,2)", "correct", "(1, 2)"),
    ("\\boxed{(2, 1)}", "(1,2)", "incorrect", "(2, 1)"),
    ("\\boxed{(1, 2]}", "(1,2)", "incorrect", "(1, 2]"),
    ("\\boxed{\\left( -\\infty, 3 \\right]}", "(-\\infty,3]", "correct", "\\left( -\\infty, 3 \\right]"),
    ("\\boxed{\\{2, 1\\}}", "\\{1,2\\}", "correct", "\\{2, 1\\}"),
    ("\\boxed{3, 1}", "1, 3", "correct", "3, 1"),
    ("\\boxed{25\\%}", "25", "correct", "25\\%"),
    ("\\boxed{0.25}", "25\\%", "correct", "0.25"),
    ("\\boxed{12\\text{ cm}^2}", "12", "correct", "12\\text{ cm}^2"),
    ("\\boxed{\\$1,000}", "1000", "correct", "\\$1,000"),
    ("\\boxed{30^\\circ}", "30", "correct", "30^\\circ"),
    ("\\boxed{x = 3}", "3", "correct", "x = 3"),
    ("\\boxed{x \\le 3}", "x\\leq 3", "correct", "x \\le 3"),
    ("\\boxed{3}", "x<=3", "incorrect", "3"),
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", "correct", "\\text{Evelyn}"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", "correct", "x^2+2x+1"),
    ("\\boxed{sqrt(2)/2}", "\\frac{\\sqrt{2}}{2}", "correct", "sqrt(2)/2"),
    ("\\boxed{3+4i}", "3 + 4i", "correct", "3+4i"),
    ("\\boxed{4}", "5", "incorrect", "4"),
    ("\\boxed{x^2+1}", "(x+1)^2", "incorrect", "x^2+1"),
    ("\\boxed{\\sqrt{3}}", "\\sqrt{2}", "incorrect", "\\sqrt{3}"),
    ("\\boxed{1.0002}", "1", "incorrect", "1.0002"),
    ("\\boxed{Ann}", "\\text{Evelyn}", "incorrect", "Ann"),
    ("I cannot tell.", "5", "no_answer", None),
    ("\\boxed{5}", "\\{foo\\bar", "unparseable_gold", "5"),
]


@pytest.mark.parametrize(("output", "reference", "outcome", "answer"), CASES)
def test_rule_grader_reads_and_compares_as_qwen_does(output, reference, outcome, answer):
    grade = rule_grader.check(GradeRequest(output, reference))
    assert (grade.outcome, grade.extracted) == (outcome, answer)
    assert grade.correct == (outcome == "correct")


def test_answers_are_never_run_as_python(capfd):
    # sympy's text parser evaluates its input: only arithmetic and known function names reach it.
    grade = rule_grader.check(GradeRequest("\\boxed{print(4242)}", "5"))
    assert grade.outcome == "incorrect" and "4242" not in capfd.readouterr().out


def test_rule_grader_reads_letters_and_cut_off_outputs():
    four = ("w", "x", "y", "z")
    assert rule_grader.check(GradeRequest("I pick (B).", "B", "choice", four)).outcome == "correct"
    assert rule_grader.check(GradeRequest("\\boxed{\\text{(C)}}", "B", "choice", four)).extracted == "C"
    assert rule_grader.check(GradeRequest("no letter here", "B", "choice", four)).outcome == "no_answer"
    # The main grader counts only an answer a cut-off output marked as final; Qwen's rules read it all.
    cut = GradeRequest("<think>so \\boxed{7} maybe", "7", truncated=True)
    assert rule_grader.check(cut).outcome == "correct"
    with pytest.raises(ValueError, match="countdown"):
        rule_grader.check(GradeRequest("\\boxed{(1+2)*8}", "24", "countdown", ("1", "2", "8")))


def test_a_check_that_would_run_for_minutes_is_stopped_at_its_deadline():
    requests = [GradeRequest("\\boxed{(10^{7})!}", "5"), GradeRequest("\\boxed{5}", "5")]
    start = time.monotonic()
    grades = rule_grader.grade(requests, workers=1, timeout=1.0)
    elapsed = time.monotonic() - start
    assert [g.outcome for g in grades] == ["timeout", "correct"]
    assert grades[0].extracted == "(10^{7})!" and grades[0].method == "rules:timeout"  # its own reading
    # a batch, then the culprit alone, each within its deadline and the kill grace
    assert elapsed < 2 * (2 * 1.0 + KILL_GRACE) + 5


# ---- the audit of an eval folder ---------------------------------------------------------


@pytest.fixture(scope="module")
def program_eval(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "eval"
    code, text = cli("eval", "--model", tiny_model, "--engine", "program", "--benchmark", SPEC, "--out", out)
    assert code == 0, text
    return out


def with_known_verdicts(folder) -> tuple[list[Generation], list[str]]:
    """Four samples rewritten, each with the verdict a main grader stores for it, so that the
    expected audit does not depend on the main grader's current rules; and the references.
    0: cut off in its thinking with the right answer boxed there: stored no_answer, the rules read it;
    1: the answer divided by 100: stored incorrect, the rules accept a percent form;
    2: a wrong answer: both incorrect;
    3: a wrong box, then the right answer in words: stored correct, the rules read the last box."""
    samples = read_jsonl(folder / "samples.jsonl", Generation)
    problems = posed(folder)
    answers = [problems[(g.benchmark, g.problem_id)].answer for g in samples]
    a = answers
    texts = [
        (f"<think>working so \\boxed{{{a[0]}}} maybe", "no_answer", None, "length"),
        (f"<think>ok</think> so \\boxed{{{int(a[1]) / 100}}}", "incorrect", str(int(a[1]) / 100), "stop"),
        (f"<think>ok</think> so \\boxed{{{int(a[2]) + 1}}}", "incorrect", str(int(a[2]) + 1), "stop"),
        (f"<think>ok</think> not \\boxed{{{int(a[3]) + 1}}}: the final answer is {a[3]}.", "correct", a[3], "stop"),
    ]
    for i, (text, outcome, extracted, finish) in enumerate(texts):
        samples[i] = samples[i].model_copy(
            update={
                "text": text,
                "finish_reason": finish,
                "outcome": outcome,
                "correct": outcome == "correct",
                "extracted": extracted,
                "canonical": extracted,
            }
        )
    write_jsonl(folder / "samples.jsonl", samples)
    return samples, answers


@pytest.fixture(scope="module")
def audited(program_eval, tmp_path_factory):
    folder = tmp_path_factory.mktemp("audited") / "eval"
    shutil.copytree(program_eval, folder)
    return (folder, *with_known_verdicts(folder))


def snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_disagreements(samples, a, folder="."):
    return [
        (folder, samples[0].problem_id, "no_answer", None, "correct", a[0], a[0]),
        (folder, samples[1].problem_id, "incorrect", str(int(a[1]) / 100), "correct", str(int(a[1]) / 100), a[1]),
        (folder, samples[3].problem_id, "correct", a[3], "incorrect", str(int(a[3]) + 1), a[3]),
    ]


def shown(found: Audit) -> list[tuple]:
    return [
        (d.folder, d.problem_id, d.main.outcome, d.main.answer, d.second.outcome, d.second.answer, d.reference)
        for d in found.disagreements
    ]


def test_agreement_and_every_disagreement(audited):
    folder, samples, answers = audited
    before = snapshot(folder)
    found = audit(folder, workers=1)
    assert snapshot(folder) == before  # read only
    [row] = found.benchmarks
    assert (row.folder, row.benchmark, row.graded, row.agreed, row.unclear, row.skipped) == (
        ".",
        BENCHMARK,
        20,
        17,
        0,
        0,
    )
    assert row.rate == pytest.approx(0.85)
    assert row.ci95 == pytest.approx(proportion_confint(17, 20, alpha=0.05, method="wilson"))
    assert (row.main_accuracy, row.second_accuracy) == (pytest.approx(17 / 20), pytest.approx(18 / 20))
    assert found.pooled.model_dump(exclude={"folder", "benchmark"}) == row.model_dump(exclude={"folder", "benchmark"})
    assert shown(found) == expected_disagreements(samples, answers)
    assert {d.benchmark for d in found.disagreements} == {BENCHMARK}
    assert found.second == "rules" and found.main_grader == sorted({g.grader for g in samples})


def test_a_folder_of_eval_folders_is_audited_folder_by_folder_and_pooled(audited, tmp_path):
    folder, samples, answers = audited
    for name in ("a", "b"):
        shutil.copytree(folder, tmp_path / "runs" / name)
    found = audit(tmp_path / "runs", workers=1)
    assert [(r.folder, r.graded, r.agreed) for r in found.benchmarks] == [("a", 20, 17), ("b", 20, 17)]
    assert (found.pooled.graded, found.pooled.agreed) == (40, 34)
    assert shown(found) == expected_disagreements(samples, answers, "a") + expected_disagreements(samples, answers, "b")
    limited = audit(tmp_path / "runs", limit=5, workers=1)
    assert [r.graded for r in limited.benchmarks] == [5, 5]
    again = audit(tmp_path / "runs", limit=5, workers=1)
    assert again == limited  # the same seeded subset of problems


def test_the_command_prints_agreement_and_disagreements(audited):
    folder, samples, answers = audited
    code, text = cli("audit", folder)
    assert code == 0, text
    assert "0.850 [0.640, 0.948]" in text and "0.900" in text and "3 disagreements" in text
    assert (
        f"{samples[3].problem_id}#0 (reference '{answers[3]}'): stored correct '{answers[3]}', rules incorrect" in text
    )
    printed = RUNNER.invoke(app, ["audit", str(folder), "--json"])
    assert printed.exit_code == 0, printed.stderr
    assert Audit.model_validate(json.loads(printed.stdout)) == audit(folder, workers=1)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("empty", "no eval run here"),
        ("missing", "no such directory"),
        ("--judge program", "cannot judge"),
        ("--judge openai:", "--judge 'openai:': no model after 'openai:'"),
    ],
)
def test_what_cannot_be_audited_is_named(audited, tmp_path, given, message):
    folder, _, _ = audited
    if given == "empty":
        (tmp_path / "empty").mkdir()
        args = [tmp_path / "empty"]
    elif given == "missing":
        args = [tmp_path / "missing"]
    else:
        args = [folder, *given.split()]
    code, text = cli("audit", *args)
    assert code == 1 and message in text and "Traceback" not in text
    if given in ("empty", "missing"):
        assert str(args[0]) in text
        with pytest.raises(ConfigError, match=str(args[0])):
            audit(args[0])


# ---- the judge -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("CORRECT", "correct"),
        ("  **Incorrect.**", "incorrect"),
        ("CORRECT\nThe answers match.", "correct"),
        ("The answer is CORRECT", UNCLEAR),
        ("NOT CORRECT", UNCLEAR),
        ("CORRECTNESS", UNCLEAR),
        ("", UNCLEAR),
    ],
)
def test_a_judges_reply_is_read_strictly(reply, outcome):
    assert read_reply(reply) == outcome


def test_the_judge_reads_the_end_of_a_response_after_its_thinking():
    problem = Problem(id="p", source="t", question="What is 2 + 2?", answer="4")
    long = Case(problem, "<think>" + "x" * 50_000 + "</think>So \\boxed{4}.", ModelSpec())
    assert "So \\boxed{4}." in question(long) and "xxx" not in question(long)
    unfinished = Case(problem, "<think>" + "y" * 50_000 + " so 4", ModelSpec())
    asked = question(unfinished)
    assert asked.count("y") < 2100 and "so 4" in asked and "Reference answer: 4" in asked


def test_an_llm_judge_through_a_server(server, audited):
    folder, _, _ = audited
    judge = Judge("smollm2-135m", "openai", base_url=server.url)
    found = audit(folder, judge, limit=3)
    assert found.second == "judge openai:smollm2-135m"
    row = found.pooled
    assert row.graded == 3 and row.agreed + len(found.disagreements) == row.graded
    assert {d.second.outcome for d in found.disagreements} <= set(OUTCOMES)
    assert row.unclear == sum(d.second.outcome == UNCLEAR for d in found.disagreements)
    rulings = judge.rule([Case(Problem(id="p", source="t", question="2 + 2?", answer="4"), "\\boxed{4}", ModelSpec())])
    assert [r.outcome in OUTCOMES for r in rulings] == [True]
