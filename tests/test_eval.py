import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from servers import default_sigint

from handful.config import EvalConfig
from handful.errors import ConfigError
from handful.evaluation import evaluate
from handful.records import Generation, read_jsonl


def cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "handful", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509 (the child must get SIGINT back; the test starts no threads before it)
        **kw,
    )


def start_and_wait(tiny_model, out, limit, samples_before):
    """Start `handful eval` on the tiny model; return once `samples_before` samples are on disk."""
    args = [
        "eval",
        "--model",
        str(tiny_model),
        "--benchmark",
        "gsm8k",
        "--limit",
        str(limit),
        "--batch-size",
        "2",
        "--max-tokens",
        "48",
        "--out",
        str(out),
    ]
    proc = cli(*args)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not samples.exists() or samples.read_text().count("\n") < samples_before):
        time.sleep(0.2)
    return proc, args, samples


def test_eval_writes_samples_and_scores(tiny_model, tmp_path):
    user = tmp_path / "mine.jsonl"
    user.write_text("".join(json.dumps({"q": f"What is {i} + {i}?", "a": 2 * i}) + "\n" for i in range(3)))
    cfg = EvalConfig(
        model=str(tiny_model),
        benchmarks=["gsm8k", f"jsonl:{user}?question=q&answer=a"],
        limit=3,
        n=2,
        sampling={"temperature": 0.7, "max_tokens": 16},
    )
    scores = evaluate(cfg, tmp_path / "run")
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl", Generation)
    assert len(samples) == 12 and len({g.key for g in samples}) == 12
    assert all(g.outcome is not None and g.completion_tokens <= 16 for g in samples)
    assert set(scores.benchmarks) == {"gsm8k", "mine"}
    s = scores.benchmarks["gsm8k"]
    assert s.n_problems == 3 and s.n_samples == 6 and set(s.pass_at_k) == {"1", "2"}
    on_disk = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert on_disk == scores.model_dump(mode="json") and on_disk["versions"]["handful"]
    assert set(on_disk["benchmarks"]["gsm8k"]) >= {"pass@k", "maj@k", "maj@k_ci95"}  # the papers' names on disk
    posed = [json.loads(line) for line in (tmp_path / "run" / "benchmarks.jsonl").read_text().splitlines()]
    pairs = [(r["benchmark"], r["problem"]["id"]) for r in posed]  # what the report shows, never rebuilt
    assert len(pairs) == 6 and set(pairs) == {(g.benchmark, g.problem_id) for g in samples}


def test_a_different_config_is_refused(tiny_model, tmp_path):
    cfg = EvalConfig(model=str(tiny_model), benchmarks=["aime24"], limit=2, sampling={"max_tokens": 4})
    evaluate(cfg, tmp_path)
    with pytest.raises(ConfigError, match=r"n: was 1, now 3"):
        evaluate(cfg.model_copy(update={"n": 3}), tmp_path)
    evaluate(
        cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"batch_size": 1})}), tmp_path
    )  # speed settings may change


