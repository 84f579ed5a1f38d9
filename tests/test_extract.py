import pytest
from hypothesis import given
from hypothesis import strategies as st

from handful.extract import clean, extract_answer, last_boxed, split_thinking
from handful.notation import leading_number, stand_in_subscripts

balanced = st.recursive(
    st.text(alphabet="abcxyz0123456789+-^_ ", min_size=1, max_size=6),
    lambda inner: st.builds(lambda a, b: f"{a}{{{b}}}", st.text(alphabet="\\frac", max_size=5), inner),
    max_leaves=6,
)


@given(balanced, st.text(alphabet="abc .,", max_size=20))
def test_last_boxed_recovers_balanced_content(content, prefix):
    if content.strip():
        assert last_boxed(f"{prefix} \\boxed{{{content}}} done.") == content.strip()


def test_nested_braces_and_fbox():
    assert last_boxed("x \\boxed{\\frac{1}{\\sqrt{2}}} y") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\fbox{3}") == "3"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("\\boxed{5}" * 3000) == "5"  # repeats collapse to one answer


def test_split_thinking():
    assert split_thinking("<think>a</think>b") == ("a", "b")
    assert split_thinking("<think>a") == ("a", "")
    assert split_thinking("plain") == (None, "plain")
    assert split_thinking("<|begin_of_thought|>t<|end_of_thought|>x", "<|begin_of_thought|>", "<|end_of_thought|>") == (
        "t",
        "x",
    )


def test_clean_strips_wrappers():
    assert clean(" $\\frac{1}{2}$. I hope it is correct.") == "\\frac{1}{2}"
    assert clean("**42**.") == "42"
    assert clean("\\(x+1\\)") == "x+1"


def test_methods_are_reported():
    assert extract_answer("Final Answer: The final answer is $5$. I hope it is correct.").answer == "5"
    assert extract_answer("#### 12").method == "hashes"
    assert extract_answer("<think>\\boxed{3}</think>").method == "boxed@thinking"
    assert extract_answer("no digits").method == "none"


def test_thinking_ends_at_the_first_closing_delimiter():
    assert split_thinking("a</think>b</think>c") == ("a", "b</think>c")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Thus the side is \\(s = 4\\).", "4"),
        ("The roots are \\(x = 1\\) and \\(x = -2\\).", "1, -2"),
        ("Since \\(x = 2\\), we get \\(y = 5\\).", "5"),  # not a list: only the last is the answer
        ("So the probability is $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("The degree of \\(f(x)\\) is 3.", None),  # math as the subject, not the answer
        ("We found \\(x = 3\\).\n\nWe are done", None),  # only the closing sentence counts
    ],
)
def test_inline_math_closing_the_last_sentence(text, expected):
    found = extract_answer(text)
    assert (found.answer, found.method) == ((expected, "inline") if expected else (None, "none"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("There are 1164 such times on a 24-hour clock.", "1164"),  # "24-hour" describes
        ("So she needs 45 minutes to finish all 3 tasks.", "45"),  # stated after "needs"
        ("The total is 9 + 9 = 18 for the 2 days.", "18"),  # the last stated number
        ("Then = 4 \\cdot 2 and 7", "7"),  # 4 starts an expression, it is no result
        ("She ate 3 and gave away 2", "2"),  # nothing stated: the last number, as before
        ("The count is 12.\n\nI hope it is correct.", "12"),  # a sentence without numbers is skipped
    ],
)
def test_the_last_number_prefers_a_stated_result(text, expected):
    assert extract_answer(text, last_number=True) == (expected, "last_number")


@pytest.mark.parametrize(
    "answer, number",
    [
        ("1680 distinct", "1680"),
        ("12 \\text{ cm}", "12"),
        ("1.54 Å", "1.54"),
        ("1.5 \\times 10^{-3} mol", "1.5 \\times 10^{-3}"),
        ("2 and 3", None),
        ("3 sin x", None),
        ("2x", None),
        ("5 + y", None),
        ("3 \\sqrt{2}", None),
    ],
)
def test_a_number_followed_by_words(answer, number):
    assert leading_number(answer) == number


def test_stand_ins_name_one_symbol_alike_on_both_sides():
    gold, pred = stand_in_subscripts("E_{1}+2E_{2}", "2E_2+E_1")
    (g1, g2), (p2, p1) = gold.split("+"), pred.split("+")
    assert "_" not in gold + pred and g1 == p1 and g2 == p2 and g1 != g2.lstrip("2")
    gold, pred = stand_in_subscripts("\\xi + a_1", "a_{1}")
    assert gold.startswith("\\xi + ") and pred.strip() == gold.removeprefix("\\xi + ").strip() != "\\xi"
