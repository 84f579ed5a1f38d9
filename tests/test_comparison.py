"""Paired comparisons: narrower than independent intervals on correlated outcomes, equal to
brute force, exact McNemar, refused on different problem sets, and `handful compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from handful.cli import app
from handful.comparison import compare, compare_folders, compare_samples, paired_bootstrap_ci
from handful.errors import ConfigError, ScoringError
from handful.metrics import difference_ci
from handful.records import Generation, read_jsonl, write_jsonl

RUNNER = CliRunner()
SPEC = "dyn:addition?digits=2&n=8&seed=11"


def correlated(problems: int = 60, seed: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """Greedy outcomes where B mostly keeps A's verdict and fixes a few: strongly paired."""
    rng = np.random.default_rng(seed)
    a = rng.random(problems) < 0.4
    b = a.copy()
    fixed = rng.choice(np.flatnonzero(~a), size=10, replace=False)
    b[fixed] = True
    broke = rng.choice(np.flatnonzero(a), size=1, replace=False)
    b[broke] = False
    ids = [f"p{i:03d}" for i in range(problems)]
    return dict(zip(ids, a.astype(float))), dict(zip(ids, b.astype(float)))


def brute_force_paired(a: dict, b: dict, resamples: int = 200_000) -> tuple[float, float]:
    d = np.array([b[k] - a[k] for k in sorted(a)])
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def brute_force_independent(a: dict, b: dict, resamples: int = 200_000) -> tuple[float, float]:
    x, y = np.array([a[k] for k in sorted(a)]), np.array([b[k] for k in sorted(b)])
    rng = np.random.default_rng(1)
    ys = y[rng.integers(0, len(y), size=(resamples, len(y)))].mean(axis=1)
    xs = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    return float(np.percentile(ys - xs, 2.5)), float(np.percentile(ys - xs, 97.5))


def test_the_paired_interval_is_narrower_and_both_match_brute_force():
    a, b = correlated()
    c = compare(a, b, benchmark="x", baseline="A", compared="B", single_sample=True)
    assert c.difference == pytest.approx(9 / 60) and (c.better, c.worse) == (10, 1)
    _, independent = difference_ci(list(b.values()), list(a.values()))
    assert c.difference_ci95[1] - c.difference_ci95[0] < 0.75 * (independent[1] - independent[0])
    assert c.difference_ci95 == pytest.approx(brute_force_paired(a, b), abs=0.02)
    assert independent == pytest.approx(brute_force_independent(a, b), abs=0.02)
    assert c.separated and not (independent[0] > 0)  # pairing settles what the independent interval does not
    assert c.advice().endswith("240 problems would halve it")


def test_exact_mcnemar_agrees_with_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = correlated()
    c = compare(a, b, benchmark="x", baseline="A", compared="B", single_sample=True)
    both = sum(a[k] == 1 and b[k] == 1 for k in a)
    neither = sum(a[k] == 0 and b[k] == 0 for k in a)
    table = [[both, c.worse], [c.better, neither]]
    assert c.test == "exact McNemar" and c.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)


def test_no_spread_gives_a_point_interval_and_p_one():
    same = {f"p{i}": float(i % 2) for i in range(10)}
    c = compare(same, dict(same), benchmark="x", baseline="A", compared="B", single_sample=True)
    assert c.difference == 0 and c.difference_ci95 == (0.0, 0.0) and c.p_value == 1.0
    assert paired_bootstrap_ci(np.array([0.5, 0.5])) == (0.5, 0.5)


def test_different_problem_sets_are_refused_by_name_or_intersected():
    a, b = correlated(20)
    b.pop("p003")
    b["extra"] = 1.0
    with pytest.raises(ScoringError, match=r"1 only in A \(p003\); 1 only in B \(extra\).*--intersect"):
        compare(a, b, benchmark="x", baseline="A", compared="B", single_sample=True)
    c = compare(a, b, benchmark="x", baseline="A", compared="B", single_sample=True, intersect=True)
    assert c.problems == 19 and c.dropped == ["p003", "extra"]


