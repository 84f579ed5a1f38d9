"""`handful regrade`: samples graded under an older rule are brought up to the current grader,
every changed verdict is reported, scores follow, a kill loses nothing, and resuming an eval
graded by another version points to regrade."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from handful.cli import app
from handful.grading import VERSION
from handful.records import Generation, read_jsonl, write_jsonl

RUNNER = CliRunner()
SPEC = "dyn:addition?digits=3&n=20&seed=9"


def cli(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout + result.stderr


def program_eval(out, tiny_model, spec=SPEC):
    return ["eval", "--model", tiny_model, "--engine", "program", "--benchmark", spec, "--out", out]


def as_if_graded_by_version_1(path, every: int = 2) -> int:
    """Every `every`-th sample becomes an output cut off in its thinking, with the right answer
    boxed there: version 1 counted it correct, version 2 (a cut-off output counts only an answer
    it marked as final, after its thinking) does not."""
    samples, changed = read_jsonl(path, Generation), 0
    for i, g in enumerate(samples):
        update = {"grader": "1"}
        if i % every == 0:
            thinking = g.thinking or "working"
            update |= {"text": f"<think>{thinking} so \\boxed{{{g.extracted}}} maybe", "finish_reason": "length"}
            update |= {"thinking": f"{thinking} so \\boxed{{{g.extracted}}} maybe", "answer_text": ""}
            changed += 1
        samples[i] = g.model_copy(update=update)
    write_jsonl(path, samples)
    return changed


def test_regrade_changes_what_the_rule_changed_and_rescores(tiny_model, tmp_path):
    out = tmp_path / "eval"
    code, text = cli(*program_eval(out, tiny_model))
    assert code == 0, text
    cut = as_if_graded_by_version_1(out / "samples.jsonl")
    code, text = cli("regrade", out)
    assert code == 0, text
    assert f"verdicts changed: correct -> no_answer: {cut}" in text and "accuracy 1.000 -> 0.500" in text
    samples = read_jsonl(out / "samples.jsonl", Generation)
    assert len(samples) == 20 and {g.grader for g in samples} == {VERSION}
    assert sum(g.outcome == "no_answer" for g in samples) == cut
    scores = json.loads((out / "scores.json").read_text())
    assert scores["benchmarks"]["dyn:addition?digits=3"]["accuracy"] == 0.5
    assert scores["versions"]["handful-grader"] == VERSION
    code, text = cli("regrade", out)  # idempotent
    assert code == 0 and "verdicts changed: none" in text


def test_resuming_an_eval_graded_by_another_version_points_to_regrade(tiny_model, tmp_path):
    out = tmp_path / "eval"
    assert cli(*program_eval(out, tiny_model))[0] == 0
    as_if_graded_by_version_1(out / "samples.jsonl", every=1000)
    before = (out / "samples.jsonl").read_bytes()
    code, text = cli(*program_eval(out, tiny_model))
    assert code == 1 and "grader version 1" in text and "handful regrade" in text
    assert (out / "samples.jsonl").read_bytes() == before


def test_a_kill_during_regrade_loses_nothing(tiny_model, tmp_path):
    out = tmp_path / "eval"
    spec = "dyn:addition?digits=3&n=1500&seed=2"
    assert cli(*program_eval(out, tiny_model, spec))[0] == 0
    as_if_graded_by_version_1(out / "samples.jsonl")
    command = [sys.executable, "-m", "handful", "regrade", str(out), "--workers", "1"]
    killed = 0
    for delay in (0.7, 1.0, 1.3, 1.6):  # across start-up, grading and writing
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(delay)
        os.killpg(child.pid, signal.SIGKILL)
        killed += child.wait() == -signal.SIGKILL
        samples = read_jsonl(out / "samples.jsonl", Generation)  # whole: either as it was or regraded
        assert len(samples) == 1500 and len({g.grader for g in samples}) == 1
        as_if_graded_by_version_1(out / "samples.jsonl")  # the next kill meets old verdicts again
    assert killed  # at least one kill met a running regrade
    code, text = cli("regrade", out)
    assert code == 0, text
    assert {g.grader for g in read_jsonl(out / "samples.jsonl", Generation)} == {VERSION}


@pytest.mark.parametrize("what", ["empty", "unknown problems"])
def test_bad_input_is_named_and_nothing_is_rewritten(tiny_model, tmp_path, what):
    out = tmp_path / "eval"
    if what == "empty":
        out.mkdir()
        code, text = cli("regrade", out)
        assert code == 1 and "no eval run here" in text
        return
    assert cli(*program_eval(out, tiny_model))[0] == 0
    samples = read_jsonl(out / "samples.jsonl", Generation)
    write_jsonl(out / "samples.jsonl", [g.model_copy(update={"problem_id": "stranger"}) for g in samples[:1]])
    before = (out / "samples.jsonl").read_bytes()
    code, text = cli("regrade", out)
    assert code == 1 and "stranger" in text and "nothing was rewritten" in text
    assert (out / "samples.jsonl").read_bytes() == before


def test_regrading_a_precision_study_recomputes_its_table(tiny_model, tmp_path):
    """A sweep's table is computed from its points' samples: regraded points, a new table."""
    out = tmp_path / "study"
    code, text = cli("precision", "--model", tiny_model, "--benchmark", SPEC, "--max-tokens", 16, "--out", out)
    assert code == 0, text
    samples = out / "points" / "float32" / "samples.jsonl"
    stored = read_jsonl(samples, Generation)
    # Version 1 as far as these samples know: every verdict flipped to correct.
    write_jsonl(samples, [g.model_copy(update={"grader": "1", "correct": True, "outcome": "correct"}) for g in stored])
    # ... and the table as that grader would have computed it.
    table = json.loads((out / "precision.json").read_text())
    table["points"][0]["accuracy"] = 1.0
    (out / "precision.json").write_text(json.dumps(table))
    code, text = cli("regrade", out)
    assert code == 0, text
    after = json.loads((out / "precision.json").read_text())["points"][0]
    truth = sum(g.correct for g in stored) / len(stored)
    scores = json.loads((out / "points" / "float32" / "scores.json").read_text())
    assert after["precision"] == "float32" and after["accuracy"] == pytest.approx(truth)
    assert scores["benchmarks"][after["benchmark"]]["accuracy"] == pytest.approx(truth) and truth < 1.0
