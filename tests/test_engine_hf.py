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
