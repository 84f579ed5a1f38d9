import pytest

from handful.engines.base import Prompt, thinking_split, thinking_token_count
from handful.engines.hf import HFEngine
from handful.errors import EngineError
from handful.models import ModelSpec, resolve
from handful.prompts import render
from handful.records import Problem, SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_model):
    e = HFEngine(resolve(str(tiny_model)), batch_size=4)
    yield e
    e.close()


def _prompts(engine, questions):
    spec = engine.spec
    return [
        Prompt(
            problem_id=f"p{i}",
            benchmark="t",
            text=render(Problem(id=f"p{i}", source="t", question=q, answer="1"), spec, engine.tokenizer),
        )
        for i, q in enumerate(questions)
    ]


def test_left_padding_changes_nothing(engine):
    """A prompt generates the same tokens alone as beside a much longer one."""
    short = "What is 1+1?"
    long = "Please add these numbers carefully: " + " + ".join(str(i) for i in range(60)) + "?"
    greedy = SamplingParams(max_tokens=12)
    alone = engine.generate(_prompts(engine, [short]), greedy)[0]
    together = engine.generate(_prompts(engine, [long, short, long]), greedy)
    assert together[1].text == alone.text and together[1].completion_tokens == alone.completion_tokens
    assert together[0].problem_id == "p0" and together[1].problem_id == "p1"  # order restored after sorting


def test_token_counts_are_exact(engine):
    g = engine.generate(_prompts(engine, ["Count to three."]), SamplingParams(max_tokens=9))[0]
    assert g.completion_tokens == 9 and g.finish_reason == "length"
    assert g.prompt_tokens == len(engine.tokenizer(g.prompt, add_special_tokens=False)["input_ids"])
    assert g.prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert g.thinking_tokens + g.answer_tokens == g.completion_tokens


def test_sampling_is_seeded(engine):
    ps = _prompts(engine, ["Tell me a number."] * 2)
    hot = SamplingParams(temperature=1.0, max_tokens=10, seed=3)
    a = engine.generate(ps, hot)
    b = engine.generate(ps, hot)
    c = engine.generate(ps, hot.model_copy(update={"seed": 4}))
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.text for g in a] != [g.text for g in c]


def test_stop_strings_end_generation(engine):
    free = engine.generate(_prompts(engine, ["Say something."]), SamplingParams(max_tokens=20))[0]
    word = free.text.split()[1] if len(free.text.split()) > 2 else free.text[:3]
    stopped = engine.generate(_prompts(engine, ["Say something."]), SamplingParams(max_tokens=20, stop=[word]))[0]
    assert stopped.text.endswith(word) and len(stopped.text) <= len(free.text)
    assert stopped.finish_reason == "stop"


def test_bad_dtype_and_missing_weights(tiny_model, tmp_path):
    with pytest.raises(EngineError, match="dtype 'int3'"):
        HFEngine(resolve(str(tiny_model)), dtype="int3")
    (tmp_path / "config.json").write_text((tiny_model / "config.json").read_text())
    with pytest.raises(EngineError, match="could not be loaded"):
        HFEngine(resolve(str(tmp_path)))


class FakeTokens:
    """Decodes k 'tokens' of a fixed split, to test the bisection without a model."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __call__(self, k):
        return "".join(self.pieces[:k])


def test_thinking_tokens_by_bisection():
    spec = ModelSpec()
    pieces = ["<", "think", ">", "a", " b", "</", "think", ">", "The", " answer"]
    text = "".join(pieces)
    assert thinking_token_count(FakeTokens(pieces), len(pieces), text, spec) == 5
    opened = ModelSpec(open_thinking=True)
    rest = pieces[3:]
    assert thinking_token_count(FakeTokens(rest), len(rest), "".join(rest), opened) == 2
    never = ["a", " b", " c"]
    assert thinking_token_count(FakeTokens(never), 3, "a b c", opened) == 3
    assert thinking_token_count(FakeTokens(never), 3, "a b c", spec) == 0
    assert thinking_split("x</think>y", opened) == ("x", "y")


def test_growing_cache_matches_transformers_own(engine):
    """Same tokens with the growing KV cache as with transformers' DynamicCache, greedy and in beams."""
    import torch
    from transformers import DynamicCache

    from handful.engines.kv_cache import growing_cache

    ps = _prompts(engine, ["What is 12 times 13?", "Name a prime number larger than one hundred."])
    enc = engine.tokenizer([p.text for p in ps], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        for extra in ({}, {"num_beams": 3}):
            kw = dict(
                max_new_tokens=300,
                min_new_tokens=300,
                do_sample=False,
                pad_token_id=engine.tokenizer.pad_token_id,
                **extra,
            )
            ours = engine.model.generate(**enc, cache=growing_cache(), **kw)
            theirs = engine.model.generate(**enc, cache=DynamicCache(), **kw)
            assert torch.equal(ours, theirs)


def test_finished_rows_leave_the_batch_and_change_no_token(smollm2_path):
    """Rows that have ended leave the batch while the others go on; every row's tokens are the
    ones a single generate call makes for the whole batch (SmolLM2, greedy), with and without
    budget forcing."""
    from handful.budget import Budget
    from handful.engines import hf_rows

    engine = HFEngine(resolve(str(smollm2_path)), batch_size=8)
    questions = ["Say hi.", "Count from 1 to 40, separated by commas.", "What is 2+2?", "Name a color."]
    questions += ["Write a long poem about the sea.", "Reply with one word.", "List ten animals.", "Yes or no?"]
    plain = _prompts(engine, questions)
    engine.spec = engine.spec.model_copy(update={"open_thinking": True})
    thinking = _prompts(engine, questions)
    greedy, budget = SamplingParams(max_tokens=48), Budget(max_thinking_tokens=12)
    sizes = []
    hook = engine.model.register_forward_pre_hook(
        lambda m, a, k: sizes.append(k["input_ids"].shape[0]), with_kwargs=True
    )

    def run():
        sizes.clear()
        made = engine.generate(plain, greedy), engine.generate(thinking, greedy, budget=budget)
        return made, sorted(set(sizes), reverse=True)

    try:
        ours, dropped = run()
        share, hf_rows.DROP_SHARE = hf_rows.DROP_SHARE, None  # never halts: one call, every row to the end
        try:
            whole, kept = run()
        finally:
            hf_rows.DROP_SHARE = share
    finally:
        hook.remove()
    assert kept == [8]
    assert dropped[0] == 8 and len(dropped) > 1, dropped  # the batch shrank as rows ended
    for a, b in zip(ours, whole):
        assert [(g.text, g.completion_tokens, g.thinking_tokens, g.finish_reason) for g in a] == [
            (g.text, g.completion_tokens, g.thinking_tokens, g.finish_reason) for g in b
        ]
    assert {g.finish_reason for g in ours[0]} == {"stop", "length"}
    assert [(g.waits, g.forced_cut) for g in ours[1]] == [(g.waits, g.forced_cut) for g in whole[1]]
    assert any(g.forced_cut for g in ours[1])
