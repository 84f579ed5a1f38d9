"""Decontamination: which pool problems are benchmark problems, possibly lightly edited.

One shared n-gram is no evidence: benchmark problems share boilerplate ("what is the value
of", "is not divisible by the square of any prime") with a great many honest problems. So a
problem is flagged by *containment*: the share of distinct n-grams it has in common with one
benchmark item, over the smaller of the two. A reworded or renumbered copy keeps most of its
n-grams; a problem that merely shares a phrase keeps a few. The answer counts too: a
moderate overlap with the same answer is flagged, and so is a solution that copies a
benchmark solution.

The benchmark side is an index of sorted n-gram hashes with the items holding each (CSR);
a batch of pool problems is matched against it with `searchsorted` and one `unique` over
(problem, item) pairs, all in numpy. N-grams held by more than `max_df` benchmark items are
left out of the index: they are boilerplate by definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from handful.curation.text import ngram_hashes, tokens, unique_per_document

_BITMAP_MASK = np.uint64((1 << 24) - 1)


@dataclass(frozen=True)
class Overlap:
    doc: int  # index into the queried texts
    item: int  # index into the indexed items
    shared: int  # distinct n-grams in common
    containment: float  # shared / the larger side's distinct n-grams: both must be mostly the same text


class NgramIndex:
    def __init__(self, texts: Sequence[str], n: int = 5, max_df: int = 20):
        self.n = n
        hashes, owners = unique_per_document(*ngram_hashes(texts, n))
        self.sizes = np.bincount(owners, minlength=len(texts)).astype(np.int64)  # distinct n-grams per item
        order = np.argsort(hashes, kind="stable")
        hashes, owners = hashes[order], owners[order]
        keys, starts, counts = np.unique(hashes, return_index=True, return_counts=True)
        common = counts <= max_df
        self.keys, self.starts, self.counts, self.owners = keys[common], starts[common], counts[common], owners
        self.bitmap = np.zeros(int(_BITMAP_MASK) + 1, dtype=bool)
        self.bitmap[(self.keys & _BITMAP_MASK).astype(np.int64)] = True

    def overlaps(self, texts: Sequence[str], min_containment: float = 0.0) -> list[Overlap]:
        """Every (text, item) pair sharing an n-gram with at least `min_containment`."""
        hashes, docs = ngram_hashes(texts, self.n)
        sizes = distinct_counts(hashes, docs, len(texts))
        if len(hashes) == 0 or len(self.keys) == 0:
            return []
        # Most n-grams of a clean pool are in no benchmark: a bitmap of the index's hashes
        # turns them away before anything else is done with them.
        maybe = self.bitmap[(hashes & _BITMAP_MASK).astype(np.int64)]
        hashes, docs = unique_per_document(hashes[maybe], docs[maybe])
        pos = np.searchsorted(self.keys, hashes)
        pos[pos == len(self.keys)] = 0
        hit = self.keys[pos] == hashes
        pos, docs = pos[hit], docs[hit]
        counts = self.counts[pos]
        # Expand each hit to every item holding that n-gram.
        first = np.repeat(self.starts[pos] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        items = self.owners[first]
        pair = np.repeat(docs, counts) * len(self.sizes) + items
        pairs, shared = np.unique(pair, return_counts=True)
        doc, item = pairs // len(self.sizes), pairs % len(self.sizes)
        containment = shared / np.maximum(np.maximum(sizes[doc], self.sizes[item]), 1)
        keep = containment >= min_containment
        return [
            Overlap(int(d), int(i), int(s), float(c))
            for d, i, s, c in zip(doc[keep], item[keep], shared[keep], containment[keep])
        ]


def distinct_counts(hashes: np.ndarray, docs: np.ndarray, count: int) -> np.ndarray:
    """Distinct n-grams per document. Sorting one packed key (document in the high 24 bits,
    40 bits of hash below) is several times cheaper than sorting pairs; two different
    n-grams of one document share 40 hash bits with odds near 1e-9."""
    if len(hashes) == 0:
        return np.zeros(count, dtype=np.int64)
    if count >= 1 << 24:
        return np.bincount(unique_per_document(hashes, docs)[1], minlength=count).astype(np.int64)
    keys = np.sort((docs.astype(np.uint64) << np.uint64(40)) | (hashes & np.uint64((1 << 40) - 1)))
    fresh = np.ones(len(keys), dtype=bool)
    fresh[1:] = keys[1:] != keys[:-1]
    return np.bincount((keys[fresh] >> np.uint64(40)).astype(np.int64), minlength=count).astype(np.int64)


def shared_ngrams(a: str, b: str, n: int, limit: int = 3) -> list[str]:
    """A few n-grams the two texts share, as text, for the report."""
    ta, tb = tokens(a), tokens(b)
    grams_b = {tuple(tb[i : i + n]) for i in range(max(len(tb) - n + 1, 1))}
    found = []
    for i in range(max(len(ta) - n + 1, 1)):
        gram = tuple(ta[i : i + n])
        if gram in grams_b and " ".join(gram) not in found:
            found.append(" ".join(gram))
            if len(found) == limit:
                break
    return found
