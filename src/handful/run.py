"""`handful run`: the stages a recipe names, in one run directory, each resumable.

The layout of the directory is `handful.layout`; the stages and their keys are
`handful.recipe`. A stage recorded as done under the same key is skipped; under another key
its folder is moved to OUT/superseded/ (finished work is never deleted) and it runs again, and
with it every stage that reads it (a study moves aside and reruns only its changed points). An interrupted stage keeps its key and resumes: each stage
resumes by itself. After the stages: the manifest, REPRODUCE.md, the report and the
transparency score.
"""

from __future__ import annotations

import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from handful import manifest, report, tasks, transparency
from handful.errors import ConfigError
from handful.files import RunDirectory, inside, read_json, register_config_secrets, write_json, write_text
from handful.layout import RECIPE, REPRODUCE, SEEDS, STATE, SUPERSEDED, config_path
from handful.recipe import RunRecipe, Stage, keys, placeholders, plan, recorded_seeds, resolved, unseeded
from handful.stages import STAGES, has_checkpoints


def draw_seeds(recipe: RunRecipe, out: Path) -> dict[str, str]:
    """One seed per unseeded `dyn:` benchmark for the whole run, so that before and after
    fine-tuning, with and without a budget, see the very same fresh problems."""
    seeds = recorded_seeds(out)
    wanted = [s for s in unseeded(recipe) if s not in seeds]
    if wanted:
        seeded, _ = tasks.with_seeds(wanted)
        seeds.update(dict(zip(wanted, seeded)))
        write_json(out / SEEDS, seeds)
    return seeds


def command(out: Path, stage: Stage, recipe: RunRecipe) -> list[str]:
    """The standalone command that does what this stage does."""
    argv = [*STAGES[stage.kind].verb, "--config", str(config_path(out, stage.name)), "--out", str(out / stage.name)]
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


def _execute(stage: Stage, cfg: Any, folder: Path, recipe: RunRecipe, out: Path) -> dict:
    """Run one stage through the stage table; what it adds to its record in stages.json."""
    kind = STAGES[stage.kind]
    options = {"resume": has_checkpoints(folder)} if kind.checkpoints else {}
    if kind.checkpoints and recipe.train.accelerate:
        from handful.training import launch

        argv = [a for a in command(out, stage, recipe) if a != "handful"]
        code = launch.relaunch(
            recipe.train.accelerate, argv[argv.index("train") :] + (["--resume"] if options["resume"] else [])
        )
        if code:
            raise ConfigError(
                f"training under {recipe.train.accelerate} exited with {code}; rerun to resume from its checkpoints"
            )
        return {}
    summary = kind.run(cfg, folder, **options)
    if stage.kind == "distill" and summary.get("stopped"):
        raise ConfigError(f"distill stopped: {summary['stopped']}")
    if stage.kind == "eval":
        return {"scores": summary.model_dump(mode="json")["benchmarks"]}
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
    on_stage: Callable[[Stage, str], None] | None = None,
) -> dict:
    """Every stage the recipe names, then the manifest, the transparency score and the report."""
    with RunDirectory(out) as folder:
        return _run_recipe(recipe, recipe_text, folder, on_stage)


def _run_recipe(recipe: RunRecipe, recipe_text: str, out: Path, on_stage) -> dict:
    register_config_secrets(recipe.model_dump(mode="json"))
    # Every stage's settings are resolved before any stage runs: a typo in a placeholder
    # fails now, not after the stages before it.
    seeds = draw_seeds(recipe, out)
    stages = plan(recipe, seeds)
    stage_keys = keys(stages)
    values = placeholders(recipe, out)
    settings = {stage.name: resolved(stage.config, values) for stage in stages}
    write_text(out / RECIPE, recipe_text)
    state = load_state(out)
    state["invocations"].append({"argv": [Path(sys.argv[0]).name, *sys.argv[1:]], "started": time.time()})
    save_state(out, state)
    for stage in stages:
        key, folder = stage_keys[stage.name], out / stage.name
        record = state["stages"].get(stage.name)
        if record and record["key"] == key and record["status"] == "done":
            if on_stage:
                on_stage(stage, "unchanged, skipped")
            continue
        if record and record["key"] != key and folder.exists() and not STAGES[stage.kind].keys_points:
            aside = inside(out, out / SUPERSEDED / f"{stage.slug}-{record['key'][:10]}")
            inside(out, folder)
            if aside.exists():
                shutil.rmtree(aside)  # an older copy of the very same settings
            aside.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(aside)
            if on_stage:
                on_stage(stage, f"settings changed; the earlier results moved to {aside}")
        cfg = settings[stage.name]
        write_text(config_path(out, stage.name), yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
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
            extra = _execute(stage, cfg, folder, recipe, out)
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
    page = report.write(out)  # it shows the transparency score, counting itself as the write-up
    score = transparency.write(out)
    return {"manifest": result, "transparency": score, "report": str(page)}


def write_reproduce(out: Path, recipe: RunRecipe, state: dict, stages: list[Stage]) -> None:
    src = manifest.source_revision()
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
    write_text(out / REPRODUCE, "\n".join(lines))


def describe(recipe: RunRecipe, out: str | Path) -> list[dict]:
    """--dry-run: every stage's full settings and the command it would launch; nothing is written."""
    out = Path(out)
    stages = plan(recipe, recorded_seeds(out))
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
