"""GRPO rewards and reward-hacking monitors (handful.training.rewards), on real grader calls."""

import subprocess
import sys

import pytest

from handful.errors import ConfigError
from handful.models import ModelSpec
from handful.training.rewards import Rewards, repeats

ALL = {"accuracy": 1.0, "format": 1.0, "overlong": 1.0}


def rewards(spec=None, weights=None, limit=100, buffer=20, **kw) -> Rewards:
    return Rewards(spec or ModelSpec(), weights or ALL, limit=limit, buffer=buffer, **kw)


# repeats(): one token 4-gram making up at least a fifth of a sample of 32 tokens or more.


def test_a_loop_of_one_phrase_repeats():
    assert repeats([1, 2, 3, 4] * 8)  # 32 tokens, one 4-gram 8 times
    assert repeats([7] * 40)  # overlapping grams count: (7, 7, 7, 7) 37 times


def test_distinct_tokens_do_not_repeat():
    assert not repeats(list(range(200)))
    assert not repeats([])


def test_short_samples_never_count_as_repetition():
    # Below 8 * n tokens a share means little: even a pure loop passes.
    assert not repeats([1, 2, 3, 4] * 7)  # 28 tokens
    assert not repeats([5] * 31)
    assert repeats([5] * 32)


def test_the_fifth_is_inclusive():
    # 80 tokens: a 4-gram seen 4 times covers 16 = 80 / 5 tokens; 3 times, 12.
    def sample(times):
        loop = [1, 2, 3, 4, 100] * times  # the 100 breaks the loop, so (1, 2, 3, 4) is counted `times` times
        return loop + list(range(1000, 1000 + 80 - len(loop)))

    assert len(sample(4)) == len(sample(3)) == 80
    assert repeats(sample(4))
    assert not repeats(sample(3))


def test_other_gram_sizes_and_shares():
    ids = [1, 2] * 4 + list(range(100, 124))  # 32 tokens; (1, 2) 4 times = 8 tokens = a quarter
    assert repeats(ids, n=2, share=0.25)
    assert not repeats(ids, n=2, share=0.3)


# Rewards.parts(): accuracy, format and the overlong penalty.


def test_accuracy_needs_the_answer_after_thinking_only_when_required():
    text = "<think>so it is \\boxed{8}"  # never closed
    assert rewards(require_closed_thinking=True).parts(text, 10, "8", "integer", None)["accuracy"] == 0.0
    assert rewards(require_closed_thinking=False).parts(text, 10, "8", "integer", None)["accuracy"] == 1.0
    # An answer in a closed thought, with a different one after it: the one after counts.
    closed = "<think>maybe \\boxed{8}</think> \\boxed{9}"
    assert rewards(require_closed_thinking=True).parts(closed, 10, "8", "integer", None)["accuracy"] == 0.0


def test_a_model_that_does_not_think_is_judged_on_its_answer():
    parts = rewards(require_closed_thinking=True).parts("The answer is \\boxed{8}.", 10, "8", "integer", None)
    assert parts == {"accuracy": 1.0, "format": 1.0, "overlong": 0.0}


def test_open_thinking_prompts_start_the_completion_inside_the_thought():
    spec = ModelSpec(open_thinking=True)
    r = rewards(spec, require_closed_thinking=True)
    assert r.parts("4+4 is 8</think>\n\n\\boxed{8}", 10, "8", "integer", None) == {
        "accuracy": 1.0,
        "format": 1.0,
        "overlong": 0.0,
    }
    # The same text without the close is still thinking: no answer, no format.
    assert r.parts("4+4 is \\boxed{8}", 10, "8", "integer", None) == {"accuracy": 0.0, "format": 0.0, "overlong": 0.0}


def test_format_is_a_box_after_the_thinking():
    r = rewards()
    assert r.parts("<think>x</think> The answer is 8.", 10, "8", "integer", None)["format"] == 0.0
    assert r.parts("<think>\\boxed{8}</think> The answer is 8.", 10, "8", "integer", None)["format"] == 0.0
    assert r.parts("<think>x</think> \\boxed{9}", 10, "8", "integer", None) == {
        "accuracy": 0.0,
        "format": 1.0,
        "overlong": 0.0,
    }


def test_other_delimiters_come_from_the_spec():
    spec = ModelSpec(think_open="<|begin_of_thought|>", think_close="<|end_of_thought|>")
    r = rewards(spec, require_closed_thinking=True)
    text = "<|begin_of_thought|>maybe \\boxed{8}<|end_of_thought|> so \\boxed{8}"
    assert r.parts(text, 10, "8", "integer", None) == {"accuracy": 1.0, "format": 1.0, "overlong": 0.0}
    assert r.parts("<think>x</think> \\boxed{8}", 10, "8", "integer", None)["accuracy"] == 1.0  # no thinking for it


