"""`handful run`: the stages a recipe names, in one run directory, each resumable.

    OUT/configs/STAGE.yaml   each stage's full settings (what its own command would read)
    OUT/curate/  OUT/distill/  OUT/train/  OUT/eval/RUN/MODEL/  OUT/scale/MODEL/
    OUT/stages.json          key, status, timings and command of every stage; every invocation
    OUT/seeds.json           the seeds drawn for unseeded `dyn:` benchmarks, shared by all stages
    OUT/manifest.json        (handful.manifest)

A stage's key hashes its settings as the recipe states them (placeholders such as `@curate`
unresolved, so a moved directory keeps its keys) and the keys of the stages it reads. A stage
recorded as done under the same key is skipped; under another key its folder is moved to
OUT/superseded/ (finished work is never deleted) and it runs again, and with it every stage
that reads it. An interrupted stage keeps its key and resumes: each stage resumes by itself.

Placeholders in stage settings: `@base` (the recipe's model), `@curate` (the selected
problems), `@distill` (the fine-tuning set), `@train` (the trained model).
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from handful import tasks
from handful.config import Config, EvalConfig, load_config
from handful.curation.config import CurateConfig
from handful.distill import DistillConfig
from handful.errors import ConfigError
from handful.files import RunDirectory, inside, read_json, register_config_secrets, safe_name, write_json, write_text
from handful.scaling import ScaleConfig
from handful.training.config import GRPORecipe, SFTRecipe, recipe_path, shipped_file

RUN_RECIPES = Path(__file__).resolve().parent / "recipes" / "runs"
STATE, SEEDS = "stages.json", "seeds.json"


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


class RunRecipe(Config):
    name: str = Field(description="the run's name: its default folder, runs/NAME")
    description: str = ""
    model: str = Field(default="smollm2-135m", description="the student: `@base` in every stage")
    curate: CurateConfig | None = None
    distill: DistillConfig | None = None
    train: TrainStage | None = None
    eval: EvalStage | None = None
    scale: ScaleStage | None = None
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


def load_recipe(name_or_path: str | Path, overrides: list[str] = ()) -> tuple[RunRecipe, str]:
    path = recipe_file(name_or_path)
    return load_config(RunRecipe, path, overrides), path.read_text(encoding="utf-8")


@dataclass
class Stage:
    name: str  # curate, distill, train, eval/RUN/MODEL, scale/MODEL
    kind: str
    config: Any  # the pydantic settings, placeholders unresolved
    needs: list[str]

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-")


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


def train_recipe(recipe: RunRecipe) -> SFTRecipe | GRPORecipe:
    stage = recipe.train
    kind = SFTRecipe if stage.kind == "sft" else GRPORecipe
    defaults = {"model": "@base", **({"data": "@distill"} if stage.kind == "sft" else {"problems": "@curate"})}
    preset = recipe_path(stage.preset) if stage.preset else None
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
        source = cfg.data if isinstance(cfg, SFTRecipe) else cfg.problems
        needs = {"@distill": ["distill"], "@curate": ["curate"]}.get(source or "", [])
        stages.append(Stage("train", recipe.train.kind, cfg, needs))
    if recipe.eval:
        for run_name, cfg in recipe.eval.runs.items():
            for model in recipe.eval.models:
                seeded = cfg.model_copy(
                    update={"model": model, "benchmarks": [seeds.get(b, b) for b in cfg.benchmarks]}
                )
                stages.append(
                    Stage(f"eval/{run_name}/{_label(model)}", "eval", seeded, ["train"] if model == "@train" else [])
                )
    if recipe.scale:
        for model in recipe.scale.models:
            sweep = recipe.scale.sweep
            evaluation = sweep.eval.model_copy(
                update={"model": model, "benchmarks": [seeds.get(b, b) for b in sweep.eval.benchmarks]}
            )
            stages.append(
                Stage(
                    f"scale/{_label(model)}",
                    "scale",
                    sweep.model_copy(update={"eval": evaluation}),
                    ["train"] if model == "@train" else [],
                )
            )
    names = {s.name for s in stages}
    for s in stages:
        missing = [n for n in s.needs if n not in names]
        if missing:
            raise ConfigError(
                f"recipe {recipe.name}: stage {s.name} reads from {', '.join(missing)}, which the recipe does not run"
            )
    return stages


def unseeded(recipe: RunRecipe) -> list[str]:
    specs = [b for cfg in (recipe.eval.runs.values() if recipe.eval else []) for b in cfg.benchmarks]
    specs += recipe.scale.sweep.eval.benchmarks if recipe.scale else []
    return [s for s in dict.fromkeys(specs) if s.startswith(tasks.SCHEME) and "seed" not in tasks.parse_spec(s)[1]]


def draw_seeds(recipe: RunRecipe, out: Path) -> dict[str, str]:
    """One seed per unseeded `dyn:` benchmark for the whole run, so that before and after
    fine-tuning, with and without a budget, see the very same fresh problems."""
    path = out / SEEDS
    seeds = read_json(path, "seeds file") if path.exists() else {}
    wanted = [s for s in unseeded(recipe) if s not in seeds]
    if wanted:
        seeded, _ = tasks.with_seeds(wanted)
        seeds.update(dict(zip(wanted, seeded)))
        write_json(path, seeds)
    return seeds


def keys(stages: list[Stage]) -> dict[str, str]:
    found: dict[str, str] = {}
    for s in stages:
        body = {"kind": s.kind, "config": s.config.model_dump(mode="json"), "needs": {n: found[n] for n in s.needs}}
        found[s.name] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return found


def trained_model(out: Path, recipe: RunRecipe) -> Path:
    """Where the train stage leaves the model to evaluate (known before it runs)."""
    cfg = train_recipe(recipe)
    folder = out / "train"
    if isinstance(cfg, GRPORecipe) and len(cfg.context_schedule) > 1:
        folder = folder / f"stage-{len(cfg.context_schedule) - 1}"
    return folder / ("adapter" if cfg.lora.enabled and not cfg.lora.merge else "model")


def placeholders(recipe: RunRecipe, out: Path) -> dict[str, str]:
    found = {
        "@base": recipe.model,
        "@curate": str(out / "curate" / "selected.jsonl"),
        "@distill": str(out / "distill" / "sft.jsonl"),
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


def folder_of(out: Path, stage: Stage) -> Path:
    return out / stage.name


def config_path(out: Path, stage: Stage) -> Path:
    return out / "configs" / f"{stage.slug}.yaml"


def command(out: Path, stage: Stage, recipe: RunRecipe) -> list[str]:
    """The standalone command that does what this stage does."""
    verb = {
        "curate": ["curate"],
        "distill": ["distill"],
        "sft": ["train", "sft"],
        "grpo": ["train", "grpo"],
        "eval": ["eval"],
        "scale": ["scale"],
    }[stage.kind]
    argv = [*verb, "--config", str(config_path(out, stage)), "--out", str(folder_of(out, stage))]
    if stage.name == "train" and recipe.train.accelerate:
        from handful.training import launch

        return launch.command(recipe.train.accelerate, argv)
    return ["handful", *argv]


# ---- running ---------------------------------------------------------------------------


def load_state(out: Path) -> dict:
    path = out / STATE
    return read_json(path, "stage record") if path.exists() else {"stages": {}, "invocations": []}


def save_state(out: Path, state: dict) -> None:
    write_json(out / STATE, state)


def _execute(stage: Stage, cfg: Any, folder: Path, recipe: RunRecipe, out: Path, console) -> dict:
    if stage.kind == "curate":
        from handful.curation import curate

        curate(
            cfg,
            folder,
            console=console,
            on_stage=lambda name, before, after: console and console.print(f"  {name}: {before} -> {after}"),
        )
        return {}
    if stage.kind == "distill":
        from handful.distill import distill

        summary = distill(cfg, folder, console=console)
        if summary.get("stopped"):
            raise ConfigError(f"distill stopped: {summary['stopped']}")
        return {}
    if stage.kind in ("sft", "grpo"):
        resume = any((folder / "checkpoints").glob("checkpoint-*")) or any(
            folder.glob("stage-*/checkpoints/checkpoint-*")
        )
        if recipe.train.accelerate:
            from handful.training import launch

            argv = [a for a in command(out, stage, recipe) if a != "handful"]
            code = launch.relaunch(
                recipe.train.accelerate, argv[argv.index("train") :] + (["--resume"] if resume else [])
            )
            if code:
                raise ConfigError(
                    f"training under {recipe.train.accelerate} exited with {code}; rerun to resume from its checkpoints"
                )
            return {}
        if stage.kind == "sft":
            from handful.training.sft import train_sft

            train_sft(cfg, folder, resume=resume, console=console)
        else:
            from handful.training.grpo import train_grpo

            train_grpo(cfg, folder, resume=resume, console=console)
        return {}
    if stage.kind == "eval":
        from handful.evaluation import evaluate

        return {"scores": evaluate(cfg, folder, console=console)["benchmarks"]}
    from handful.scaling import scale

    scale(cfg, folder, console=console)
    return {}


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)  # Linux reports KiB


def run_recipe(
    recipe: RunRecipe,
    recipe_text: str,
    out: str | Path,
    *,
    console=None,
    on_stage: Callable[[Stage, str], None] | None = None,
) -> dict:
    """Every stage the recipe names, then the manifest, the transparency score and the report."""
    with RunDirectory(out) as folder:
        return _run_recipe(recipe, recipe_text, folder, console, on_stage)


def _run_recipe(recipe: RunRecipe, recipe_text: str, out: Path, console, on_stage) -> dict:
    from handful import manifest, report, transparency

    register_config_secrets(recipe.model_dump(mode="json"))
    # Every stage's settings are resolved before any stage runs: a typo in a placeholder
    # fails now, not after the stages before it.
    seeds = draw_seeds(recipe, out)
    stages = plan(recipe, seeds)
    stage_keys = keys(stages)
    values = placeholders(recipe, out)
    settings = {stage.name: resolved(stage.config, values) for stage in stages}
    write_text(out / "recipe.yaml", recipe_text)
    state = load_state(out)
    state["invocations"].append({"argv": [Path(sys.argv[0]).name, *sys.argv[1:]], "started": time.time()})
    save_state(out, state)
    for stage in stages:
        key, folder = stage_keys[stage.name], folder_of(out, stage)
        record = state["stages"].get(stage.name)
        if record and record["key"] == key and record["status"] == "done":
            if on_stage:
                on_stage(stage, "unchanged, skipped")
            continue
        if record and record["key"] != key and folder.exists():
            aside = inside(out, out / "superseded" / f"{stage.slug}-{record['key'][:10]}")
            inside(out, folder)
            if aside.exists():
                shutil.rmtree(aside)  # an older copy of the very same settings
            aside.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(aside)
            if on_stage:
                on_stage(stage, f"settings changed; the earlier results moved to {aside}")
        cfg = settings[stage.name]
        write_text(config_path(out, stage), yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        resumed = bool(record and record["key"] == key)
        state["stages"][stage.name] = {
            "key": key,
            "status": "started",
            "started": time.time(),
            "command": command(out, stage, recipe),
            "resumed": resumed,
            "previous_seconds": (record or {}).get("seconds_spent", 0.0) if resumed else 0.0,
        }
        save_state(out, state)
        if on_stage:
            on_stage(stage, "resuming" if resumed else "running")
        started = time.monotonic()
        try:
            extra = _execute(stage, cfg, folder, recipe, out, console)
        finally:
            entry = state["stages"][stage.name]
            entry["seconds_spent"] = round(entry["previous_seconds"] + time.monotonic() - started, 1)
            entry["peak_rss_mb"] = _peak_rss_mb()
            save_state(out, state)
        entry.update({"status": "done", "finished": time.time(), **extra})
        save_state(out, state)
        manifest.write(out, recipe, state, stages)
    write_reproduce(out, recipe, state, stages)
    result = manifest.write(out, recipe, state, stages)
    report.write(out)  # the transparency score asks for the report; the report then shows the score
    score = transparency.write(out)
    report.write(out)
    return {"manifest": result, "transparency": score, "report": str(out / report.REPORT)}


def write_reproduce(out: Path, recipe: RunRecipe, state: dict, stages: list[Stage]) -> None:
    from handful.manifest import source_revision

    src = source_revision()
    install = (
        f"git clone <handful's repository> handful && git -C handful checkout {src['git_commit']} && pip install -e './handful[hf,train]'"
        if src.get("git_commit")
        else f"pip install 'handful[hf,train]=={src['handful']}'"
    )
    lines = [
        f"# Reproducing {recipe.name}",
        "",
        "1. Install the same handful (package versions: `manifest.json` -> `packages`; torch for your machine):",
        "",
        f"       {install}",
        "",
        "2. Rerun every stage. `seeds.json` holds the seeds drawn for the fresh benchmarks: copy it into the new",
        "   directory first to evaluate on the very same problems, or leave it out to draw new ones.",
        "",
        "       mkdir -p NEW && cp seeds.json NEW/ 2>/dev/null; handful run recipe.yaml --out NEW",
        "",
        "3. Or stage by stage, with the settings each stage used (`configs/`):",
        "",
    ]
    lines += [f"       {' '.join(state['stages'][s.name]['command'])}" for s in stages if s.name in state["stages"]]
    lines += ["", "4. Check the run: `handful transparency NEW` and `handful report NEW` (report.html).", ""]
    write_text(out / "REPRODUCE.md", "\n".join(lines))


def describe(recipe: RunRecipe, out: str | Path) -> list[dict]:
    """--dry-run: every stage's full settings and the command it would launch; nothing is written."""
    out = Path(out)
    seeds = read_json(out / SEEDS, "seeds file") if (out / SEEDS).exists() else {}
    stages = plan(recipe, seeds)
    values = placeholders(recipe, out)
    stage_keys = keys(stages)
    return [
        {
            "stage": s.name,
            "key": stage_keys[s.name][:12],
            "reads": s.needs,
            "config": resolved(s.config, values).model_dump(mode="json"),
            "command": command(out, s, recipe),
        }
        for s in stages
    ]
