"""A run recipe: the stages one `handful run` names, and the plan made from it.

A recipe (YAML, `recipes/runs/`) names the student and, for each stage it wants, that stage's
settings. `plan` turns it into stages in order, each with its settings as stated (placeholders
such as `@curate` unresolved, so that a moved directory keeps its keys) and what it reads;
`keys` hashes each stage's settings with the keys of the stages it reads, so that a change
reruns the stage and everything downstream of it.

Placeholders in stage settings: `@base` (the recipe's model), `@curate` (the selected
problems), `@pool` (the cleaned problems curation chose from), `@distill` (the fine-tuning
set), `@train` (the trained model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from handful import tasks
from handful.config import Config, EvalConfig, load_config, read_yaml
from handful.curation.config import CurateConfig
from handful.curation.pipeline import CLEANED
from handful.distill import DistillConfig
from handful.errors import ConfigError
from handful.files import read_json, safe_name, settings_key
from handful.layout import SEEDS, slug
from handful.precision import PrecisionConfig
from handful.scaling import ScaleConfig
from handful.study import StudyConfig, StudyPoints
from handful.training.config import GRPOConfig, SFTConfig, preset_path, shipped_file, trained_folder

RUN_RECIPES = Path(__file__).resolve().parent / "recipes" / "runs"


class TrainStage(Config):
    kind: Literal["sft", "grpo"] = "sft"
    preset: str | None = Field(
        default=None, description="a shipped training preset (sft-cpu-small, ...) or a YAML file"
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="settings over the preset, e.g. {epochs: 2, lora: {enabled: true}}"
    )
    accelerate: str | None = Field(
        default=None,
        description="launch through accelerate with this config (ddp, ddp-cpu, fsdp, deepspeed-zero3, or a file)",
    )


class EvalStage(Config):
    purpose: str = Field(description="why these benchmarks: shown in the report, asked by the transparency checklist")
    models: list[str] = Field(default_factory=lambda: ["@base", "@train"], min_length=1)
    runs: dict[str, EvalConfig] = Field(
        min_length=1, description="name: eval settings; each runs once per model (its `model` is replaced)"
    )

    @field_validator("runs")
    @classmethod
    def _names_are_folders(cls, runs: dict) -> dict:
        for name in runs:
            safe_name("eval run name", name)
        return runs


class ScaleStage(Config):
    models: list[str] = Field(default_factory=lambda: ["@train"], min_length=1)
    sweep: ScaleConfig = Field(default_factory=ScaleConfig)


class PrecisionStage(Config):
    models: list[str] = Field(default_factory=lambda: ["@train"], min_length=1)
    study: PrecisionConfig = Field(default_factory=PrecisionConfig)


class RunRecipe(Config):
    name: str = Field(description="the run's name: its default folder, runs/NAME")
    description: str = ""
    model: str = Field(default="smollm2-135m", description="the student: `@base` in every stage")
    curate: CurateConfig | None = None
    distill: DistillConfig | None = None
    train: TrainStage | None = None
    eval: EvalStage | None = None
    scale: ScaleStage | None = None
    precision: PrecisionStage | None = None
    # A data-size curve and curated against random at equal size (`handful study`), with the
    # run's training settings and teacher.
    study: StudyPoints | None = None
    release: dict[str, str] = Field(
        default_factory=dict, description="where the run's data, traces, model, code and write-up are published (URLs)"
    )

    @field_validator("name")
    @classmethod
    def _name_is_a_folder(cls, name: str) -> str:
        return safe_name("recipe name", name)

    @model_validator(mode="before")
    @classmethod
    def _read_upstream_by_default(cls, data):
        if isinstance(data, dict) and isinstance(data.get("distill"), dict) and "problems" not in data["distill"]:
            data["distill"] = {**data["distill"], "problems": "@curate" if data.get("curate") else None}
        return data


def recipe_file(name_or_path: str | Path) -> Path:
    return shipped_file("run recipe", RUN_RECIPES, name_or_path)


def _merged(base: dict, over: dict) -> dict:
    """`over` on top of `base`: mappings merge key by key, anything else is replaced."""
    found = dict(base)
    for key, value in over.items():
        found[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return found


def _extended(path: Path, data: dict, seen: tuple[Path, ...] = ()) -> dict:
    """A recipe's settings (`data`, read from `path`), with those of the recipe it `extends` (a
    shipped name or a file) underneath them."""
    parent = data.get("extends")
    if parent is None:
        return data
    base = recipe_file(parent)
    if base.resolve() in seen or base.resolve() == path.resolve():
        raise ConfigError(f"{path}: extends {parent}, which extends it back")
    own = {k: v for k, v in data.items() if k != "extends"}
    return _merged(_extended(base, read_yaml(base), (*seen, path.resolve())), own)


def load_recipe(name_or_path: str | Path, overrides: list[str] = ()) -> tuple[RunRecipe, str]:
    """The recipe and its text as a run stores it: the file itself, or, for a recipe that
    extends another, the whole merged recipe (so that the run's recipe.yaml stands alone)."""
    path = recipe_file(name_or_path)
    given = read_yaml(path)
    data = _extended(path, given)
    if "extends" in given:
        text = f"# {path.name}, merged with the recipe it extends\n" + yaml.safe_dump(data, sort_keys=False)
    else:
        text = path.read_text(encoding="utf-8")
    return load_config(RunRecipe, path, overrides, data=data), text


@dataclass
class Stage:
    """One stage of a run: who it is (kind, and for eval, scale and precision the eval run and the model),
    its settings as the recipe states them (placeholders unresolved), and what it reads."""

    name: str  # curate, distill, train, eval/RUN/MODEL, scale/MODEL, precision/MODEL: its folder under OUT
    kind: str  # a key of handful.stages.STAGES
    config: Any
    needs: list[str]
    run: str | None = None  # the eval run (eval stages)
    model: str | None = None  # the model's label (eval, scale, precision): base, trained, or its name

    @property
    def slug(self) -> str:
        return slug(self.name)


def _label(model: str) -> str:
    """A model's folder name: its role, or its name with anything but letters, digits, '-', '_' and '.' made '-'."""
    label = {"@base": "base", "@train": "trained"}.get(model) or "".join(
        c if c.isalnum() or c in "-_." else "-" for c in model
    ).strip("-.")
    return safe_name("model label", label or "model")


def _dotted(settings: dict, prefix: str = "") -> list[str]:
    items = []
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            items += _dotted(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={json.dumps(value)}")
    return items


def train_recipe(recipe: RunRecipe) -> SFTConfig | GRPOConfig:
    stage = recipe.train
    kind = SFTConfig if stage.kind == "sft" else GRPOConfig
    defaults = {"model": "@base", **({"data": "@distill"} if stage.kind == "sft" else {"problems": "@curate"})}
    preset = preset_path(stage.preset) if stage.preset else None
    given = yaml.safe_load(preset.read_text()) if preset else {}
    fill = {k: v for k, v in defaults.items() if k not in given and k not in stage.settings}
    fill["model"] = stage.settings.get("model", "@base")  # a preset's model is its paper's; the run trains its own
    return load_config(kind, preset, _dotted(fill) + _dotted(stage.settings))


def plan(recipe: RunRecipe, seeds: dict[str, str] | None = None) -> list[Stage]:
    """The stages in order, with their settings as stated (placeholders unresolved)."""
    seeds = seeds or {}
    stages: list[Stage] = []
    if recipe.curate:
        stages.append(Stage("curate", "curate", recipe.curate, []))
    if recipe.distill:
        needs = ["curate"] if recipe.distill.problems == "@curate" else []
        stages.append(Stage("distill", "distill", recipe.distill, needs))
    if recipe.train:
        cfg = train_recipe(recipe)
        source = cfg.data if isinstance(cfg, SFTConfig) else cfg.problems
        needs = {"@distill": ["distill"], "@curate": ["curate"]}.get(source or "", [])
        stages.append(Stage("train", recipe.train.kind, cfg, needs))
    if recipe.eval:
        for run_name, cfg in recipe.eval.runs.items():
            for model in recipe.eval.models:
                seeded = cfg.model_copy(
                    update={"model": model, "benchmarks": [seeds.get(b, b) for b in cfg.benchmarks]}
                )
                label = _label(model)
                needs = ["train"] if model == "@train" else []
                stages.append(Stage(f"eval/{run_name}/{label}", "eval", seeded, needs, run=run_name, model=label))
    if recipe.scale:
        stages += _per_model("scale", recipe.scale.models, recipe.scale.sweep, seeds)
    if recipe.precision:
        stages += _per_model("precision", recipe.precision.models, recipe.precision.study, seeds)
    if recipe.study:
        stages.append(_study(recipe, seeds))
    names = {s.name for s in stages}
    for s in stages:
        missing = [n for n in s.needs if n not in names]
        if missing:
            raise ConfigError(
                f"recipe {recipe.name}: stage {s.name} reads from {', '.join(missing)}, which the recipe does not run"
            )
    return stages


def _per_model(kind: str, models: list[str], settings, seeds: dict[str, str]) -> list[Stage]:
    """One stage per model of a study made of eval runs (scale, precision): its eval settings
    with that model and the run's seeds."""
    stages = []
    for model in models:
        evaluation = settings.eval.model_copy(
            update={"model": model, "benchmarks": [seeds.get(b, b) for b in settings.eval.benchmarks]}
        )
        label = _label(model)
        needs = ["train"] if model == "@train" else []
        stages.append(
            Stage(f"{kind}/{label}", kind, settings.model_copy(update={"eval": evaluation}), needs, model=label)
        )
    return stages


def _study(recipe: RunRecipe, seeds: dict[str, str]) -> Stage:
    if not (recipe.train and recipe.train.kind == "sft" and recipe.distill):
        raise ConfigError(f"recipe {recipe.name}: study trains like the train stage: it needs distill and train: sft")
    given = recipe.study
    evaluation = given.eval.model_copy(update={"benchmarks": [seeds.get(b, b) for b in given.eval.benchmarks]})
    random_picks = {"distill": recipe.distill.model_copy(update={"problems": "@pool"})} if given.random else {}
    if given.random and not recipe.curate:
        raise ConfigError(f"recipe {recipe.name}: study.random draws from curation's cleaned pool: add curate")
    cfg = StudyConfig(
        train=train_recipe(recipe),
        eval=evaluation,
        whole="@train",  # the train stage is the point at the whole set's size
        **given.model_dump(exclude={"eval"}),
        **random_picks,
    )
    return Stage("study", "study", cfg, ["distill", "train", *(["curate"] if given.random else [])])


def unseeded(recipe: RunRecipe) -> list[str]:
    specs = [b for cfg in (recipe.eval.runs.values() if recipe.eval else []) for b in cfg.benchmarks]
    specs += recipe.scale.sweep.eval.benchmarks if recipe.scale else []
    specs += recipe.precision.study.eval.benchmarks if recipe.precision else []
    specs += recipe.study.eval.benchmarks if recipe.study else []
    return [s for s in dict.fromkeys(specs) if s.startswith(tasks.SCHEME) and "seed" not in tasks.parse_spec(s)[1]]


def recorded_seeds(out: Path) -> dict[str, str]:
    """The seeds a run directory drew for its unseeded `dyn:` benchmarks (none yet: empty)."""
    return read_json(out / SEEDS, "seeds file") if (out / SEEDS).exists() else {}


def keys(stages: list[Stage]) -> dict[str, str]:
    found: dict[str, str] = {}
    for s in stages:
        body = {"kind": s.kind, "config": s.config.model_dump(mode="json"), "needs": {n: found[n] for n in s.needs}}
        found[s.name] = settings_key(body)
    return found


def trained_model(out: Path, recipe: RunRecipe) -> Path:
    """Where the train stage leaves the model to evaluate (known before it runs)."""
    return trained_folder(train_recipe(recipe), out / "train")


def placeholders(recipe: RunRecipe, out: Path) -> dict[str, str]:
    found = {
        "@base": recipe.model,
        "@curate": str(out / "curate" / "selected.jsonl"),
        "@distill": str(out / "distill" / "sft.jsonl"),
        "@pool": str(out / "curate" / CLEANED),
    }
    if recipe.train:
        found["@train"] = str(trained_model(out, recipe))
    return found


def resolved(config: Any, values: dict[str, str]) -> Any:
    """The settings with every placeholder replaced by its path or model."""

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node.startswith("@"):
            if node not in values:
                raise ConfigError(f"{node}: no such placeholder here; known: {', '.join(sorted(values))}")
            return values[node]
        return node

    return type(config).model_validate(walk(config.model_dump(mode="json")))
