"""Duplicates inside a pool: exact (the same normalised text) and near (MinHash LSH over
token n-grams, datasketch's index). One representative per cluster is kept: the first in
pool order, so the choice is reproducible.

Signatures are computed for a whole batch in numpy from the n-gram hashes of `text` (folded
to 32 bits; they are already well mixed), with datasketch's own permutations of its
`affine32` scheme (h -> a*h + b mod 2**32, a odd); they are handed to datasketch as ready
`MinHash` objects, and its LSH does the banding and the lookups.
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


def near_duplicates(texts: Sequence[str], *, threshold: float = 0.7, n: int = 3, num_perm: int = 64, skip: set[int] | None = None) -> dict[int, tuple[int, float]]:
    """{index: (index of an earlier near-duplicate, estimated Jaccard)}, for texts not in `skip`."""
    from datasketch import MinHash, MinHashLSH

    skip = skip or set()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    perms = permutations(num_perm)
    found: dict[int, tuple[int, float]] = {}
    kept: dict[int, np.ndarray] = {}
    offset = 0
    for sig in signatures(texts, n, num_perm):
        for row in sig:
            i = offset
            offset += 1
            if i in skip or not (row != _EMPTY).any():
                continue
            m = MinHash(num_perm=num_perm, hashvalues=row, permutations=perms, scheme="affine32")
            best = None
            for j in lsh.query(m):
                similarity = float(np.mean(kept[j] == row))
                if similarity >= threshold and (best is None or similarity > best[1]):
                    best = (j, similarity)
            if best is not None:
                found[i] = best
            else:
                lsh.insert(i, m, check_duplication=False)
                kept[i] = row
    return found