def _samples(ids, correct, n=1, bench="b"):
    return [
        Generation(problem_id=i, benchmark=bench, sample_index=k, model="m", text="", correct=ok, outcome="correct")
        for i, ok in zip(ids, correct)
        for k in range(n)
    ]


def test_several_samples_per_problem_use_per_problem_means_and_pool_benchmarks():
    ids = [f"q{i}" for i in range(6)]
    a = _samples(ids, [False] * 6, n=2) + _samples(ids, [True] * 6, n=2, bench="c")
    b = _samples(ids, [True] * 4 + [False] * 2, n=2) + _samples(ids, [True] * 6, n=2, bench="c")
    found = compare_samples(a, b, 2, 2, baseline="A", compared="B")
    assert [c.benchmark for c in found] == ["b", "c", "all of them"]
    assert found[0].difference == pytest.approx(4 / 6) and found[0].test == "sign test over problems"
    assert found[2].problems == 12 and found[2].difference == pytest.approx(4 / 12)


@pytest.fixture(scope="module")
def two_runs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    common = ["--model", tiny_model, "--benchmark", SPEC]
    for name, extra in (("random", ["--max-tokens", "4"]), ("teacher", ["--engine", "program"])):
        result = RUNNER.invoke(app, ["eval", *map(str, common), *extra, "--out", str(root / name)])
        assert result.exit_code == 0, result.output
    return root


def test_handful_compare_prints_the_paired_difference(two_runs):
    result = RUNNER.invoke(app, ["compare", str(two_runs / "random"), str(two_runs / "teacher")])
    assert result.exit_code == 0, result.output
    assert "paired, 8 problems: 8 better, 0 worse" in result.output and "exact McNemar" in result.output
    data = json.loads(
        RUNNER.invoke(app, ["compare", str(two_runs / "random"), str(two_runs / "teacher"), "--json"]).output
    )
    assert data[0]["difference"] == 1.0 and data[0]["p_value"] == pytest.approx(2 / 2**8)


def test_compare_refuses_what_is_not_an_eval_run_and_unknown_benchmarks(two_runs, tmp_path):
    with pytest.raises(ConfigError, match="not an eval run"):
        compare_folders(tmp_path, two_runs / "teacher")
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("run.json", "samples.jsonl"):
        (changed / name).write_bytes((two_runs / "random" / name).read_bytes())
    samples = read_jsonl(changed / "samples.jsonl", Generation)
    write_jsonl(changed / "samples.jsonl", [g.model_copy(update={"benchmark": "mystery"}) for g in samples])
    before = (changed / "samples.jsonl").read_bytes()
    result = RUNNER.invoke(app, ["compare", str(changed), str(two_runs / "teacher")])
    assert result.exit_code == 1 and "mystery" in result.output and "Traceback" not in result.output
    assert (changed / "samples.jsonl").read_bytes() == before  # nothing rewritten


def test_compare_refuses_different_benchmarks_by_name(two_runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    run = json.loads((two_runs / "teacher" / "run.json").read_text())
    run["config"]["benchmarks"] = ["dyn:multiplication?digits=2&n=8&seed=11"]
    (other / "run.json").write_text(json.dumps(run))
    samples = read_jsonl(two_runs / "teacher" / "samples.jsonl", Generation)
    write_jsonl(
        other / "samples.jsonl", [g.model_copy(update={"benchmark": "dyn:multiplication?digits=2"}) for g in samples]
    )
    with pytest.raises(ScoringError, match=r"did not see the same benchmarks: 1 only in A \(dyn:addition\?digits=2\)"):
        compare_folders(two_runs / "random", other)
    with pytest.raises(ScoringError, match="share no benchmark"):
        compare_folders(two_runs / "random", other, intersect=True)
