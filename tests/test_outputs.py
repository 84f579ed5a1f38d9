"""`handful report DIR` and `handful transparency DIR` on the folder of a single command: they
show what is there, and the items that need what only `handful run` records are missing, each
saying why."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from handful import outputs, transparency
from handful.cli import app

RUNNER = CliRunner()
FRESH = "dyn:addition?digits=2&n=4&seed=5"


def cli(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture(scope="module")
def folders(tiny_model, tmp_path_factory):
    """One folder per quick command, each written for real."""
    root = tmp_path_factory.mktemp("folders")
    made = {
        "eval": ["eval", "--model", tiny_model, "--engine", "program", "--benchmark", FRESH],
        "curate": ["curate", "--pool", "dyn:addition?digits=2&n=12&seed=3", "--target", "4"],
        "distill": ["distill", "--problems", FRESH, "--teacher", "program", "--student", tiny_model],
        "scale": [
            "scale",
            "--model",
            tiny_model,
            "--engine",
            "program",
            "--benchmark",
            FRESH,
            "--max-thinking",
            "8,16",
        ],
    }
    for name, args in made.items():
        code, text = cli(*args, "--out", root / name)
        assert code == 0, (name, text)
    return root


@pytest.mark.parametrize("kind", ["eval", "curate", "distill", "scale"])
def test_a_single_commands_folder_is_read_as_its_one_stage(folders, kind):
    view = outputs.read(folders / kind)
    assert view.standalone and [s.kind for s in view.stages] == [kind]
    assert view.stages[0].done and view.stages[0].config and view.stages[0].folder == folders / kind
    if kind == "eval":
        assert [s.accuracy for s in view.stages[0].scores.values()] == [1.0]  # the program teacher


@pytest.mark.parametrize("kind", ["eval", "curate", "distill", "scale"])
def test_report_and_transparency_work_on_a_single_commands_folder(folders, kind):
    folder = folders / kind
    code, text = cli("report", folder)
    assert code == 0, text
    page = (folder / "report.html").read_text()
    assert "<h1>" in page and "machine not recorded" in page
    code, text = cli("transparency", folder, "--json")
    assert code == 0, text
    score = json.loads(text[text.index("{") :])
    assert score["written_by"].startswith("handful ") and score["written_by"] != "handful run"
    items = {i["check"]: i for i in score["items"]}
    # What only `handful run` records costs points, and says so.
    for check in ("compute", "evaluation_code"):
        if items[check]["status"] == transparency.MISSING:
            assert "`handful run` does" in items[check]["evidence"], items[check]
    assert items["compute"]["status"] == transparency.MISSING
    assert items["write_up"]["status"] == transparency.MET  # the report just written
    assert score["total"] < 100


def test_eval_folder_shows_its_scores_and_questions(folders):
    page = (folders / "eval" / "report.html").read_text() if (folders / "eval" / "report.html").exists() else None
    if page is None:
        assert cli("report", folders / "eval")[0] == 0
        page = (folders / "eval" / "report.html").read_text()
    assert 'id="scores"' in page and 'id="browser"' in page
    data = json.loads(page.split('id="samples-data">', 1)[1].split("</script>", 1)[0])
    assert len(data) == 4 and all(row["question"] and row["gold"] for row in data)  # from benchmarks.jsonl


def test_curate_folder_shows_its_funnel(folders):
    assert cli("report", folders / "curate")[0] == 0
    assert 'id="funnel"' in (folders / "curate" / "report.html").read_text()


def test_the_transparency_table_says_why_a_folder_scores_less(folders):
    code, text = cli("transparency", folders / "eval")
    # The sentence starts with the folder's path, so where the terminal wraps it depends on the path's length.
    assert code == 0 and "is the folder of `handful eval`" in " ".join(text.split())


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_a_directory_handful_did_not_write_is_named(tmp_path, what):
    folder = tmp_path / "nothing"
    if what == "empty":
        folder.mkdir()
    for command in ("report", "transparency"):
        code, text = cli(command, folder)
        assert code == 1 and str(folder) in text and "Traceback" not in text
        assert ("nothing handful wrote is here" if what == "empty" else "no such directory") in text


def test_scale_points_are_compared_with_the_first_paired(folders):
    curve = json.loads((folders / "scale" / "curve.json").read_text())
    first = curve["points"][0]["point"]
    for p in curve["points"]:
        c = p["against_first"]
        assert c["baseline"] == first and c["compared"] == p["point"] and c["problems"] == 4
        assert c["test"] == "exact McNemar" and c["difference"] == 0.0  # the program teacher is always right
