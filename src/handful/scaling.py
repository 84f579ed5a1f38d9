"""`handful scale`: a sweep of thinking budgets, and the accuracy-vs-thinking-tokens curve (s1, fig. 1).

Each point of the sweep is one `handful eval` run in `OUT/points/NAME/`, resumable like any
other; the curve is computed from their samples. Two numbers summarise it, as s1 defines them:

- control: the share of samples whose thinking landed within the requested budget
  (min <= thinking tokens <= max);
- scaling slope: the mean, over consecutive points sorted by average thinking tokens, of
  (accuracy gain) / (log2 of the ratio of their average thinking tokens): accuracy gained per
  doubling of thinking.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from handful.comparison import compare, compare_samples
from handful.config import Config, EvalConfig
from handful.errors import ConfigError
from handful.evaluation import SAMPLES_FILE, evaluate, seed_benchmarks
from handful.files import RunDirectory, write_json
from handful.metrics import group_by_problem, majority_correct, per_problem
from handful.records import Generation, read_jsonl


class ScaleConfig(Config):
    eval: EvalConfig = Field(default_factory=EvalConfig)
    max_thinking: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [64, 128, 256, 512], min_length=1)
    min_thinking: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    waits: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    votes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1], min_length=1, description="maj@k for these k; n = the largest"
    )

    @model_validator(mode="after")
    def _sampled_when_voting(self):
        if max(self.votes) > 1 and self.eval.sampling.temperature == 0:
            raise ValueError("votes > 1 needs sampling (set --temperature above 0): greedy samples are all the same")
        return self


def points(cfg: ScaleConfig) -> list[tuple[str, dict]]:
    chosen = []
    for top, low, waits in itertools.product(cfg.max_thinking, cfg.min_thinking, cfg.waits):
        if low <= top:
            chosen.append(
                (
                    f"max{top}_min{low}_waits{waits}",
                    {"max_thinking_tokens": top, "min_thinking_tokens": low, "max_waits": waits},
                )
            )
    if not chosen:
        raise ConfigError("no point of the sweep has min_thinking <= max_thinking")
    return chosen


def slope(curve: list[dict]) -> float | None:
    ordered = sorted((p for p in curve if p["avg_thinking_tokens"] > 0), key=lambda p: p["avg_thinking_tokens"])
    steps = [
        (b["accuracy"] - a["accuracy"]) / math.log2(b["avg_thinking_tokens"] / a["avg_thinking_tokens"])
        for a, b in itertools.pairwise(ordered)
        if b["avg_thinking_tokens"] > a["avg_thinking_tokens"]
    ]
    return sum(steps) / len(steps) if steps else None


def matched(curve: list[dict], samples: dict[str, list[Generation]], n: int) -> list[dict]:
    """Sequential against parallel thinking at about the same tokens (s1's comparison, disputed
    by its users): each larger budget, one sample per problem, against a majority vote of k
    samples at the smallest budget, for the k whose tokens per problem come closest. Paired by
    problem: a budget point's per-problem accuracy is its share of correct samples."""
    first = curve[0]["point"]
    found = []
    for bench in dict.fromkeys(p["benchmark"] for p in curve):
        mine = {p["point"]: p for p in curve if p["benchmark"] == bench}
        votes = group_by_problem([g for g in samples[first] if g.benchmark == bench], n)
        for name, point in mine.items():
            if name == first:
                continue
            k = min(range(1, n + 1), key=lambda k: abs(k * mine[first]["avg_tokens"] - point["avg_tokens"]))
            if k == 1:
                continue  # one sample at the smallest budget is the curve's own comparison
            # group_by_problem orders each problem's samples by index: the first k are maj@k's.
            parallel = {pid: float(majority_correct(gs[:k])) for pid, gs in votes.items()}
            sequential = per_problem([g for g in samples[name] if g.benchmark == bench], n)
            c = compare(
                parallel,
                sequential,
                benchmark=bench,
                baseline=f"maj@{k} at {first}",
                compared=name,
                single_sample=False,
            )
            found.append(
                {
                    "benchmark": bench,
                    "sequential": name,
                    "sequential_tokens": point["avg_tokens"],
                    "parallel": f"maj@{k} at {first}",
                    "parallel_tokens": k * mine[first]["avg_tokens"],
                    "comparison": c.model_dump(mode="json"),
                }
            )
    return found


def scale(cfg: ScaleConfig, out: str | Path) -> dict:
    with RunDirectory(out) as folder:
        return sweep(cfg, folder)


def sweep(cfg: ScaleConfig, out: Path) -> dict:
    n = max(cfg.votes)
    curve = []
    # Every point must see the same fresh problems: seeds are fixed once, by the first point.
    cfg = cfg.model_copy(update={"eval": seed_benchmarks(cfg.eval, out / "points" / points(cfg)[0][0])})
    first: tuple[str, list[Generation]] | None = None
    every: dict[str, list[Generation]] = {}
    for name, budget in points(cfg):
        point_cfg = cfg.eval.model_copy(update={"n": n, "budget": cfg.eval.budget.model_copy(update=budget)})
        scores = evaluate(point_cfg, out / "points" / name)
        samples = read_jsonl(out / "points" / name / SAMPLES_FILE, Generation)
        first = first or (name, samples)
        every[name] = samples
        # Every point against the first (the smallest budget), on the same problems: paired.
        against = {
            c.benchmark: c.model_dump(mode="json")
            for c in compare_samples(first[1], samples, n, n, baseline=first[0], compared=name)
        }
        for bench, s in scores.benchmarks.items():
            mine = [g for g in samples if g.benchmark == bench]
            inside = sum(
                budget["min_thinking_tokens"] <= g.thinking_tokens <= budget["max_thinking_tokens"] for g in mine
            )
            curve.append(
                {
                    "point": name,
                    "benchmark": bench,
                    **budget,
                    "avg_thinking_tokens": s.avg_thinking_tokens,
                    "avg_tokens": sum(g.completion_tokens for g in mine) / len(mine),
                    "accuracy": s.accuracy,
                    "ci95": list(s.ci95),
                    "maj@k": {k: s.maj_at_k[k] for k in map(str, cfg.votes) if k in s.maj_at_k},
                    "control": inside / len(mine),
                    "avg_waits": sum(g.waits for g in mine) / len(mine),
                    "forced_cut_share": sum(g.forced_cut for g in mine) / len(mine),
                    "against_first": against[bench],
                }
            )
    benchmarks = sorted({p["benchmark"] for p in curve})
    summary = {
        b: {
            "control": sum(p["control"] for p in curve if p["benchmark"] == b)
            / sum(p["benchmark"] == b for p in curve),
            "scaling_slope": slope([p for p in curve if p["benchmark"] == b]),
        }
        for b in benchmarks
    }
    result = {
        "points": curve,
        "summary": summary,
        "matched": matched(curve, every, n) if n > 1 else [],
        "config": cfg.model_dump(mode="json"),
    }
    write_json(out / "curve.json", result)
    plot(curve, out / "curve.png", f"{cfg.eval.model}: accuracy vs thinking tokens")
    return result


def plot(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for bench in sorted({p["benchmark"] for p in curve}):
        mine = sorted((p for p in curve if p["benchmark"] == bench), key=lambda p: p["avg_thinking_tokens"])
        xs = [max(p["avg_thinking_tokens"], 1) for p in mine]
        ys = [p["accuracy"] for p in mine]
        lo = [p["accuracy"] - p["ci95"][0] for p in mine]
        hi = [p["ci95"][1] - p["accuracy"] for p in mine]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=bench)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("average thinking tokens")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
