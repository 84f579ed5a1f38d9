"""Scores from graded samples: avg@n, unbiased pass@k, maj@k, token means, bootstrap CIs.

Honest by construction: every problem must have exactly the samples asked for, or scoring
refuses and names the problems (a silently lower score is the bug this prevents).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from math import comb

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from handful.errors import ScoringError
from handful.records import Generation


class Score(BaseModel):
    """One benchmark's score. Written (scores.json, the manifest) and read back under the names
    the papers use (`pass@k`, `maj@k`); built in Python under the field names."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    n_problems: int
    n_samples: int
    accuracy: float
    ci95: tuple[float, float]
    pass_at_k: dict[str, float] = Field(alias="pass@k")
    maj_at_k: dict[str, float] = Field(alias="maj@k")
    maj_ci95: dict[str, tuple[float, float]] = Field(alias="maj@k_ci95")
    avg_thinking_tokens: float
    avg_answer_tokens: float
    outcomes: dict[str, int]
    truncated: float = 0.0  # share of samples cut at max_tokens
    unclosed_thinking: float = 0.0  # share of samples whose thinking opened and never closed
    # The accuracy's variance over problems, split in two: between problems (what more samples
    # per problem cannot shrink) and within them (the per-problem mean's own sampling noise).
    variance_between: float | None = None
    variance_within: float | None = None


def variance_parts(per_problem: list[float], n: int) -> dict[str, float]:
    """Between- and within-problem variance of per-problem accuracies from n samples each.

    The mean of n Bernoulli draws with rate p varies by p(1-p)/n, estimated without bias by
    m(1-m)/(n-1); what is left of the spread of the means is the spread of the problems
    themselves. With one sample per problem the two cannot be told apart: all of it is
    counted as between problems, the side no number of samples can shrink."""
    m = np.asarray(per_problem, dtype=float)
    total = float(m.var(ddof=1)) if len(m) > 1 else 0.0
    within = float(np.mean(m * (1 - m) / (n - 1))) if n > 1 else 0.0
    return {"variance_between": max(total - within, 0.0), "variance_within": within}


def halving(ci95: tuple[float, float], problems: int) -> str:
    """An interval's half-width, and the problems that would halve it (width falls as 1/sqrt(problems))."""
    return f"±{(ci95[1] - ci95[0]) / 2:.3f}; {4 * problems} problems would halve it"


def advice(s: Score) -> str:
    """What would narrow a score's interval: more problems, or, on a fixed set of problems,
    more samples per problem, down to the floor set by the spread between problems."""
    parts = [halving(s.ci95, s.n_problems)]
    if s.variance_between is None or s.variance_within is None:
        return parts[0]
    n, problems = s.n_samples // max(s.n_problems, 1), max(s.n_problems, 1)
    floor = 1.96 * (s.variance_between / problems) ** 0.5
    if n == 1:
        parts.append("one sample per problem cannot tell the spread between problems from the noise within them")
    elif s.variance_within > 0:
        # Half-width with k samples each: 1.96 sqrt((between + within * n / k) / problems).
        target = 1.96 * ((s.variance_between + s.variance_within) / problems) ** 0.5 / 2
        room = problems * (target / 1.96) ** 2 - s.variance_between
        if room > 0:
            k = math.ceil(s.variance_within * n / room - 1e-9)
            parts.append(f"on these {s.n_problems} problems, {k} samples each would halve it (±{target:.3f})")
        else:
            parts.append(f"on these {s.n_problems} problems, no number of samples per problem halves it")
    parts.append(f"no number of samples per problem goes below ±{floor:.3f} (the spread between these problems)")
    return "; ".join(parts)


def unclosed(g: Generation) -> bool:
    """Thinking opened and never closed: all of the completion is thinking (see extract.split_thinking)."""
    return g.thinking is not None and not g.answer_text and g.answer_tokens == 0


class MemorisationGap(BaseModel):
    """A static benchmark's accuracy minus its fresh procedural copy's, on one model."""

    static: str
    fresh: str
    static_accuracy: float
    fresh_accuracy: float
    gap: float
    gap_ci95: tuple[float, float]


