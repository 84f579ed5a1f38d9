"""Budget forcing on the real SmolLM2-135M, in both engines: every sample's thinking lands
inside the requested budget, as recorded and as recounted from its text."""

import pytest
from transformers import AutoTokenizer

from handful.config import EvalConfig
from handful.evaluation import evaluate
from handful.records import Generation, read_jsonl

pytestmark = pytest.mark.slow


def _check(out, smollm2_path, low, high):
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    samples = read_jsonl(out / "samples.jsonl", Generation)
    for g in samples:
        recount = len(tok(g.thinking, add_special_tokens=False)["input_ids"])
        assert low <= g.thinking_tokens <= high and low <= recount <= high + 1, (g.thinking_tokens, recount, g.text)
        assert g.budget.max_thinking_tokens == high and g.answer_text
        assert g.text.startswith(g.thinking) and g.prompt.endswith("<think>") and g.prompt_tokens > 0
    return samples


def _cfg(**kw):
    return EvalConfig(model="smollm2-135m", benchmarks=["gsm8k"], limit=3, sampling={"max_tokens": 120}, **kw)


def test_hf_engine_keeps_thinking_within_the_budget(smollm2_path, tmp_path):
    evaluate(_cfg(budget={"min_thinking_tokens": 32, "max_thinking_tokens": 64}), tmp_path)
    samples = _check(tmp_path, smollm2_path, 32, 64)
    assert all(g.forced_cut == ("Final Answer:" in g.text) for g in samples)


def test_openai_engine_keeps_thinking_within_the_budget(server, smollm2_path, tmp_path):
    cfg = _cfg(
        budget={"min_thinking_tokens": 32, "max_thinking_tokens": 64}, engine={"name": "openai", "base_url": server.url}
    )
    evaluate(cfg, tmp_path)
    _check(tmp_path, smollm2_path, 32, 64)


@pytest.mark.parametrize("engine", ["hf", "openai"])
def test_refused_stops_become_waits(engine, server, smollm2_path, tmp_path):
    """With a line break as the end of thinking, SmolLM2 'stops' early and often: every stop
    before the minimum is refused with a forced 'Wait', in both engines."""
    engine_cfg = {"name": engine, "base_url": server.url} if engine == "openai" else {"name": "hf"}
    cfg = _cfg(
        budget={"min_thinking_tokens": 40, "max_thinking_tokens": 80}, prompt={"think_close": "\n"}, engine=engine_cfg
    )
    evaluate(cfg, tmp_path)
    samples = read_jsonl(tmp_path / "samples.jsonl", Generation)
    assert sum(g.waits for g in samples) >= 1
    for g in samples:
        assert 40 <= g.thinking_tokens <= 80 and g.thinking.count(" Wait") >= g.waits  # the model may say it too
