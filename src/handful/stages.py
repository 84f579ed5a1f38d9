"""The stage table: every kind of stage, the settings model it reads, the library function
that runs it, and the words of the command that runs it alone.

`handful run` runs a recipe's stages through this table and writes each stage's standalone
command from it; each CLI command builds one settings object from `--config`, `--set` and its
options and makes one call through it. A new kind of stage is one row here, one settings
model and one function `run(cfg, out, **options) -> summary`.

Rows name their model and function by import path, so that reading the table (for `--help`
or a dry run) imports neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handful.config import Config, load_config


@dataclass(frozen=True)
class StageKind:
    kind: str
    verb: tuple[str, ...]  # the CLI words: `handful train sft ...`
    settings: str  # "module:Class", a pydantic settings model
    function: str  # "module:function", run(cfg, out, **options)
    presets: str | None = None  # "module:function" turning a shipped preset name or a path into a file
    checkpoints: bool = False  # resumes from checkpoints, asked for with resume=True
    # Keys its own points (a study): when its settings change, only the points that changed
    # rerun, so `handful run` leaves its folder in place instead of moving it aside.
    keys_points: bool = False

    @staticmethod
    def _load(path: str) -> Any:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)

    def model(self) -> type[Config]:
        return self._load(self.settings)

    def config(self, file: str | Path | None = None, overrides: list[str] = ()) -> Config:
        """The stage's settings from a YAML file (or a shipped preset), then dotted overrides."""
        if file is not None and self.presets:
            file = self._load(self.presets)(file)
        return load_config(self.model(), file, overrides)

    def run(self, cfg: Config, out: str | Path, **options) -> Any:
        return self._load(self.function)(cfg, out, **options)


STAGES: dict[str, StageKind] = {
    s.kind: s
    for s in (
        StageKind("curate", ("curate",), "handful.curation.config:CurateConfig", "handful.curation.pipeline:curate"),
        StageKind("distill", ("distill",), "handful.distill:DistillConfig", "handful.distill:distill"),
        StageKind(
            "sft",
            ("train", "sft"),
            "handful.training.config:SFTConfig",
            "handful.training.sft:train_sft",
            presets="handful.training.config:preset_path",
            checkpoints=True,
        ),
        StageKind(
            "grpo",
            ("train", "grpo"),
            "handful.training.config:GRPOConfig",
            "handful.training.grpo:train_grpo",
            presets="handful.training.config:preset_path",
            checkpoints=True,
        ),
        StageKind("eval", ("eval",), "handful.config:EvalConfig", "handful.evaluation:evaluate"),
        StageKind("scale", ("scale",), "handful.scaling:ScaleConfig", "handful.scaling:scale"),
        StageKind("precision", ("precision",), "handful.precision:PrecisionConfig", "handful.precision:precision"),
        StageKind("study", ("study",), "handful.study:StudyConfig", "handful.study:study", keys_points=True),
    )
}


def has_checkpoints(folder: Path) -> bool:
    """Whether a training folder holds a checkpoint to resume from (context stages included)."""
    return any((folder / "checkpoints").glob("checkpoint-*")) or any(folder.glob("stage-*/checkpoints/checkpoint-*"))
