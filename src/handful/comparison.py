"""Two runs on the same problems, compared as pairs: before and after fine-tuning, with and
without a budget, one precision against another.

Outcomes on the same problem are correlated (an easy problem is easy for both), so the
difference is resampled by problem: one draw of problem ids is applied to both sides (a
paired bootstrap of the per-problem differences). Its p-value is the exact sign test over
the problems one side does better on; with one sample per problem on each side that is the
exact McNemar test. Resampling the two sides independently would ignore the pairing and give
a wider interval for the same evidence.

Pairing is by problem id. Two runs that did not see the same problems are refused, naming
the ids, unless the caller asks for the shared problems only (`intersect`), and then the
dropped ids are kept in the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from handful.errors import ConfigError, ScoringError
from handful.metrics import bootstrap_ci, halving, per_problem
from handful.records import Generation

RESAMPLES = 2000


class Comparison(BaseModel):
    """B against A (the baseline) on the same problems."""

    benchmark: str
    baseline: str  # A's label
    compared: str  # B's label
    problems: int
    dropped: list[str] = Field(default_factory=list, description="problem ids seen by one side only (intersect)")
    baseline_accuracy: float
    baseline_ci95: tuple[float, float]
    accuracy: float
    ci95: tuple[float, float]
    difference: float  # accuracy - baseline_accuracy
    difference_ci95: tuple[float, float]  # paired bootstrap over problems
    p_value: float
    test: str  # "exact McNemar" (one sample per problem) or "sign test over problems"
    better: int  # problems where B's per-problem accuracy is higher
    worse: int  # problems where it is lower

    def advice(self) -> str:
        """What would narrow the difference's interval."""
        return halving(self.difference_ci95, self.problems)

    @property
    def separated(self) -> bool:
        """Whether the paired interval of the difference excludes zero."""
        return self.difference_ci95[0] > 0 or self.difference_ci95[1] < 0


def paired_bootstrap_ci(differences: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean per-problem difference, resampling problems."""
    from scipy.stats import bootstrap

    if len(differences) == 0:
        raise ScoringError("a comparison needs at least one problem seen by both sides")
    if np.all(differences == differences[0]):
        return float(differences[0]), float(differences[0])  # no spread: every resample is the same
    found = bootstrap(
        (differences,), np.mean, n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(seed)
    )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact p-value of `better` against `worse` problems, ties left out."""
    if better + worse == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(better, better + worse, 0.5).pvalue)


def match(
    a: Iterable[str], b: Iterable[str], intersect: bool, what: str, noun: str = "problems"
) -> tuple[list[str], list[str]]:
    """(shared names in order, dropped names); refuses two different sets unless intersect."""
    left, right = set(a), set(b)
    only_a, only_b = sorted(left - right), sorted(right - left)
    if (only_a or only_b) and not intersect:

        def shown(ids: list[str]) -> str:
            return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")

        sides = [f"{len(ids)} only in {side} ({shown(ids)})" for side, ids in (("A", only_a), ("B", only_b)) if ids]
        raise ScoringError(
            f"{what}: the two runs did not see the same {noun}: {'; '.join(sides)}; "
            f"compare the shared {noun} only with --intersect"
        )
    return sorted(left & right), only_a + only_b


def compare(
    a: dict[str, float],
    b: dict[str, float],
    *,
    benchmark: str,
    baseline: str,
    compared: str,
    single_sample: bool,
    intersect: bool = False,
    seed: int = 0,
) -> Comparison:
    """B against A from per-problem accuracies keyed by problem id."""
    shared, dropped = match(a, b, intersect, benchmark)
    if not shared:
        raise ScoringError(f"{benchmark}: the two runs share no problem")
    x, y = np.array([a[p] for p in shared]), np.array([b[p] for p in shared])
    d = y - x
    better, worse = int((d > 0).sum()), int((d < 0).sum())
    return Comparison(
        benchmark=benchmark,
        baseline=baseline,
        compared=compared,
        problems=len(shared),
        dropped=dropped,
        baseline_accuracy=float(x.mean()),
        baseline_ci95=bootstrap_ci(x, seed=seed),
        accuracy=float(y.mean()),
        ci95=bootstrap_ci(y, seed=seed),
        difference=float(d.mean()),
        difference_ci95=paired_bootstrap_ci(d, seed),
        p_value=sign_test(better, worse),
        test="exact McNemar" if single_sample else "sign test over problems",
        better=better,
        worse=worse,
    )


