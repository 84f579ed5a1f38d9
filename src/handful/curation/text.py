"""Text to tokens to hashed n-grams, for many documents at once.

Tokens are lowercase words, numbers and single symbols (so `$x^2+1$` is x ^ 2 + 1): LaTeX
spacing and delimiters are dropped, so that `\\dfrac` and `\\frac`, or `$ x $` and `x`, read
alike. Each distinct token is hashed once (BLAKE2b, stable across runs and machines), and
the n-grams of a whole batch are hashed in a few numpy passes over one concatenated array;
Python only loops over documents to find their tokens.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d\\{}$]")
_DROP = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|[,;:! ])|\\[dt](?=frac)|\\text(?:bf|rm|it)?|\\mathrm|\\math(?:bf|rm)")
_P = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication by it is a bijection mod 2**64


def normalise(text: str) -> str:
    return " ".join(tokens(text))


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(_DROP.sub(" ", text).lower())


class Vocabulary:
    """A stable 64-bit hash per token, computed once per distinct token."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def __call__(self, words: list[str]) -> list[int]:
        ids = self.ids
        out = []
        for w in words:
            h = ids.get(w)
            if h is None:
                h = ids[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            out.append(h)
        return out


def ngram_hashes(texts: Sequence[str], n: int, vocabulary: Vocabulary | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, document index) of every token n-gram of every text, uint64 and int64.

    A text shorter than n tokens gives one hash of all its tokens, so that short texts still
    match; an empty text gives none.
    """
    vocabulary = vocabulary or Vocabulary()
    ids: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        words = tokens(text)
        lengths[i] = len(words)
        ids.extend(vocabulary(words))
    flat = np.array(ids, dtype=np.uint64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(texts) else np.zeros(0, dtype=np.int64)
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    total = len(flat)
    with np.errstate(over="ignore"):
        # h(i) = sum_j flat[i + j] * P**j over j < n, all starts at once (wrapping mod 2**64).
        count = max(total - n + 1, 0)
        hashes = np.zeros(count, dtype=np.uint64)
        power = np.uint64(1)
        for j in range(n):
            hashes += flat[j : j + count] * power
            power *= _P
    full = (doc[:count] == doc[n - 1 : n - 1 + count]) if count else np.zeros(0, dtype=bool)
    hashes, owners = hashes[full], doc[:count][full]
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short):
        extra = np.empty(len(short), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k, i in enumerate(short):
                h, power = np.uint64(0), np.uint64(1)
                for value in flat[starts[i] : starts[i] + lengths[i]]:
                    h += value * power
                    power *= _P
                extra[k] = h ^ np.uint64(lengths[i])  # a 3-token text and a 3-gram differ
        hashes, owners = np.concatenate([hashes, extra]), np.concatenate([owners, short])
    return hashes, owners


def unique_per_document(hashes: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (document, hash) pair once: containment counts distinct n-grams."""
    if len(hashes) == 0:
        return hashes, owners
    order = np.lexsort((hashes, owners))
    h, o = hashes[order], owners[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
    return h[keep], o[keep]
