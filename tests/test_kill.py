"""kill -9 in the middle of `handful run`, `handful curate` and `handful scale`, then the same
command again: every finished record is kept as it was, none is made twice, and the result is
the one an uninterrupted run gives (greedy decoding and seeded problems make it deterministic).

Only the main process is killed, as `kill -9 PID` or the OOM killer would: its grader workers
are left to notice on their own, and the rerun must not be blocked by them."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
import yaml

from handful.records import Generation, Problem, Removal

pytestmark = pytest.mark.slow  # three runs of a command each, about a minute per test

HANDFUL = Path(sys.executable).with_name("handful")


def finished_lines(path: Path) -> list[str]:
    """The lines written in full (a kill can leave the last one torn)."""
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1].decode().splitlines()


def handful(args: list[str], log: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(HANDFUL), *args], capture_output=True, text=True, timeout=900, check=False)
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture
def killed():
    """The process groups of the killed commands: whatever they started and left behind is ours
    to end, once the rerun has had to live with it."""
    groups: list[int] = []
    yield groups
    for pid in groups:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def kill_once_stored(args: list[str], watched: Path, log: Path, killed: list[int]) -> list[str]:
    """Start `handful ARGS`, SIGKILL it once `watched` holds a finished line; the lines by then."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(HANDFUL), *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    killed.append(proc.pid)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline and not finished_lines(watched):
        time.sleep(0.05)
    assert proc.poll() is None, f"it ended ({proc.returncode}) before it could be killed: {log.read_text()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return mark(watched)


