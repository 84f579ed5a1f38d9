"""`handful study`: a data-size curve and curated against random picks, each point a resumable
sub-run; its points share seeds, a changed point reruns alone, and a killed study resumes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from handful.cli import app
from handful.distill import DistillConfig, distill
from handful.records import Generation, read_jsonl

HANDFUL = Path(sys.executable).with_name("handful")


def study_file(model: Path, folder: Path, **changes) -> Path:
    """A study of a tiny model: a curated set of 8 program traces, sizes 2 and 8, random picks at 2."""
    data = folder / "curated"
    if not (data / "sft.jsonl").exists():
        teacher = {"model": str(model), "engine": {"name": "program"}}
        distill(DistillConfig(problems="dyn:addition?digits=2&n=8&seed=11", teacher=teacher), data)
    settings = {
        "train": {
            "model": str(model),
            "data": str(data / "sft.jsonl"),
            "epochs": 1,
            "batch_size": 2,
            "max_seq_len": 128,
            "lr": 1e-3,
            "val_fraction": 0.25,
            "save_steps": 1,
            "logging_steps": 1,
            "report_to": ["none"],
        },
        "eval": {
            "benchmarks": ["dyn:addition?digits=2&n=4", "dyn:remainder?digits=2&n=3"],
            "sampling": {"max_tokens": 6},
        },
        "sizes": [2, 8],
        "random": [2],
        "distill": {
            "problems": "dyn:addition?digits=2&n=30&seed=12",
            "teacher": {"model": str(model), "engine": {"name": "program"}},
        },
        **changes,
    }
    path = folder / f"study-{len(list(folder.glob('study-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def run_study(config: Path, out: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["study", "--config", str(config), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def samples(out: Path, point: str) -> list[Generation]:
    return read_jsonl(out / "points" / point / "eval" / "samples.jsonl", Generation)


@pytest.fixture(scope="module")
def studied(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    config = study_file(tiny_model, folder)
    output = run_study(config, folder / "out")
    yield folder, config, folder / "out", output
    shutil.rmtree(folder, ignore_errors=True)  # checkpoints: hundreds of MB the rest of the suite needs


def test_every_point_is_trained_evaluated_and_paired_with_the_base(studied):
    _, _, out, output = studied
    result = json.loads((out / "study.json").read_text())
    points = {p["point"]: p for p in result["points"] if p["benchmark"] == "all of them"}
    assert list(points) == ["base", "curated-2", "curated-8", "random-2"]
    assert [points[p]["size"] for p in points] == [0, 2, 8, 2]
    for name in ("curated-2", "curated-8", "random-2"):
        assert (out / "points" / name / "train" / "train.json").exists()
        assert points[name]["against_base"]["problems"] == 7 and points[name]["steps"] >= 1
    assert points["random-2"]["against_curated"]["baseline"] == "curated-2"
    assert points["base"]["against_curated"] is None
    assert "curated-8 (8 examples" in output and "vs curated" in output
    # The curated points are nested; the random picks come from the pool, not the curated set.
    curated = [json.loads(line) for line in (out / "points" / "curated-8" / "sft.jsonl").read_text().splitlines()]
    small = [json.loads(line) for line in (out / "points" / "curated-2" / "sft.jsonl").read_text().splitlines()]
    picked = [json.loads(line) for line in (out / "points" / "random-2" / "sft.jsonl").read_text().splitlines()]
    assert all(r in curated for r in small) and not any(r in curated for r in picked)


def test_the_points_share_problems_and_seeds(studied):
    _, _, out, _ = studied
    problems = {
        point: sorted((g.benchmark, g.problem_id) for g in samples(out, point))
        for point in ("base", "curated-2", "curated-8", "random-2")
    }
    assert len({tuple(v) for v in problems.values()}) == 1
    runs = [json.loads((out / "points" / p / "eval" / "run.json").read_text())["config"] for p in problems]
    assert len({json.dumps((r["benchmarks"], r["sampling"])) for r in runs}) == 1
    assert all("seed=" in b for b in runs[0]["benchmarks"])  # drawn once, by the first point
    seeds = {
        json.loads((out / "points" / p / "train" / "train.json").read_text())["recipe"]["seed"]
        for p in problems
        if p != "base"
    }
    assert seeds == {0}


def test_a_changed_point_reruns_alone_and_the_report_shows_the_curve(studied, tmp_path):
    folder, _, out, _ = studied
    stamps = {
        p: (out / "points" / p / "eval" / "samples.jsonl").stat().st_mtime_ns
        for p in ("base", "curated-2", "curated-8", "random-2")
    }
    # Another size: only the new point runs; an unchanged point is not touched.
    run_study(
        study_file(
            Path(json.loads((out / "study.json").read_text())["config"]["train"]["model"]), folder, sizes=[2, 8, 4]
        ),
        out,
    )
    for p, stamp in stamps.items():
        assert (out / "points" / p / "eval" / "samples.jsonl").stat().st_mtime_ns == stamp, p
    assert (out / "points" / "curated-4" / "train" / "train.json").exists()
    # Another learning rate changes every trained point: each is moved aside and rerun, the base stays.
    config = study_file(
        Path(json.loads((out / "study.json").read_text())["config"]["train"]["model"]), folder, sizes=[2]
    )
    changed = yaml.safe_load(config.read_text())
    changed["train"]["lr"] = 5e-4
    changed["random"] = []
    config.write_text(yaml.safe_dump(changed))
    run_study(config, out)
    assert (out / "points" / "base" / "eval" / "samples.jsonl").stat().st_mtime_ns == stamps["base"]
    assert (out / "points" / "curated-2" / "eval" / "samples.jsonl").stat().st_mtime_ns != stamps["curated-2"]
    assert any(p.name.startswith("curated-2-") for p in (out / "superseded").iterdir())
    assert (out / "picks" / "random-2" / "traces.jsonl").exists()  # a teacher's traces outlive their points
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert 'id="study"' in page and "training examples" in page


@pytest.mark.slow
def test_a_killed_study_resumes_where_it_stopped(tiny_model, tmp_path):
    config = study_file(tiny_model, tmp_path, sizes=[2, 8], random=[])
    settings = yaml.safe_load(config.read_text())
    settings["train"]["epochs"] = 4  # 12 steps: the kill lands with most of them to go
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "out"
    log = tmp_path / "killed.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [str(HANDFUL), "study", "--config", str(config), "--out", str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Killed once one checkpoint is whole (its trainer state is written last); the next may be half written.
        checkpoint = out / "points" / "curated-8" / "train" / "checkpoints" / "checkpoint-1" / "trainer_state.json"
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and not checkpoint.exists():
            time.sleep(0.02)
        assert proc.poll() is None, log.read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = (out / "points" / "curated-2" / "eval" / "samples.jsonl").stat().st_mtime_ns
    assert not (out / "points" / "curated-8" / "train" / "train.json").exists()
    resumed = subprocess.run(
        [str(HANDFUL), "study", "--config", str(config), "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert (
        "curated-8: training on 6 examples (resuming)" in resumed.stderr
        or "(resuming)" in resumed.stdout + resumed.stderr
    )
    assert (out / "points" / "curated-2" / "eval" / "samples.jsonl").stat().st_mtime_ns == done_before
    assert json.loads((out / "study.json").read_text())["points"]


def test_bad_study_settings_are_named(tmp_path):
    from handful.config import load_config
    from handful.errors import ConfigError
    from handful.recipe import load_recipe
    from handful.study import StudyConfig

    base = {"train": {"data": str(tmp_path / "none.jsonl")}, "eval": {"benchmarks": ["gsm8k"]}}
    with pytest.raises(ConfigError, match="random: picks need a pool to draw from and a teacher"):
        load_config(StudyConfig, data={**base, "random": [4]})
    with pytest.raises(ConfigError, match="sizes.0"):
        load_config(StudyConfig, data={**base, "sizes": [0]})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(base))
    refused = CliRunner().invoke(app, ["study", "--config", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")])
    assert refused.exit_code == 1 and "train.data:" in refused.output and "none.jsonl is not a file" in refused.output
    # In a recipe: the study needs what it trains like.
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "study": {"eval": {"benchmarks": ["gsm8k"]}}}))
    from handful.recipe import plan

    with pytest.raises(ConfigError, match="study trains like the train stage: it needs distill and train: sft"):
        plan(load_recipe(recipe)[0])
