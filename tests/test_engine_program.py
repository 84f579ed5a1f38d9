import json
import subprocess
import sys

import pytest

from handful.config import EvalConfig
from handful.engines.program import ProgramEngine, response
from handful.errors import EngineError
from handful.evaluation import evaluate, memorisation_gaps
from handful.metrics import score
from handful.models import ModelSpec, resolve
from handful.records import Generation, read_jsonl


def test_the_program_teacher_is_always_right_in_the_students_format(tiny_model, tmp_path):
    benchmarks = [
        "dyn:probes?n=24&seed=4",
        "dyn:countdown?numbers=5&n=6&seed=4",
        "dyn:decimal-subtraction?digits=9&n=6&seed=4",
    ]
    cfg = EvalConfig(model=str(tiny_model), benchmarks=benchmarks, engine={"name": "program"})
    scores = evaluate(cfg, tmp_path / "run")
    assert all(s.accuracy == 1.0 for s in scores.benchmarks.values()), scores.benchmarks
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl", Generation)
    spec = resolve(str(tiny_model)).spec
    for g in samples:
        assert g.model == "program" and g.text.startswith(spec.think_open) and spec.think_close in g.text
        assert "\\boxed{" in g.answer_text and 0 < g.thinking_tokens < g.completion_tokens


def test_the_program_teacher_refuses_what_it_did_not_make(tiny_model, tmp_path):
    cfg = EvalConfig(model=str(tiny_model), benchmarks=["gsm8k"], limit=1, engine={"name": "program"})
    with pytest.raises(EngineError, match="only answers handful task problems"):
        evaluate(cfg, tmp_path / "run")
    engine = ProgramEngine(resolve(str(tiny_model)))
    from handful.engines.base import Prompt
    from handful.records import SamplingParams

    forged = Prompt(problem_id="addition-d3-s0-0", text="What is 1 + 1?")
    with pytest.raises(EngineError, match="another version"):
        engine.generate([forged], SamplingParams())


def test_an_opened_thinking_prompt_gets_no_second_opening():
    spec = ModelSpec(think_open="<t>", think_close="</t>", open_thinking=True)
    assert response("a\nb\nThe answer is $\\boxed{1}$.", spec) == "a\nb</t>\n\nThe answer is $\\boxed{1}$."
    assert response("a\nThe answer is $\\boxed{1}$.", ModelSpec()) == "<think>a</think>\n\nThe answer is $\\boxed{1}$."


def test_eval_draws_a_fresh_seed_prints_it_and_resumes_with_it(tiny_model, tmp_path):
    args = [
        sys.executable,
        "-m",
        "handful",
        "eval",
        "--model",
        str(tiny_model),
        "--engine",
        "program",
        "--benchmark",
        "dyn:addition?digits=3&n=5,dyn:linear?n=4&seed=2",
        "--out",
        str(tmp_path / "run"),
    ]
    first = subprocess.run(args, capture_output=True, check=False, text=True)
    assert first.returncode == 0, first.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    spec = run["config"]["benchmarks"][0]
    assert spec.startswith("dyn:addition?digits=3&n=5&seed=") and spec in first.stdout.replace("\n", "")
    assert "dyn:linear?digits=1&n=4&seed=2" in run["config"]["benchmarks"]
    again = subprocess.run(args, capture_output=True, check=False, text=True)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["benchmarks"][0] == spec
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 9


def _samples(bench, outcomes):
    return [
        Generation(
            problem_id=f"p{i}",
            benchmark=bench,
            model="m",
            text="",
            correct=ok,
            outcome="correct" if ok else "incorrect",
        )
        for i, ok in enumerate(outcomes)
    ]


def test_the_memorisation_gap_compares_a_benchmark_with_its_fresh_copy():
    fresh = "dyn:gsm-template?steps=3"
    samples = _samples("gsm8k", [True] * 40 + [False] * 10) + _samples(fresh, [True] * 10 + [False] * 40)
    samples += _samples("dyn:addition?digits=6", [True, False])
    results = {b: score([g for g in samples if g.benchmark == b], 1) for b in ("gsm8k", fresh, "dyn:addition?digits=6")}
    [gap] = memorisation_gaps(results, samples, n=1)
    assert gap.static == "gsm8k" and gap.fresh == fresh and (gap.static_accuracy, gap.fresh_accuracy) == (0.8, 0.2)
    assert gap.gap == pytest.approx(0.6) and 0.4 < gap.gap_ci95[0] < 0.6 < gap.gap_ci95[1] < 0.8
    assert memorisation_gaps({fresh: results[fresh]}, samples, n=1) == []


def test_a_budget_changes_no_trace_and_is_warned_about_once(tiny_model, caplog):
    from handful import tasks
    from handful.budget import Budget
    from handful.engines.base import Prompt
    from handful.records import SamplingParams

    prompt = Prompt(problem_id="addition-d3-s0-0", text=tasks.regenerate("addition-d3-s0-0").question)
    engine = ProgramEngine(resolve(str(tiny_model)))
    [free] = engine.generate([prompt], SamplingParams())
    budget = Budget(min_thinking_tokens=1, max_thinking_tokens=2)
    with caplog.at_level("WARNING", logger="handful.engines.program"):
        runs = [engine.generate([prompt], SamplingParams(), budget=budget) for _ in range(2)]
    assert all(g.text == free.text and g.thinking_tokens == free.thinking_tokens for [g] in runs)
    [warning] = [r for r in caplog.records if r.name == "handful.engines.program"]  # once, not per call
    assert "budget does not apply" in warning.message


def test_with_opener_puts_the_opener_back_only_when_the_prompt_opened_thinking():
    from handful.engines.base import thinking_split, with_opener

    opened = ModelSpec(think_open="<t>", think_close="</t>", open_thinking=True)
    assert with_opener("a</t>b", opened) == "<t>a</t>b"
    assert with_opener("a</t>b", ModelSpec(think_open="<t>", think_close="</t>")) == "a</t>b"
    assert thinking_split("a</t>b", opened) == ("a", "b")
