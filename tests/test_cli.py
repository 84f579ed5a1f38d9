import json
import subprocess
import sys


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "handful", *args], capture_output=True, check=False, text=True, cwd=cwd
    )


def test_benchmarks_json():
    out = run("benchmarks", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["name"]: r["count"] for r in rows}["gsm8k"] == 1319
    assert set(rows[0]) == {"name", "count", "source", "license"}


def test_grade_writes_outcomes(tmp_path):
    pairs = [
        {"gold": "73", "pred": "Final Answer: **73**"},
        {"gold": "1", "pred": "nothing"},
        {"gold": "B", "pred": "(B)", "choices": ["x", "y"], "id": 9},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = run("grade", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["correct", "no_answer", "correct"]
    assert rows[2]["id"] == 9 and rows[0]["extracted"] == "73"
    assert "accuracy 0.6667 over 3 answers" in out.stdout


def test_bad_input_is_one_clear_line(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"gold": "1", "pred": "1"}\n{"gold": 1\n')
    out = run("grade", "--input", str(tmp_path / "in.jsonl"))
    assert out.returncode == 1
    assert "in.jsonl:2: malformed JSON" in out.stderr and "Traceback" not in out.stderr