def compare_samples(
    a: list[Generation],
    b: list[Generation],
    n_a: int,
    n_b: int,
    *,
    baseline: str,
    compared: str,
    intersect: bool = False,
    seed: int = 0,
) -> list[Comparison]:
    """Per benchmark, and over all of them together when there are several (problems keyed by
    benchmark and id), B against A."""
    benchmarks = list(dict.fromkeys(g.benchmark or "" for g in [*a, *b]))
    found, pooled_a, pooled_b = [], {}, {}
    single = n_a == 1 and n_b == 1
    for bench in benchmarks:
        mine_a = per_problem([g for g in a if (g.benchmark or "") == bench], n_a)
        mine_b = per_problem([g for g in b if (g.benchmark or "") == bench], n_b)
        found.append(
            compare(
                mine_a,
                mine_b,
                benchmark=bench,
                baseline=baseline,
                compared=compared,
                single_sample=single,
                intersect=intersect,
                seed=seed,
            )
        )
        shared = set(mine_a) & set(mine_b)
        pooled_a.update({f"{bench}/{p}": v for p, v in mine_a.items() if p in shared})
        pooled_b.update({f"{bench}/{p}": v for p, v in mine_b.items() if p in shared})
    if len(benchmarks) > 1:
        everything = compare(
            pooled_a,
            pooled_b,
            benchmark="all of them",
            baseline=baseline,
            compared=compared,
            single_sample=single,
            seed=seed,
        )
        found.append(everything.model_copy(update={"dropped": [d for c in found for d in c.dropped]}))
    return found


def read_eval(folder: Path) -> tuple[str, int, list[Generation]]:
    """(label, samples per problem, samples) of a finished eval folder or scale point."""
    from handful.benchmarks import benchmark_name
    from handful.evaluation import RUN_FILE, SAMPLES_FILE
    from handful.files import read_json
    from handful.records import read_jsonl

    if not (folder / RUN_FILE).is_file() or not (folder / SAMPLES_FILE).is_file():
        raise ConfigError(
            f"{folder}: not an eval run (no {RUN_FILE} and {SAMPLES_FILE}); give a folder written by "
            "`handful eval`, an eval stage of a run (RUN/eval/NAME/MODEL) or a scale point (SCALE/points/NAME)"
        )
    config = read_json(folder / RUN_FILE, "run settings file").get("config") or {}
    known = {benchmark_name(spec) for spec in config.get("benchmarks", [])}
    samples = read_jsonl(folder / SAMPLES_FILE, Generation)
    unknown = sorted({g.benchmark for g in samples if g.benchmark not in known})
    if unknown:
        raise ConfigError(
            f"{folder / SAMPLES_FILE}: samples name benchmarks its {RUN_FILE} does not ({', '.join(map(str, unknown))})"
        )
    return f"{folder.name} ({config.get('model', 'model unknown')})", int(config.get("n", 1)), samples


def compare_folders(a: str | Path, b: str | Path, *, intersect: bool = False, seed: int = 0) -> list[Comparison]:
    """`handful compare A B`: B against A, per benchmark they share and over all of them."""
    (label_a, n_a, samples_a), (label_b, n_b, samples_b) = read_eval(Path(a)), read_eval(Path(b))
    shared, _ = match(
        (g.benchmark for g in samples_a), (g.benchmark for g in samples_b), intersect, f"{a} and {b}", "benchmarks"
    )
    if not shared:
        raise ScoringError(f"{a} and {b} share no benchmark")
    return compare_samples(
        [g for g in samples_a if g.benchmark in shared],
        [g for g in samples_b if g.benchmark in shared],
        n_a,
        n_b,
        baseline=label_a,
        compared=label_b,
        intersect=intersect,
        seed=seed,
    )
