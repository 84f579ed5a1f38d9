"""Duplicates inside a pool: exact (the same normalised text) and near (MinHash LSH over
token n-grams, banded as datasketch chooses). One representative per cluster is kept: the first in
pool order, so the choice is reproducible.

Signatures are computed for a whole batch in numpy from the n-gram hashes of `text` (folded
to 32 bits; they are already well mixed), with datasketch's own permutations of its
`affine32` scheme (h -> a*h + b mod 2**32, a odd), then banded in numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from handful.curation.text import ngram_hashes, normalise

_MASK32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)


def exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """{index: index of the first text it repeats}, after normalisation."""
    first: dict[str, int] = {}
    found = {}
    for i, text in enumerate(texts):
        key = normalise(text)
        if key in first:
            found[i] = first[key]
        else:
            first[key] = i
    return found


def permutations(num_perm: int, seed: int = 1) -> np.ndarray:
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations


def signatures(texts: Sequence[str], n: int, num_perm: int, batch: int = 2000) -> Iterator[np.ndarray]:
    """MinHash signatures (len(texts) x num_perm, uint32), one batch at a time."""
    a, b = permutations(num_perm)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        hashes, owners = ngram_hashes(chunk, n)
        sig = np.full((len(chunk), num_perm), _EMPTY, dtype=np.uint32)
        if len(hashes):
            folded = ((hashes >> np.uint64(32)) ^ (hashes & _MASK32)).astype(np.uint32)
            order = np.argsort(owners, kind="stable")
            folded, owners = folded[order], owners[order]
            # One row per permutation, so that the reduction runs along contiguous memory.
            values = a[:, None] * folded[None, :] + b[:, None]  # wraps mod 2**32, as datasketch's does
            present, first = np.unique(owners, return_index=True)
            sig[present] = np.minimum.reduceat(values, first, axis=1).T
        yield sig


def near_duplicates(
    texts: Sequence[str], *, threshold: float = 0.7, n: int = 3, num_perm: int = 64, skip: set[int] | None = None
) -> dict[int, tuple[int, float]]:
    """{index: (index of an earlier near-duplicate, estimated Jaccard)}, for texts not in `skip`.

    Banding as LSH does it, with datasketch's choice of bands and rows for the threshold, but
    in numpy: per band, problems whose rows hash alike form a group, and each is checked
    against its group's first member (the earliest in the pool) on the whole signature.
    datasketch's own index keeps Python dicts per band, which took three quarters of the
    time and most of the memory at a million problems (docs/PERFORMANCE.md).
    """
    from datasketch import MinHashLSH

    chosen = MinHashLSH(threshold=threshold, num_perm=num_perm)
    bands, rows = chosen.b, chosen.r
    sig = (
        np.concatenate(list(signatures(texts, n, num_perm))) if len(texts) else np.zeros((0, num_perm), dtype=np.uint32)
    )
    live = (sig != _EMPTY).any(axis=1)
    live[list(skip or ())] = False
    members = np.flatnonzero(live)
    best, score = np.full(len(sig), -1), np.zeros(len(sig))
    for band in range(bands):
        block = sig[members, band * rows : (band + 1) * rows].astype(np.uint64)
        key = np.zeros(len(members), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in block.T:
                key = key * np.uint64(0x100000001B3) + column
        order = np.argsort(key, kind="stable")  # equal keys stay in pool order: the first leads
        ordered = key[order]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
        leader = np.empty(len(members), dtype=np.int64)
        leader[order] = members[order[first]]
        follower = leader != members
        mine, theirs = members[follower], leader[follower]
        agree = (sig[mine] == sig[theirs]).mean(axis=1)
        better = agree > score[mine]
        best[mine[better]], score[mine[better]] = theirs[better], agree[better]
    hits = np.flatnonzero(score >= threshold)
    return {int(i): (int(best[i]), float(score[i])) for i in hits}
