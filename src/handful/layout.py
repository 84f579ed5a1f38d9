"""The names of what a `handful run` directory holds, in one place, so that the stage runner,
the manifest, the transparency score and the report agree on them without importing each other.

    OUT/recipe.yaml          the recipe as given
    OUT/configs/STAGE.yaml   each stage's full settings (what its own command would read)
    OUT/curate/  OUT/distill/  OUT/train/  OUT/eval/RUN/MODEL/  OUT/scale/MODEL/
    OUT/stages.json          key, status, timings and command of every stage; every invocation
    OUT/seeds.json           the seeds drawn for unseeded `dyn:` benchmarks, shared by all stages
    OUT/manifest.json        what ran, on what, from what, and what it produced
    OUT/prompts/LABEL.json   each model's prompt format, with an example prompt
    OUT/REPRODUCE.md         how to rerun it
    OUT/transparency.json    the checklist score
    OUT/report.html          the page
    OUT/superseded/          earlier results of stages whose settings changed (never deleted)
"""

from __future__ import annotations

from pathlib import Path

RECIPE, CONFIGS, STATE, SEEDS = "recipe.yaml", "configs", "stages.json", "seeds.json"
MANIFEST, HASHES, PROMPTS, REPRODUCE = "manifest.json", ".hashes.json", "prompts", "REPRODUCE.md"
TRANSPARENCY, REPORT, SUPERSEDED = "transparency.json", "report.html", "superseded"


def slug(stage_name: str) -> str:
    """A stage's name as one file name: eval/plain/base -> eval-plain-base."""
    return stage_name.replace("/", "-")


def config_path(out: Path, stage_name: str) -> Path:
    return out / CONFIGS / f"{slug(stage_name)}.yaml"
