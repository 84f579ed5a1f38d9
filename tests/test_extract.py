from hypothesis import given
from hypothesis import strategies as st

from handful.extract import clean, extract_answer, last_boxed, split_thinking

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