def mark(path: Path) -> list[str]:
    """Tag each line finished before the kill, so that the rerun shows whether it kept them or
    made them again: with greedy decoding a sample made again is otherwise the very same line.
    A torn last line is left as the kill left it."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    lines = []
    for line in data[:end].decode().splitlines():
        record = json.loads(line)
        record["metadata"]["made_before_the_kill"] = True
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_bytes("".join(line + "\n" for line in lines).encode() + data[end:])
    return lines


def assert_each_once(path: Path, kept: list[str], count: int) -> list[Generation]:
    """Raw lines, not distinct keys: a sample stored twice must fail."""
    lines = path.read_text().splitlines()
    records = [Generation.model_validate_json(line) for line in lines]
    keys = [g.key for g in records]
    assert sorted({k for k in keys if keys.count(k) > 1}) == [], path
    assert len(lines) == count, path
    assert lines[: len(kept)] == kept, "finished samples were not kept as they were, or were made again"
    return records


def same_samples(a: list[Generation], b: list[Generation]) -> bool:
    # metadata holds the run's stamp, not what was generated
    def plain(gs):
        return sorted((g.key, g.model_dump_json(exclude={"metadata"})) for g in gs)

    return plain(a) == plain(b)


def test_kill_9_during_handful_run(tiny_model, tmp_path, killed):
    plain = {
        "benchmarks": ["dyn:addition?digits=2&n=20&seed=5", "dyn:remainder?digits=2&n=20&seed=6"],
        "sampling": {"max_tokens": 8},
        "engine": {"batch_size": 1},
    }
    recipe = {
        "name": "killed",
        "model": str(tiny_model),
        "distill": {
            "problems": "dyn:addition?digits=2&n=4&seed=1",
            "teacher": {"model": "@base", "engine": {"name": "program"}},
        },
        "eval": {
            "purpose": "seeded procedural problems, the same in both runs",
            "models": ["@base"],
            "runs": {"plain": plain},
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out, clean = tmp_path / "killed", tmp_path / "clean"
    samples = out / "eval" / "plain" / "base" / "samples.jsonl"
    kept = kill_once_stored(["run", str(path), "--out", str(out)], samples, tmp_path / "first.log", killed)
    state = json.loads((out / "stages.json").read_text())["stages"]
    assert state["distill"]["status"] == "done" and state["eval/plain/base"]["status"] == "started"
    assert 1 <= len(kept) < 40
    done = handful(["run", str(path), "--out", str(out)], tmp_path / "rerun.log")
    assert "distill: unchanged, skipped" in done.stdout and "eval/plain/base: resuming" in done.stdout
    assert all(s["status"] == "done" for s in json.loads((out / "stages.json").read_text())["stages"].values())
    assert not (out / "superseded").exists()  # the killed stage resumed in place, nothing was set aside and redone
    resumed = assert_each_once(samples, kept, 40)
    handful(["run", str(path), "--out", str(clean)], tmp_path / "clean.log")
    uninterrupted = [
        Generation.model_validate_json(line) for line in (clean / samples.relative_to(out)).read_text().splitlines()
    ]
    assert same_samples(resumed, uninterrupted)
    traces = [
        [Generation.model_validate_json(line) for line in (d / "distill" / "traces.jsonl").read_text().splitlines()]
        for d in (out, clean)
    ]
    assert same_samples(*traces)
    assert (out / "distill" / "sft.jsonl").read_text() == (clean / "distill" / "sft.jsonl").read_text()
    scores = [
        json.loads((d / "eval" / "plain" / "base" / "scores.json").read_text())["benchmarks"] for d in (out, clean)
    ]
    assert scores[0] == scores[1]


def test_kill_9_during_handful_curate(tiny_model, tmp_path, killed):
    reference = {"model": str(tiny_model), "sampling": {"max_tokens": 8}, "engine": {"batch_size": 1}}
    config = {
        "pools": ["dyn:addition?digits=2&n=30&seed=4"],
        "target": 5,
        "dedup": {"enabled": False},
        "decontaminate": {"enabled": False},
        "difficulty": {"enabled": True, "policy": "s1", "references": [reference]},
    }
    path = tmp_path / "curate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out, clean = tmp_path / "killed", tmp_path / "clean"
    # The difficulty stage is where the work is: an eval run of the reference model per candidate.
    samples = out / "stages" / "5-difficulty" / "references" / f"0-{tiny_model.name}" / "samples.jsonl"
    kept = kill_once_stored(
        ["curate", "--config", str(path), "--out", str(out)], samples, tmp_path / "first.log", killed
    )
    assert 1 <= len(kept) < 30 and not (out / "selected.jsonl").exists()
    handful(["curate", "--config", str(path), "--out", str(out)], tmp_path / "rerun.log")
    resumed = assert_each_once(samples, kept, 30)
    handful(["curate", "--config", str(path), "--out", str(clean)], tmp_path / "clean.log")
    uninterrupted = [
        Generation.model_validate_json(line) for line in (clean / samples.relative_to(out)).read_text().splitlines()
    ]
    assert same_samples(resumed, uninterrupted)
    for name, kind, count in (("selected.jsonl", Problem, 5), ("removed.jsonl", Removal, 25)):
        ours, theirs = (
            [kind.model_validate_json(line) for line in (d / name).read_text().splitlines()] for d in (out, clean)
        )
        assert len(ours) == count and ours == theirs, name
    assert json.loads((out / "funnel.json").read_text()) == json.loads((clean / "funnel.json").read_text())


def test_kill_9_during_handful_scale(tiny_model, tmp_path, killed):
    def args(out):
        return ["scale", "--model", str(tiny_model), "--benchmark", "dyn:addition?digits=2&n=12&seed=3", "--max-thinking", "4,8",
                "--max-tokens", "16", "--set", "eval.engine.batch_size=1", "--out", str(out)]  # fmt: skip

    out, clean = tmp_path / "killed", tmp_path / "clean"
    first = out / "points" / "max4_min0_waits0" / "samples.jsonl"
    kept = kill_once_stored(args(out), first, tmp_path / "first.log", killed)
    assert 1 <= len(kept) < 12 and not (out / "curve.json").exists()
    handful(args(out), tmp_path / "rerun.log")
    handful(args(clean), tmp_path / "clean.log")
    for point in ("max4_min0_waits0", "max8_min0_waits0"):
        resumed = assert_each_once(
            out / "points" / point / "samples.jsonl", kept if point.startswith("max4") else [], 12
        )
        uninterrupted = [
            Generation.model_validate_json(line)
            for line in (clean / "points" / point / "samples.jsonl").read_text().splitlines()
        ]
        assert same_samples(resumed, uninterrupted), point
    curves = [json.loads((d / "curve.json").read_text()) for d in (out, clean)]
    assert curves[0]["points"] == curves[1]["points"] and curves[0]["summary"] == curves[1]["summary"]
