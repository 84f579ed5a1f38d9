"""The curation recipe: one section per stage, each with `enabled`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from handful.config import Config, EvalConfig

RULES = ("missing_figure", "ascii_art", "broken_numbering", "truncated", "too_short", "too_long", "not_english")


class NormaliseConfig(Config):
    enabled: bool = True
    verifiable: bool = Field(default=True, description="drop answers the grader cannot read (DeepScaleR's filter)")


class QualityConfig(Config):
    enabled: bool = True
    rules: list[str] = Field(
        default_factory=lambda: list(RULES), description=f"built-in rules to apply: {', '.join(RULES)}"
    )
    extra: dict[str, str] = Field(
        default_factory=dict, description="name: regular expression; a matching question is dropped"
    )
    keep_asy: bool = True
    min_words: int = 4
    max_chars: int = 6000
    min_ascii: float = 0.9


class DedupConfig(Config):
    enabled: bool = True
    near: bool = True
    threshold: float = Field(default=0.7, gt=0, le=1, description="estimated Jaccard of token 3-grams")
    mask_numbers: bool = Field(
        default=True, description="compare with every number masked: renumbered copies are duplicates"
    )
    ngram: int = Field(default=3, ge=1)
    num_perm: int = Field(default=64, ge=8)


class DecontamConfig(Config):
    enabled: bool = True
    benchmarks: list[str] = Field(
        default_factory=lambda: ["all"], description='"all" = every registered benchmark; any benchmark spec'
    )
    data: str | None = Field(default=None, description="file for gpqa_diamond, if listed")
    ngram: int = Field(default=5, ge=1)
    flag: float = Field(default=0.6, gt=0, le=1, description="containment that flags a problem on its own")
    flag_same_answer: float = Field(
        default=0.4, gt=0, le=1, description="containment that flags it when the answers are equal"
    )
    solution: float = Field(default=0.6, gt=0, le=1, description="containment of the solution in a benchmark solution")
    max_df: int = Field(default=20, ge=1, description="n-grams in more benchmark items than this are boilerplate")
    strip_asy: bool = Field(
        default=True, description="compare text without [asy] code (shared figures are not shared problems)"
    )


class DifficultyConfig(Config):
    enabled: bool = False
    references: list[EvalConfig] = Field(
        default_factory=list, description="reference models, each an eval config (benchmarks ignored)"
    )
    candidates: int | None = Field(
        default=None, ge=1, description="a seeded sample of this many survivors is rated (cost cap)"
    )
    policy: Literal["s1", "limo", "band"] = "s1"
    max_solved: int = Field(default=0, ge=0, description="limo: keep what is solved at most this many times")
    band: tuple[float, float] = (0.2, 0.8)


def reference(model: str, n: int = 1) -> dict:
    """A difficulty reference's settings given only its model and samples: greedy for one sample,
    temperature 0.7 for several (so that they differ), 512 tokens each."""
    return {"model": model, "n": n, "sampling": {"temperature": 0.7 if n > 1 else 0.0, "max_tokens": 512}}


class SelectConfig(Config):
    enabled: bool = True
    domains: Literal["labels", "embeddings"] = "labels"
    clusters: int = Field(default=16, ge=1)
    method: Literal["s1", "stratified", "random"] = "s1"


class CurateConfig(Config):
    pools: list[str] = Field(default_factory=list, min_length=1)
    target: int = Field(default=1000, ge=1)
    seed: int = 0
    normalise: NormaliseConfig = Field(default_factory=NormaliseConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
