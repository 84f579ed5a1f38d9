import json
import subprocess
import sys

import pytest
from servers import FaultProxy, ScriptedServer

from handful.budget import Budget
from handful.engines.base import Prompt
from handful.engines.server import OpenAIEngine
from handful.errors import ConfigError, EngineError
from handful.models import ModelSpec, resolve
from handful.prompts import render
from handful.records import Problem, SamplingParams

# The tests that need llama.cpp ask for the `server` fixture, which skips without it; the
# scripted server below needs nothing but the standard library.


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
    prompts = [
        p.model_copy(update={"messages": [{"role": "user", "content": "What is 2 + 2?"}]}) for p in _prompts(model, 1)
    ]
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
        [
            sys.executable,
            "-m",
            "handful",
            "eval",
            "--model",
            "smollm2-135m",
            "--engine",
            "openai",
            "--base-url",
            server.url,
            "--api-key-env",
            "HANDFUL_TEST_KEY",
            "--benchmark",
            "gsm8k",
            "--limit",
            "3",
            "--max-tokens",
            "64",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["benchmarks"]["gsm8k"]["n_samples"] == 3
    for f in tmp_path.iterdir():
        assert "sk-secret-123" not in f.read_text()  # the key is never written anywhere
    assert "HANDFUL_TEST_KEY" in (tmp_path / "run.json").read_text()


# ---- budget forcing over a server, on a scripted /v1/completions ----------------------------
# Without a tokenizer the engine counts a piece of text as the server's usage says, and text it
# writes itself (continuation, delimiter) as one token per four characters: "\nWait" (5
# characters) is 1 token, "</think>" (8) is 2. The expected numbers below follow from that.

SPEC = ModelSpec(open_thinking=True)
PROMPT = Prompt(problem_id="p0", benchmark="t", text="Q: what is 2 + 2? <think>")


def forced(script, budget, max_tokens=100, tokenizer=None):
    with ScriptedServer(script) as server:
        engine = OpenAIEngine("m", SPEC, base_url=server.url, tokenizer=tokenizer, backoff_base=0.01)
        [g] = engine.generate([PROMPT], SamplingParams(max_tokens=max_tokens), budget=Budget(**budget))
    return g, server.requests


def sent(requests):
    """What each request asked for: the text after the prompt, max_tokens, stop."""
    assert all(r["prompt"].startswith(PROMPT.text) for r in requests)
    return [(r["prompt"][len(PROMPT.text) :], r["max_tokens"], r.get("stop")) for r in requests]


def test_stops_before_the_minimum_are_answered_with_wait():
    script = [("abc", "stop", 4), (" more", "stop", 3), (" done", "stop", 2), ("The answer is 4.", "stop", 5)]
    g, requests = forced(script, {"min_thinking_tokens": 10})
    # thinking after each round: 4 (+1 Wait) = 5, 8 (+1) = 9, 11 >= 10: closed by the engine.
    assert sent(requests) == [
        ("", 100, ["</think>"]),
        ("abc\nWait", 95, ["</think>"]),
        ("abc\nWait more\nWait", 91, ["</think>"]),
        ("abc\nWait more\nWait done</think>", 100 - 11 - 2, None),
    ]
    assert g.text == "abc\nWait more\nWait done</think>The answer is 4."
    assert g.thinking == "abc\nWait more\nWait done" and g.answer_text == "The answer is 4."
    assert g.waits == 2 and not g.forced_cut and g.finish_reason == "stop"
    assert g.budget == Budget(min_thinking_tokens=10)


def test_the_maximum_forces_the_delimiter_and_final_answer():
    g, requests = forced([("x " * 10, "length", 20), (" 42", "stop", 1)], {"max_thinking_tokens": 20})
    assert sent(requests) == [("", 20, ["</think>"]), ("x " * 10 + "</think>\n\nFinal Answer:", 100 - 20 - 2, None)]
    assert g.text == "x " * 10 + "</think>\n\nFinal Answer: 42"
    assert g.forced_cut and g.waits == 0 and g.answer_text == "\n\nFinal Answer: 42"


def test_the_last_token_of_the_budget_is_asked_for_then_the_cut_comes():
    # 18 tokens, stop: 18 < 20 owes a Wait, which fits (19); then one token is left to ask for.
    g, requests = forced(
        [("a", "stop", 18), ("b", "length", 1), (" 4", "stop", 1)],
        {"min_thinking_tokens": 20, "max_thinking_tokens": 20},
    )
    assert sent(requests) == [
        ("", 20, ["</think>"]),
        ("a\nWait", 1, ["</think>"]),
        ("a\nWaitb</think>\n\nFinal Answer:", 100 - 20 - 2, None),
    ]
    assert g.waits == 1 and g.forced_cut


def test_a_continuation_that_does_not_fit_becomes_the_cut():
    # "\nWait, let me check" is 19 characters, 5 tokens: 17 + 5 > 20, so no Wait is forced.
    budget = {"min_thinking_tokens": 20, "max_thinking_tokens": 20, "continuation": "Wait, let me check"}
    g, requests = forced([("a", "stop", 17), (" 4", "stop", 1)], budget)
    assert sent(requests) == [("", 20, ["</think>"]), ("a</think>\n\nFinal Answer:", 100 - 17 - 2, None)]
    assert g.waits == 0 and g.forced_cut and "Wait" not in g.text


def test_max_waits_refuses_that_many_stops_without_a_minimum():
    script = [("a", "stop", 1), ("b", "stop", 1), ("c", "stop", 1), ("d", "stop", 1)]
    g, requests = forced(script, {"max_waits": 2})
    # No maximum: the request's max_tokens (100) is the thinking budget.
    assert sent(requests) == [
        ("", 100, ["</think>"]),
        ("a\nWait", 98, ["</think>"]),
        ("a\nWaitb\nWait", 96, ["</think>"]),
        ("a\nWaitb\nWaitc</think>", 100 - 5 - 2, None),
    ]
    assert g.text == "a\nWaitb\nWaitc</think>d" and g.waits == 2 and not g.forced_cut


def test_a_retried_round_sends_the_same_text_again():
    g, requests = forced([("a", "stop", 4), 500, (" b", "stop", 8), ("ok", "stop", 1)], {"min_thinking_tokens": 10})
    assert sent(requests) == [
        ("", 100, ["</think>"]),
        ("a\nWait", 95, ["</think>"]),
        ("a\nWait", 95, ["</think>"]),
        ("a\nWait b</think>", 100 - 13 - 2, None),
    ]
    assert g.metadata["retries"] == 1 and g.text == "a\nWait b</think>ok"


def test_with_a_tokenizer_its_counts_decide_not_the_servers(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    # The server claims one token per answer; SmolLM2's tokenizer says: "Two plus two" 3,
    # "\nWait" 2, " is four carefully." 4, "</think>" 3.
    script = [("Two plus two", "stop", 1), (" is four carefully.", "length", 1), (" 4", "stop", 1)]
    g, requests = forced(
        script, {"min_thinking_tokens": 6, "max_thinking_tokens": 9}, max_tokens=40, tokenizer=tokenizer
    )
    thinking = "Two plus two\nWait is four carefully."
    assert sent(requests) == [
        ("", 9, ["</think>"]),
        ("Two plus two\nWait", 9 - 5, ["</think>"]),
        (thinking + "</think>\n\nFinal Answer:", 40 - 9 - 3, None),
    ]
    assert g.thinking == thinking and g.waits == 1 and g.forced_cut
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert g.thinking_tokens == count(thinking) == 9
    assert g.completion_tokens == count(g.text) and g.metadata["token_counts"] == "tokenizer"


def test_without_a_tokenizer_the_record_keeps_the_thinking_the_budget_counted():
    script = [("abc", "stop", 4), (" more", "stop", 3), (" done", "stop", 2), ("The answer is 4.", "stop", 5)]
    g, _ = forced(script, {"min_thinking_tokens": 10})
    assert g.metadata["token_counts"] == "characters / 4"
    assert g.thinking_tokens == 11 and g.completion_tokens > g.thinking_tokens


def test_max_tokens_bounds_the_whole_sample_over_a_server():
    _, requests = forced([("x", "length", 50), (" 4", "stop", 1)], {"max_thinking_tokens": 50}, max_tokens=20)
    assert requests[0]["max_tokens"] <= 20


def test_a_maximum_of_zero_answers_at_once():
    g, requests = forced([(" 4", "stop", 1)], {"max_thinking_tokens": 0})
    assert sent(requests) == [("</think>\n\nFinal Answer:", 100 - 0 - 2, None)]
    assert g.thinking == "" and g.thinking_tokens == 0 and g.forced_cut