class Scores(BaseModel):
    """What an eval run scored (`scores.json`): each benchmark's score, the memorisation gaps,
    and the settings and versions that made them."""

    benchmarks: dict[str, Score]
    memorisation: list[MemorisationGap] = Field(default_factory=list)
    config: dict
    versions: dict[str, str]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021): 1 - C(n-c, k) / C(n, k), the chance one of k draws is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(samples: list[Generation]) -> bool:
    """Vote over canonical answers; a tie goes to the answer seen first. No answer never wins."""
    votes = Counter(g.canonical for g in samples if g.canonical is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(g.canonical for g in samples if g.canonical is not None and votes[g.canonical] == best)
    return any(g.correct for g in samples if g.canonical == winner)


def ks_up_to(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if ks[-1] != n:
        ks.append(n)
    return ks


# What every reported number means; the manifest and the report carry these with the numbers.
DEFINITIONS: dict[str, dict[str, str]] = {
    "accuracy": {
        "kind": "standard",
        "definition": "avg@n: the share of correct samples, averaged over problems (n samples each)",
    },
    "ci95": {
        "kind": "standard",
        "definition": "95 % percentile bootstrap interval of the accuracy, resampling problems with replacement (2,000 resamples)",
    },
    "pass@k": {
        "kind": "standard",
        "definition": "unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) per problem, averaged",
    },
    "maj@k": {
        "kind": "standard",
        "definition": "majority vote over the first k samples' canonical answers, ties broken by first appearance; correct if the winner is",
    },
    "avg_thinking_tokens": {
        "kind": "standard",
        "definition": "mean tokens between the thinking delimiters (the whole text when thinking never opens)",
    },
    "avg_answer_tokens": {"kind": "standard", "definition": "mean tokens after the end of thinking"},
    "outcomes": {
        "kind": "standard",
        "definition": "samples by grading outcome: correct, incorrect, no_answer, unparseable_gold, timeout",
    },
    "variance_between": {
        "kind": "custom",
        "definition": "variance of the per-problem accuracy across problems, less its within-problem sampling noise",
        "why": "it sets the floor of the interval on a fixed benchmark: more samples per problem cannot go below it",
    },
    "variance_within": {
        "kind": "custom",
        "definition": "mean over problems of m(1-m)/(n-1), the sampling noise of a per-problem accuracy from n samples",
        "why": "the part of the interval that more samples per problem do shrink",
    },
    "truncated": {
        "kind": "custom",
        "definition": "share of samples cut at max_tokens; a cut-off sample counts only an answer it marked as final",
        "why": "a score that rests on outputs cut short is a score of the token limit (open-r1#194, lm-eval#3382)",
    },
    "unclosed_thinking": {
        "kind": "custom",
        "definition": "share of samples whose thinking opened and never closed",
        "why": "such a sample never answered; a high share says the budget, not the model, set the score",
    },
    "difference": {
        "kind": "custom",
        "definition": "accuracy of one run minus another on the same problems, paired by problem: a 95 % bootstrap "
        "interval that draws the problems once for both sides, and the exact sign test over the problems that changed "
        "(exact McNemar with one sample per problem)",
        "why": "outcomes on one problem are correlated; pairing uses that, where two separate intervals cannot",
    },
    "control": {
        "kind": "custom",
        "definition": "share of samples whose thinking length fell within the requested budget (s1's control)",
        "why": "budget forcing is only useful if the budget is kept; s1 reports it",
    },
    "scaling_slope": {
        "kind": "custom",
        "definition": "mean accuracy gained per doubling of average thinking tokens between consecutive budgets (s1's scaling)",
        "why": "summarises the accuracy-vs-thinking-tokens curve in one number, as s1 does",
    },
    "memorisation_gap": {
        "kind": "custom",
        "definition": "static benchmark accuracy minus its fresh procedural copy's (GSM8K vs dyn:gsm-template), with a "
        "95 % interval that resamples each side on its own: the problems differ, so they cannot be paired",
        "why": "a score that falls on fresh numbers was partly recall (GSM-Symbolic)",
    },
    "transparency": {
        "kind": "custom",
        "definition": "the O1 Replication Journey part 2 checklist (100 points) scored from what the run recorded",
        "why": "says how completely a run can be checked and reproduced",
    },
}


def bootstrap_ci(values: Iterable[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean, resampling problems with replacement."""
    x = np.asarray(list(values), dtype=float)
    if len(x) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def difference_ci(
    a: Iterable[float], b: Iterable[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """mean(a) - mean(b) and its 95 % interval, resampling the two sets of problems independently: only for
    sets that are not the same problems (the memorisation gap); the same problems are compared in
    `handful.comparison`, paired."""
    x, y = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if len(x) == 0 or len(y) == 0:
        raise ScoringError("a difference needs problems on both sides")
    rng = np.random.default_rng(seed)
    diffs = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1) - y[
        rng.integers(0, len(y), size=(resamples, len(y)))
    ].mean(axis=1)
    return float(x.mean() - y.mean()), (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))


def per_problem(samples: Iterable[Generation], n: int) -> dict[str, float]:
    """Problem id -> share of its n samples that are correct."""
    return {pid: sum(g.correct for g in gs) / n for pid, gs in group_by_problem(samples, n).items()}


def per_problem_accuracy(samples: Iterable[Generation], n: int) -> list[float]:
    """The per-problem shares in problem-id order."""
    return [share for _, share in sorted(per_problem(samples, n).items())]


def group_by_problem(
    samples: Iterable[Generation], n: int, expected: Iterable[str] | None = None
) -> dict[str, list[Generation]]:
    groups: dict[str, list[Generation]] = defaultdict(list)
    for g in samples:
        if g.correct is None:
            raise ScoringError(f"sample {g.key} is not graded")
        groups[g.problem_id].append(g)
    for pid in expected or ():
        groups.setdefault(pid, [])
    wrong = {pid: len(gs) for pid, gs in groups.items() if len(gs) != n}
    if wrong:
        shown = ", ".join(f"{pid} ({count})" for pid, count in sorted(wrong.items())[:10])
        more = f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        raise ScoringError(
            f"{len(wrong)} problem(s) do not have {n} samples each: {shown}{more}; finish the run (rerun the same command) before scoring"
        )
    for gs in groups.values():
        gs.sort(key=lambda g: g.sample_index)
    return dict(groups)


def score(samples: Iterable[Generation], n: int, expected: Iterable[str] | None = None, seed: int = 0) -> Score:
    """Score one benchmark. `expected` lists problem ids that must all be present."""
    groups = group_by_problem(samples, n, expected)
    if not groups:
        raise ScoringError("no samples to score")
    ordered = [groups[pid] for pid in sorted(groups)]
    flat = [g for gs in ordered for g in gs]
    per_problem = per_problem_accuracy(flat, n)
    ks = ks_up_to(n)
    maj, maj_ci = {}, {}
    for k in ks:
        votes = [float(majority_correct(gs[:k])) for gs in ordered]
        maj[str(k)], maj_ci[str(k)] = float(np.mean(votes)), bootstrap_ci(votes, seed=seed)
    return Score(
        n_problems=len(ordered),
        n_samples=len(flat),
        accuracy=float(np.mean(per_problem)),
        ci95=bootstrap_ci(per_problem, seed=seed),
        pass_at_k={str(k): float(np.mean([pass_at_k(n, sum(g.correct for g in gs), k) for gs in ordered])) for k in ks},
        maj_at_k=maj,
        maj_ci95=maj_ci,
        avg_thinking_tokens=float(np.mean([g.thinking_tokens for g in flat])),
        avg_answer_tokens=float(np.mean([g.answer_tokens for g in flat])),
        outcomes=dict(Counter(g.outcome or "ungraded" for g in flat)),
        **variance_parts(per_problem, n),
        truncated=float(np.mean([g.finish_reason == "length" for g in flat])),
        unclosed_thinking=float(np.mean([unclosed(g) for g in flat])),
    )