@pytest.mark.parametrize(
    "tokens, penalty", [(0, 0.0), (80, 0.0), (81, -0.05), (90, -0.5), (99, -0.95), (100, -1.0), (5000, -1.0)]
)
def test_overlong_falls_linearly_over_the_buffer(tokens, penalty):
    overlong = rewards(limit=100, buffer=20).parts("\\boxed{8}", tokens, "8", "integer", None)["overlong"]
    assert overlong == pytest.approx(penalty)


def test_overlong_without_a_buffer_is_a_step_past_the_limit():
    r = rewards(limit=100, buffer=0)
    assert [r.parts("\\boxed{8}", t, "8", "integer", None)["overlong"] for t in (99, 100, 101)] == [0.0, 0.0, -1.0]


def test_choice_and_math_answers():
    choices = ["1 m", "2 m", "3 m", "4 m"]
    r = rewards()
    assert r.parts("<think>x</think> The answer is (C).", 10, "C", "choice", choices)["accuracy"] == 1.0
    assert r.parts("<think>x</think> The answer is (B).", 10, "C", "choice", choices)["accuracy"] == 0.0
    assert r.parts("<think>x</think> \\boxed{\\frac{1}{2}}", 10, "0.5", "math", None)["accuracy"] == 1.0


def test_a_check_past_its_deadline_earns_nothing_and_grading_goes_on():
    slow = "<think>x</think> \\boxed{" + "+".join(f"x_{{{i}}}^{{{i}}}" for i in range(100)) + "}"
    assert rewards(timeout=0.2).parts(slow, 10, "1", "math", None) == {"accuracy": 0.0, "format": 1.0, "overlong": 0.0}
    assert rewards().parts("<think>x</think> \\boxed{x+1}", 10, "1+x", "math", None)["accuracy"] == 1.0


COLD = """
from handful.models import ModelSpec
from handful.training.rewards import Rewards
slow = "<think>x</think> \\\\boxed{" + "+".join(f"x_{{{i}}}^{{{i}}}" for i in range(100)) + "}"
weights = {"accuracy": 1.0}
print(Rewards(ModelSpec(), weights, 100, 20, timeout=0.2).parts(slow, 10, "1", "math", None)["accuracy"])
r = Rewards(ModelSpec(), weights, 100, 20, timeout=10)
print(r.parts("<think>x</think> \\\\boxed{\\\\frac{1}{2}}", 10, "0.5", "math", None)["accuracy"])
print(r.parts("<think>x</think> \\\\boxed{x+1}", 10, "1+x", "math", None)["accuracy"])
"""


def test_the_first_reward_of_a_process_timing_out_does_not_zero_the_rest():
    # A GRPO run's first reward is graded in a process that has not imported math-verify yet.
    done = subprocess.run([sys.executable, "-c", COLD], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.0", "1.0", "1.0"]


# Rewards.__call__(): what TRL calls, and what it logs.


def test_the_call_weighs_the_parts_and_logs_parts_and_monitors():
    r = rewards(weights={"accuracy": 1.0, "format": 0.5, "overlong": 2.0}, limit=100, buffer=20)
    completions = [
        [{"role": "assistant", "content": "<think>x</think> \\boxed{8}"}],  # conversational
        "<think>x</think> \\boxed{9}",  # plain; formatted but wrong
        "<think>x</think> the answer is 8",  # right without the format
        "<think>" + "la " * 40,  # never closed, no answer
    ]
    ids = [[1] * 10, [2] * 10, list(range(90)), [1, 2, 3, 4] * 10]  # only the last loops
    logged = {}
    scores = r(
        completions=completions,
        completion_ids=ids,
        answer=["8", "8", "8", "8"],
        answer_format=["integer"] * 4,
        log_metric=logged.__setitem__,
    )
    assert scores == pytest.approx([1.5, 0.5, 1.0 + 2.0 * -0.5, 0.0])
    assert logged == pytest.approx(
        {
            "rewards_parts/accuracy": 2 / 4,
            "rewards_parts/format": 2 / 4,
            "rewards_parts/overlong": -0.5 / 4,
            "monitor/format_without_accuracy": 1 / 4,
            "monitor/repetition": 1 / 4,
        }
    )


def test_the_call_defaults_to_math_answers_without_choices():
    r = rewards(weights={"accuracy": 1.0})
    assert r(completions=["\\boxed{\\frac{1}{2}}", "\\boxed{3}"], completion_ids=[[1], [1]], answer=["0.5", "0.5"]) == [
        1.0,
        0.0,
    ]


def test_unknown_rewards_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown reward.*accurcy.*known: accuracy, format, overlong"):
        Rewards(ModelSpec(), {"accurcy": 1.0}, 10, 2)
