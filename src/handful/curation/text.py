"""Text to tokens to hashed n-grams, for many documents at once.

Tokens are lowercase words, numbers and single symbols (so `$x^2+1$` is x ^ 2 + 1): LaTeX
spacing and delimiters are dropped, so that `\\dfrac` and `\\frac`, or `$ x $` and `x`, read
alike. `tokens` gives them as strings, for reports and small jobs.

`ngram_hashes` finds the same tokens without making a Python string for each: a batch of
documents is joined into one byte array, classified byte by byte, cut into tokens where the
class changes, and each token is hashed from prefix sums (sum of b[j] * R**j, mod 2**64, R
odd, so a token's hash does not depend on where it sits), then mixed. N-grams are hashed
from the token hashes the same way. Everything after one regex pass is numpy: that is what
makes a million problems a matter of seconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d\\{}$]")
_DROP = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|[,;:! ])|\\[dt](?=frac)|\\text(?:bf|rm|it)?|\\mathrm|\\math(?:bf|rm)"
)
_SEPARATOR = "\x00"  # joins documents; never a token

_R = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible mod 2**64
_R_INVERSE = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_P = np.uint64(0xD6E8FEB86659FD93)  # n-gram polynomial base, odd

# Byte classes: 0 skip (space, dropped characters), 1 letter, 2 digit, 3 symbol (a token of
# its own; also the lead byte of a non-ASCII character), 4 document separator, 5 UTF-8
# continuation byte (extends the character its lead byte began).
_CLASS = np.full(256, 3, dtype=np.uint8)
_CLASS[[ord(c) for c in " \t\n\r\x0b\x0c\\{}$"]] = 0
_CLASS[ord("a") : ord("z") + 1] = 1
_CLASS[ord("0") : ord("9") + 1] = 2
_CLASS[0x80:0xC0] = 5
_CLASS[0] = 4


def normalise(text: str) -> str:
    return " ".join(tokens(text))


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(_DROP.sub(" ", text).lower())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: polynomial hashes of short tokens are far from random."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hash, document index) of every token of every text, in order."""
    joined = _DROP.sub(" ", _SEPARATOR.join(t.replace(_SEPARATOR, " ") for t in texts)).lower()
    data = np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if len(data) == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    cls = _CLASS[data]
    # Non-ASCII characters are one token each, like the regex: their lead byte is a symbol,
    # their continuation bytes extend it.
    word = (cls == 1) | (cls == 2)
    starts_mask = (cls == 3) | (word & np.concatenate([[True], cls[1:] != cls[:-1]]))
    starts = np.flatnonzero(starts_mask)
    # A token runs to the next start, space or separator (continuation bytes stop nothing):
    # among all stops in order, a start's end is the stop right after it.
    stop_mask = (cls == 0) | (cls == 4) | starts_mask
    stops = np.append(np.flatnonzero(stop_mask), len(data))
    ends = stops[np.flatnonzero(starts_mask[stops[:-1]]) + 1]
    forward, backward = _powers(len(data))
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(data) + 1, dtype=np.uint64)
        np.cumsum(data * forward, dtype=np.uint64, out=prefix[1:])
        raw = (prefix[ends] - prefix[starts]) * backward[starts]
        hashes = _mix(raw ^ (ends - starts).astype(np.uint64))
    docs = np.searchsorted(np.flatnonzero(cls == 4), starts).astype(np.int64)
    return hashes, docs


_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """R**j and R**-j for j < n, kept between calls (they only ever grow)."""
    global _POWERS
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            forward = np.cumprod(np.full(size, _R, dtype=np.uint64)) * _R_INVERSE
            backward = np.cumprod(np.full(size, _R_INVERSE, dtype=np.uint64)) * _R
        _POWERS = [forward, backward]
    return _POWERS[0][:n], _POWERS[1][:n]


def ngram_hashes(texts: Sequence[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, document index) of every token n-gram of every text, uint64 and int64.

    A text shorter than n tokens gives one hash of all its tokens, so that short texts still
    match; an empty text gives none.
    """
    flat, doc = token_hashes(texts)
    lengths = np.bincount(doc, minlength=len(texts)).astype(np.int64)
    total = len(flat)
    count = max(total - n + 1, 0)
    with np.errstate(over="ignore"):
        # h(i) = sum_j flat[i + j] * P**j over j < n, all starts at once (wrapping mod 2**64).
        hashes = np.zeros(count, dtype=np.uint64)
        power = np.uint64(1)
        for j in range(n):
            hashes += flat[j : j + count] * power
            power *= _P
    full = doc[:count] == doc[n - 1 : n - 1 + count]
    hashes, owners = hashes[full], doc[:count][full]
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short):
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
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
    """Each (document, hash) pair once, sorted by hash: containment counts distinct n-grams.

    Owners arrive in document order, so a stable sort by hash alone leaves equal hashes
    ordered by document, and a repeated pair sits next to its twin."""
    if len(hashes) == 0:
        return hashes, owners
    order = np.argsort(hashes, kind="stable")
    h, o = hashes[order], owners[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (o[1:] != o[:-1])
    return h[keep], o[keep]
