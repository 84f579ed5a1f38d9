"""`handful regrade DIR`: every stored sample graded again with this handful's grader.

A score is only as good as its grader, and graders change (a fixed extraction path, a new
equivalence). Regrading is the one way to bring an eval run's verdicts up to date without
generating anything again: each eval folder's samples are graded from their stored text
against the problems the run stored (`benchmarks.jsonl`; a run made before that file existed
rebuilds its benchmarks from its settings), then `samples.jsonl` and `scores.json` are
rewritten whole, each atomically, so that a kill leaves either the old file or the new one. A
rerun after a kill finishes the job (samples already current change no verdict).

DIR is an eval folder, a scale, precision or study folder (its points; the curve or the table is
computed again after), or a `handful run` directory (its eval stages and sweep points; the
stage scores, the manifest, the report and the transparency score are brought up to date
after).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from handful.config import EvalConfig
from handful.errors import ConfigError
from handful.evaluation import (
    RUN_FILE,
    SAMPLES_FILE,
    grade_generations,
    load_problems,
    posed,
    spec_overrides,
    write_scores,
)
from handful.files import RunDirectory, read_json
from handful.grading import VERSION, Grader
from handful.layout import MANIFEST
from handful.models import ModelSpec, model_spec
from handful.records import Generation, Problem, RecordStore, write_jsonl

log = logging.getLogger(__name__)


@dataclass
class Regraded:
    """What regrading one eval folder changed."""

    folder: Path
    samples: int = 0
    changed: Counter = field(default_factory=Counter)  # (old outcome, new outcome) -> count
    scores: dict = field(default_factory=dict)  # benchmark -> (old accuracy, new accuracy)


def eval_folders(out: Path) -> list[Path]:
    """Every eval folder under DIR (DIR itself, a scale's points, a run's eval stages)."""
    if (out / RUN_FILE).is_file() and (out / SAMPLES_FILE).is_file():
        return [out]
    found = sorted(p.parent for p in out.rglob(SAMPLES_FILE) if (p.parent / RUN_FILE).is_file())
    # Not superseded results, and not curation's difficulty ratings: regrading those would leave
    # the selection made from them unexplained (rerun the curation instead).
    found = [f for f in found if "superseded" not in f.relative_to(out).parts and not _in_curation(f, out)]
    if not found:
        raise ConfigError(
            f"{out}: no eval run here (no {RUN_FILE} beside a {SAMPLES_FILE}); give a folder written by "
            "`handful eval`, `handful scale` or `handful run`"
        )
    return found


def _in_curation(folder: Path, root: Path) -> bool:
    within = [folder, *(p for p in folder.parents if p == root or root in p.parents)]
    return any((p / "curate.json").exists() for p in within)


@dataclass
class Stored:
    """What an eval folder says about its samples: its settings, its model's prompt settings
    (thinking delimiters) and the problems each benchmark posed."""

    cfg: EvalConfig
    spec: ModelSpec
    by_benchmark: dict[str, list[Problem]]

    @property
    def problems(self) -> dict[tuple[str, str], Problem]:
        return {(name, p.id): p for name, ps in self.by_benchmark.items() for p in ps}


def stored(folder: Path, samples: list[Generation]) -> Stored:
    """The settings and problems of an eval folder, after checking that every sample is of one
    of its problems."""
    cfg = EvalConfig.model_validate(read_json(folder / RUN_FILE, "run settings file")["config"])
    spec = model_spec(cfg.model, cfg.engine.name).model_copy(update=spec_overrides(cfg))
    posed_problems = posed(folder)
    if posed_problems:  # the problems as the run stored them
        by_benchmark: dict[str, list[Problem]] = {}
        for (name, _), p in posed_problems.items():
            by_benchmark.setdefault(name, []).append(p)
    else:  # a run from before they were stored: seeded specs give the very same problems again
        by_benchmark = load_problems(cfg)
    found = Stored(cfg, spec, by_benchmark)
    problems = found.problems
    unknown = sorted({f"{g.benchmark}/{g.problem_id}" for g in samples if (g.benchmark, g.problem_id) not in problems})
    if unknown:
        raise ConfigError(
            f"{folder / SAMPLES_FILE}: samples of problems the run's settings do not hold "
            f"({', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}); nothing was rewritten"
        )
    return found


def regrade_folder(folder: Path, grader: Grader) -> Regraded:
    with RecordStore(folder / SAMPLES_FILE, Generation, key=lambda g: g.key) as store:
        samples = list(store.records)
    run = stored(folder, samples)
    cfg, spec, by_benchmark, problems = run.cfg, run.spec, run.by_benchmark, run.problems
    fresh = grade_generations(grader, samples, problems, spec)
    result = Regraded(folder, len(samples))
    result.changed.update((a.outcome, b.outcome) for a, b in zip(samples, fresh) if a.outcome != b.outcome)
    old = read_json(folder / "scores.json", "scores file") if (folder / "scores.json").exists() else {}
    write_jsonl(folder / SAMPLES_FILE, fresh)
    if old:  # a finished run is scored again; an unfinished one stays unscored
        new = write_scores(cfg, folder, by_benchmark, fresh)
        result.scores = {
            name: (old.get("benchmarks", {}).get(name, {}).get("accuracy"), s.accuracy)
            for name, s in new.benchmarks.items()
        }
    return result


def regrade(out: str | Path, workers: int = 2, timeout: float = 5.0) -> list[Regraded]:
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out}: no such directory")
    folders = eval_folders(out)
    found = []
    with RunDirectory(out) as root, Grader(workers, timeout) as grader:
        for folder in folders:
            found.append(regrade_folder(folder, grader))
            log.info("%s: %d samples regraded with grader %s", folder, found[-1].samples, VERSION)
        for sweep in _sweeps(root, folders):
            _refresh_sweep(sweep)
        if (root / MANIFEST).exists():
            _refresh_run(root)
    return found


def _sweeps(root: Path, folders: list[Path]) -> list[Path]:
    """The scale, precision and study folders whose points were regraded (their curve or table is
    computed from the points' samples)."""
    from handful.outputs import SIGNS, SWEEPS

    # A point's eval folder is points/NAME (scale, precision) or points/NAME/eval (study).
    found = {p.parent for f in folders for p in f.parents if p.name == "points" and root in (p.parent, *p.parents)}
    return sorted(s for s in found if any((s / SIGNS[kind][0]).exists() for kind in SWEEPS))


def _refresh_sweep(folder: Path) -> None:
    """Its curve or table computed again from the regraded points: every point resumes with
    nothing left to generate."""
    from handful import precision, scaling, study

    if (folder / precision.STUDY_FILE).exists():
        cfg = precision.PrecisionConfig.model_validate(read_json(folder / precision.STUDY_FILE, "study")["config"])
        precision.study(cfg, folder)
    elif (folder / study.STUDY_FILE).exists():
        study.recompute(folder)  # its trained points are not rebuilt, nor their models looked for
    else:
        cfg = scaling.ScaleConfig.model_validate(read_json(folder / "curve.json", "curve")["config"])
        scaling.sweep(cfg, folder)


def _refresh_run(out: Path) -> None:
    """A `handful run` directory: its stage scores, manifest, report and transparency score."""
    from handful import manifest, report, transparency
    from handful.layout import RECIPE
    from handful.recipe import load_recipe, plan, recorded_seeds
    from handful.run import load_state, save_state

    recipe, _ = load_recipe(out / RECIPE)
    state = load_state(out)
    for name, entry in state["stages"].items():
        scores = out / name / "scores.json"
        if entry.get("scores") is not None and scores.exists():
            entry["scores"] = read_json(scores, "scores file")["benchmarks"]
    save_state(out, state)
    manifest.write(out, recipe, state, plan(recipe, recorded_seeds(out)))
    report.write(out)
    transparency.write(out)
