"""Difficulty: how often reference models solve each problem, and what to keep.

Each reference model is an ordinary `handful eval` run over the candidates, in the stage's
own folder, so it caches every graded sample and resumes like any eval. Policies:
- s1: drop what any reference model solves at all;
- limo: keep what every reference model solves at most `max_solved` times of n;
- band: keep a mean solve rate strictly inside (low, high) (open-r1's band for RL).
"""

from __future__ import annotations

from pathlib import Path

from handful.config import EvalConfig
from handful.evaluation import SAMPLES_FILE, evaluate
from handful.records import Generation, Problem, read_jsonl, write_jsonl


def reference_name(ref: EvalConfig, index: int) -> str:
    return f"{index}-{Path(ref.model).name}"


def solve_counts(
    problems: list[Problem], references: list[EvalConfig], folder: Path
) -> dict[str, dict[str, tuple[int, int]]]:
    """{problem id: {reference: (solved, n)}}."""
    folder.mkdir(parents=True, exist_ok=True)
    candidates = folder / "candidates.jsonl"
    write_jsonl(candidates, problems)
    counts: dict[str, dict[str, tuple[int, int]]] = {p.id: {} for p in problems}
    for i, ref in enumerate(references):
        name = reference_name(ref, i)
        cfg = ref.model_copy(update={"benchmarks": [str(candidates)], "limit": None})
        evaluate(cfg, folder / name)
        for g in read_jsonl(folder / name / SAMPLES_FILE, Generation):
            solved, n = counts[g.problem_id].get(name, (0, 0))
            counts[g.problem_id][name] = (solved + bool(g.correct), n + 1)
    return counts


def verdict(rates: dict[str, tuple[int, int]], policy: str, max_solved: int, band: tuple[float, float]) -> str | None:
    """None to keep, else why the problem goes."""
    if policy == "s1":
        solvers = [name for name, (solved, _) in rates.items() if solved]
        return f"solved by {', '.join(solvers)}" if solvers else None
    if policy == "limo":
        easy = [f"{name} {solved}/{n}" for name, (solved, n) in rates.items() if solved > max_solved]
        return f"solved more than {max_solved} times: {', '.join(easy)}" if easy else None
    mean = sum(s / n for s, n in rates.values()) / len(rates)
    low, high = band
    return None if low < mean < high else f"mean solve rate {mean:.2f} outside ({low}, {high})"
