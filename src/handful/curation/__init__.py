"""Curation: from a large pool to a handful of hard, diverse, clean problems (`handful curate`).

`pipeline` runs the stages; `pools` loads what to curate from; `rules`, `dedup`, `decontam`,
`difficulty` and `select` are the stages' parts; `text` turns text into hashed n-grams.
"""

from handful.curation.config import CurateConfig
from handful.curation.pipeline import curate

__all__ = ["CurateConfig", "curate"]