def test_resume_after_kill_loses_and_repeats_nothing(tiny_model, tmp_path):
    proc, args, samples = start_and_wait(tiny_model, tmp_path / "run", 16, 4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = samples.read_text().splitlines()
    assert 4 <= len(before) < 16
    done = cli(*args)
    stdout, stderr = done.communicate(timeout=600)
    assert done.returncode == 0, stderr
    after = read_jsonl(samples, Generation)
    assert len(after) == 16 and len({g.key for g in after}) == 16
    assert samples.read_text().splitlines()[: len(before)] == before  # finished work kept as it was
    assert "gsm8k" in stdout and "accuracy" in stdout


def test_bad_model_name_lists_aliases(tmp_path):
    out = cli("eval", "--model", "smollm3-135m", "--benchmark", "gsm8k", "--out", str(tmp_path))
    _, stderr = out.communicate(timeout=120)
    assert out.returncode == 1
    assert "unknown model 'smollm3-135m'; known: smollm2-135m" in stderr and "Traceback" not in stderr


def test_bad_options_are_named(tmp_path):
    out = cli("eval", "--benchmark", "gsm8k", "--n", "0", "--out", str(tmp_path))
    _, stderr = out.communicate(timeout=120)
    assert out.returncode == 1 and "n: Input should be greater than or equal to 1" in stderr


def test_fresh_problems_and_progress_are_plain_lines_on_stderr(tiny_model, tmp_path):
    model = tmp_path / "tiny\x1b[31m"  # a name that would colour the terminal if it reached it raw
    model.symlink_to(tiny_model)
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump({"model": str(model)}))  # YAML writes ESC as an escape
    args = [
        "eval",
        "--config",
        str(tmp_path / "eval.yaml"),
        "--engine",
        "program",
        "--benchmark",
        "dyn:addition?digits=2&n=3",
    ]
    first = cli(*args, "--out", str(tmp_path / "run"))
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert re.search(r"^fresh problems: dyn:addition\?digits=2&n=3&seed=\d+$", stderr, re.MULTILINE), stderr
    assert "3/3" in stderr and "samples/s" in stderr and "tok/s" in stderr  # the progress bar
    assert "tiny\\x1b[31m" in stderr and "\x1b" not in stderr
    again = cli(*args, "--out", str(tmp_path / "run"))
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0 and "fresh problems" not in stderr, stderr  # the seed the run drew before


def test_models_lists_aliases():
    out = cli("models", "--json")
    stdout, _ = out.communicate(timeout=60)
    names = {m["name"] for m in json.loads(stdout)}
    assert names == {"smollm2-135m", "gemma3-270m"}


@pytest.mark.slow
def test_real_model_on_gsm8k(smollm2_path, tmp_path):
    """The README's first run: the real SmolLM2-135M on 20 GSM8K problems, greedy."""
    out = cli(
        "eval",
        "--model",
        "smollm2-135m",
        "--benchmark",
        "gsm8k",
        "--limit",
        "20",
        "--max-tokens",
        "384",
        "--out",
        str(tmp_path),
    )
    _, stderr = out.communicate(timeout=1800)
    assert out.returncode == 0, stderr
    scores = json.loads((tmp_path / "scores.json").read_text())["benchmarks"]["gsm8k"]
    assert scores["n_problems"] == 20 and 0.0 <= scores["ci95"][0] <= scores["accuracy"] <= scores["ci95"][1]
    samples = read_jsonl(tmp_path / "samples.jsonl", Generation)
    assert sum(g.outcome != "no_answer" for g in samples) >= 10  # it does answer, right or wrong


def test_ctrl_c_keeps_finished_samples_and_says_how_to_resume(tiny_model, tmp_path):
    # 80 samples: the signal must land while work remains, however fast the machine.
    proc, args, samples = start_and_wait(tiny_model, tmp_path / "run", 80, 2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    kept = samples.read_text().splitlines()
    assert 2 <= len(kept) < 80
    done = cli(*args)
    _, stderr = done.communicate(timeout=600)
    assert done.returncode == 0, stderr
    # Raw lines, not distinct keys: a sample stored twice is a line too many and must fail.
    lines = samples.read_text().splitlines()
    keys = [Generation.model_validate_json(line).key for line in lines]
    assert len(lines) == 80 and len(set(keys)) == 80, sorted(k for k in keys if keys.count(k) > 1)
    assert lines[: len(kept)] == kept  # the samples made before the interrupt were kept as they were


def test_multiple_choice_from_a_user_file(tiny_model, tmp_path, gpqa_like_file):
    cfg = EvalConfig(
        model=str(tiny_model),
        benchmarks=["gpqa_diamond"],
        data=str(gpqa_like_file),
        limit=2,
        sampling={"max_tokens": 8},
    )
    scores = evaluate(cfg, tmp_path)
    samples = read_jsonl(tmp_path / "samples.jsonl", Generation)
    assert scores.benchmarks["gpqa_diamond"].n_problems == 2
    assert all("within \\boxed{}" in g.prompt and "\nA. " in g.prompt for g in samples)
    assert len(samples) == 2 and {g.problem_id for g in samples} <= {"gpqa-0", "gpqa-1", "gpqa-2"}
