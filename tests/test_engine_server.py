import json
import subprocess
import sys

import pytest

from handful.engines.base import Prompt
from handful.engines.server import OpenAIEngine
from handful.errors import ConfigError, EngineError
from handful.models import resolve
from handful.prompts import render
from handful.records import Problem, SamplingParams

from servers import FaultProxy

pytest.importorskip("llama_cpp", reason="the test server extra is not installed (scripts/install-test-server.sh)")


@pytest.fixture(scope="module")
def model(smollm2_path):
    from transformers import AutoTokenizer

    resolved = resolve("smollm2-135m")
    return resolved, AutoTokenizer.from_pretrained(resolved.path)


def _prompts(model, n):
    resolved, tokenizer = model
    problems = [Problem(id=f"p{i}", source="t", question=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(n)]
    return [Prompt(problem_id=p.id, benchmark="t", text=render(p, resolved.spec, tokenizer)) for p in problems]


def _engine(model, url, **kw):
    resolved, tokenizer = model
    return OpenAIEngine("smollm2-135m", resolved.spec, base_url=url, tokenizer=tokenizer, **kw)


GREEDY = SamplingParams(max_tokens=24)


def test_completions_against_a_real_server(server, model):
    gens = _engine(model, server.url, concurrency=2).generate(_prompts(model, 3), GREEDY)
    assert [g.problem_id for g in gens] == ["p0", "p1", "p2"]
    for g in gens:
        assert g.text and g.completion_tokens <= 24 and g.prompt_tokens > 0
        assert g.metadata["token_counts"].startswith("server usage") and g.metadata["retries"] == 0


def test_chat_endpoint(server, model):
    resolved, _ = model
    prompts = [p.model_copy(update={"messages": [{"role": "user", "content": "What is 2 + 2?"}]}) for p in _prompts(model, 1)]
    g = _engine(model, server.url, endpoint="chat").generate(prompts, GREEDY)[0]
    assert g.text and g.metadata["endpoint"] == "chat"


def test_faults_are_retried_and_nothing_is_lost(server, model):
    clean = _engine(model, server.url).generate(_prompts(model, 6), GREEDY)
    proxy = FaultProxy(server.url, ["500", "429", "stall", "truncate", "drop"], stall=20.0)
    try:
        # The time-out must cut the stall, never a real answer on a loaded machine.
        engine = _engine(model, proxy.url, concurrency=2, request_timeout=8.0, backoff_base=0.05)
        gens = engine.generate(_prompts(model, 6), GREEDY)
    finally:
        proxy.close()
    report = (proxy.seen, [g.metadata["retries"] for g in gens])  # says which fault misbehaved, if one does
    assert [g.text for g in gens] == [g.text for g in clean], report
    assert sum(g.metadata["retries"] for g in gens) == 5, report
    assert proxy.seen[:5] == ["500", "429", "stall", "truncate", "drop"]


def test_gives_up_with_a_clear_error(server, model):
    proxy = FaultProxy(server.url, ["500"] * 10)
    try:
        with pytest.raises(EngineError, match="giving up on p0 after 3 attempts"):
            _engine(model, proxy.url, max_retries=2, backoff_base=0.01).generate(_prompts(model, 1), GREEDY)
    finally:
        proxy.close()


def test_api_key_comes_from_a_named_variable(monkeypatch, model):
    resolved, _ = model
    with pytest.raises(ConfigError, match="HANDFUL_TEST_KEY is not set"):
        OpenAIEngine("m", resolved.spec, base_url="http://127.0.0.1:9/v1", api_key_env="HANDFUL_TEST_KEY")
    monkeypatch.setenv("HANDFUL_TEST_KEY", "sk-secret-123")
    engine = OpenAIEngine("m", resolved.spec, base_url="http://127.0.0.1:9/v1", api_key_env="HANDFUL_TEST_KEY")
    assert engine.api_key == "sk-secret-123"


def test_eval_cli_through_the_server(server, smollm2_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HANDFUL_TEST_KEY", "sk-secret-123")
    out = subprocess.run(
        [sys.executable, "-m", "handful", "eval", "--model", "smollm2-135m", "--engine", "openai", "--base-url", server.url,
         "--api-key-env", "HANDFUL_TEST_KEY", "--benchmark", "gsm8k", "--limit", "3", "--max-tokens", "64", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["benchmarks"]["gsm8k"]["n_samples"] == 3
    for f in tmp_path.iterdir():
        assert "sk-secret-123" not in f.read_text()  # the key is never written anywhere
    assert "HANDFUL_TEST_KEY" in (tmp_path / "run.json").read_text()
