"""`handful precision`: the same problems with the same seeds once per precision, each paired
against float32, resumable, refused before any work when a precision cannot run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handful.cli import app
from handful.hardware import fast_on_cpu
from handful.records import Generation, read_jsonl

RUNNER = CliRunner()
SPEC = "dyn:addition?digits=2&n=8"


def cli(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout + result.stderr


def tiny_tensors(folder) -> bytes:
    """The weights' bytes as stored (float32, the tied embedding once)."""
    from safetensors.torch import load_file

    return b"".join(t.numpy().tobytes() for t in load_file(Path(folder) / "model.safetensors").values())


def study(model, out, *extra):
    return cli("precision", "--model", model, "--benchmark", SPEC, "--max-tokens", 24, "--out", out, *extra)


def test_the_study_pairs_every_precision_with_float32_and_resumes(tiny_model, tmp_path):
    out = tmp_path / "study"
    code, text = study(tiny_model, out, "--precisions", "int8")
    assert code == 0, text
    found = json.loads((out / "precision.json").read_text())
    rows = {p["precision"]: p for p in found["points"]}
    assert list(rows) == ["float32", "int8"]  # the reference first, though not asked for
    reference, int8 = (read_jsonl(out / "points" / p / "samples.jsonl", Generation) for p in rows)
    assert [g.key for g in reference] == [g.key for g in int8]  # the same fresh problems: one seed for all
    assert rows["float32"]["identical_to_float32"] == 1.0 and rows["float32"]["against_float32"]["difference"] == 0
    same = sum(a.text == b.text for a, b in zip(reference, int8)) / len(reference)
    assert rows["int8"]["identical_to_float32"] == pytest.approx(same)
    paired = rows["int8"]["against_float32"]
    accuracy = lambda samples: sum(g.correct for g in samples) / len(samples)
    assert paired["difference"] == pytest.approx(accuracy(int8) - accuracy(reference))
    assert paired["problems"] == 8 and paired["baseline"] == "float32" and paired["compared"] == "int8"
    # The tiny model is mostly its tied embedding, which int8 copies into a quantized LM head:
    # here int8 takes more memory, not less (SmolLM2 itself: 236 against 513 MiB).
    assert rows["float32"]["weights_mib"] == pytest.approx(len(tiny_tensors(tiny_model)) / 2**20, abs=0.05)
    assert rows["int8"]["weights_mib"] != rows["float32"]["weights_mib"]
    assert all(p["tokens_per_s"] > 0 and p["peak_rss_mib"] > 0 for p in rows.values())
    assert "int8" in text and "vs float32 (paired)" in text
    before = {p: (out / "points" / p / "samples.jsonl").read_bytes() for p in rows}
    speed = (out / "points" / "int8" / "speed.json").read_text()
    code, text = study(tiny_model, out, "--precisions", "int8")
    assert code == 0, text
    assert {p: (out / "points" / p / "samples.jsonl").read_bytes() for p in rows} == before  # nothing generated again
    assert (out / "points" / "int8" / "speed.json").read_text() == speed  # the figures of the run that generated


def test_the_report_shows_a_precision_study(tiny_model, tmp_path):
    out = tmp_path / "study"
    assert study(tiny_model, out, "--precisions", "int8")[0] == 0
    code, text = cli("report", out)
    assert code == 0, text
    page = (out / "report.html").read_text()
    assert "Numeric precision" in page and "difference from float32" in page and "int8" in page


def test_bad_precisions_are_refused_before_anything_is_written(tiny_model, tmp_path):
    out = tmp_path / "study"
    code, text = study(tiny_model, out, "--precisions", "float8")
    assert code == 1 and "unknown precision float8" in text and "int8" in text
    code, text = study(tiny_model, out, "--set", "eval.engine.name=program")
    assert code == 1 and "precision study loads the model itself" in text
    if not fast_on_cpu("bfloat16"):
        code, text = study(tiny_model, out, "--precisions", "bfloat16")
        assert code == 1 and "bfloat16" in text and "leave it out" in text
    assert not out.exists()


def test_a_recipe_runs_the_study_per_model():
    from handful.recipe import RunRecipe, plan

    recipe = RunRecipe.model_validate(
        {
            "name": "p",
            "precision": {
                "models": ["@base"],
                "study": {"eval": {"benchmarks": [SPEC + "&seed=3"]}, "precisions": ["int8"]},
            },
        }
    )
    stages = plan(recipe, {})
    assert [(s.name, s.kind) for s in stages] == [("precision/base", "precision")]
    assert stages[0].config.precisions == ["float32", "int8"]


def test_the_checkpoint_written_as_q4_1_holds_the_shipped_gguf_tensors(smollm2_path, tmp_path):
    """SmolLM2's checkpoint is its shipped Q4_1 GGUF dequantized: written back as Q4_1 it must give
    the same bytes, tensor by tensor, which holds only if names, layout and rotary order are right."""
    import gguf
    import numpy as np

    from handful.gguf_export import write_gguf
    from handful.models import MODELS, _gguf_source

    shipped = Path(*_gguf_source(MODELS["smollm2-135m"]))
    written = write_gguf(smollm2_path, shipped, tmp_path / "q4_1.gguf", "Q4_1")
    a, b = gguf.GGUFReader(shipped), gguf.GGUFReader(written)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    assert all(
        ta.tensor_type == tb.tensor_type and np.array_equal(ta.data, tb.data) for ta, tb in zip(a.tensors, b.tensors)
    )
    assert not (tmp_path / "q4_1.gguf.partial").exists()


def test_gguf_points_run_through_a_llama_cpp_server_the_study_starts(smollm2_path, tmp_path):
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    out = tmp_path / "study"
    code, text = study("smollm2-135m", out, "--precisions", "gguf:Q8_0")
    assert code == 0, text
    rows = {p["precision"]: p for p in json.loads((out / "precision.json").read_text())["points"]}
    assert list(rows) == ["float32", "gguf:Q8_0"]
    served = read_jsonl(out / "points" / "gguf-Q8_0" / "samples.jsonl", Generation)
    assert {g.engine for g in served} == {"openai"} and len(served) == 8
    q8 = rows["gguf:Q8_0"]
    assert q8["weights_mib"] == pytest.approx((out / "gguf" / "Q8_0.gguf").stat().st_size / 2**20, abs=0.1)
    assert q8["peak_rss_mib"] > 0 and q8["tokens_per_s"] > 0 and q8["against_float32"]["problems"] == 8


def test_a_gguf_the_server_cannot_load_stops_the_study_and_keeps_what_was_done(smollm2_path, tmp_path):
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    out = tmp_path / "study"
    (out / "gguf").mkdir(parents=True)
    (out / "gguf" / "Q4_0.gguf").write_bytes(b"GGUF" + b"\0" * 64)  # a damaged file
    code, text = study("smollm2-135m", out, "--precisions", "gguf:Q4_0")
    assert code == 1 and "could not load" in text and "Q4_0.gguf" in text and "server.log" in text
    assert len(read_jsonl(out / "points" / "float32" / "samples.jsonl", Generation)) == 8  # the reference is kept


def test_a_server_that_dies_mid_point_stops_the_study_which_then_resumes(smollm2_path, tmp_path, monkeypatch):
    """The server is killed once the point has written a sample: the study stops with the server named,
    keeps every sample done, and running it again finishes the point without asking for those again."""
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    import threading
    import time

    from handful.engines import llama_server

    started = []

    class Watched(llama_server.LlamaServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(llama_server, "LlamaServer", Watched)
    out = tmp_path / "study"
    samples = out / "points" / "gguf-Q8_0" / "samples.jsonl"

    def kill_after_the_first_sample():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (started and samples.exists() and samples.read_text().strip()):
            time.sleep(0.01)
        if started:
            started[0].proc.kill()

    killer = threading.Thread(target=kill_after_the_first_sample, daemon=True)
    killer.start()
    args = ("--precisions", "gguf:Q8_0", "--set", "eval.engine.max_retries=1", "--set", "eval.engine.concurrency=1")
    code, text = study("smollm2-135m", out, *args)
    killer.join()
    kept = read_jsonl(samples, Generation)
    assert code == 1 and "server for gguf:Q8_0 stopped" in text and "server.log" in text, text
    assert 1 <= len(kept) < 8 and f"the {len(kept)} samples done are kept" in " ".join(text.split())
    assert len(read_jsonl(out / "points" / "float32" / "samples.jsonl", Generation)) == 8
    code, text = study("smollm2-135m", out, *args)
    assert code == 0, text
    again = read_jsonl(samples, Generation)
    assert len(again) == 8 and [g.key for g in again[: len(kept)]] == [g.key for g in kept]
    assert [g.text for g in again[: len(kept)]] == [g.text for g in kept]


def test_a_model_no_shipped_gguf_matches_is_refused_for_gguf_points(tiny_model, tmp_path):
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    code, text = study(tiny_model, tmp_path / "study", "--precisions", "gguf:Q8_0")
    assert code == 1 and "no shipped GGUF has its shape" in text
