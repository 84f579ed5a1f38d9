"""`handful study`: how few examples are enough (LIMO, s1), measured on the user's own model.

A data-size curve: the student fine-tuned on N of the curated examples, for each N in `sizes`,
each model evaluated on the same fresh problems, and the untrained student as the point at 0.
Beside it, s1's selection ablation: at each size in `random`, N problems drawn at random from
a pool (`distill.problems`; in a run, the cleaned pool curation chose from, before difficulty
and selection), given traces by the same teacher, trained and evaluated the same way.

Every point is a sub-run in `OUT/points/NAME/` (`base`, `curated-N`, `random-N`): its fine-tuning
set, `train/` and `eval/`, each resumable (training from its checkpoints, evaluation sample by
sample); random picks get their traces in `OUT/picks/`. What fixes a point (its training settings, the hash of its data, the eval settings)
is its key in `point.json`: an unchanged point is skipped, a changed one is moved to
`OUT/superseded/` and runs again alone. Seeds are shared by every point: the same training
seed, the same subset order (the curated points are nested: the 16 are the first 16 of the
64), and the same fresh benchmark problems, fixed by the first point.

Equal epochs (default) trains every point for the preset's epochs, so a small set takes fewer
steps; equal steps trains every point for as many optimizer steps as the largest point takes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import shutil
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from handful.comparison import compare_samples
from handful.config import Config, EvalConfig
from handful.distill import DistillConfig
from handful.errors import ConfigError
from handful.evaluation import SAMPLES_FILE, evaluate, seed_benchmarks
from handful.files import RunDirectory, inside, read_json, settings_key, write_json, write_text
from handful.layout import SUPERSEDED
from handful.records import Generation, read_jsonl
from handful.training.common import last_checkpoint
from handful.training.config import SFTConfig, trained_folder

log = logging.getLogger(__name__)

STUDY_FILE = "study.json"
BASE = "base"


class StudyPoints(Config):
    """Which points a study has: the part of its settings a recipe's `study:` section states too."""

    eval: EvalConfig = Field(description="what every point is measured on (its `model` is each point's)")
    sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [16, 64, 256], min_length=1, description="training examples per curated point"
    )
    random: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=list,
        description="sizes at which random picks from distill.problems are trained too (s1's ablation)",
    )
    equal: Literal["epochs", "steps"] = Field(
        default="epochs", description="every point trains the same epochs, or as many steps as the largest"
    )
    seed: int = Field(default=0, description="the order in which examples are taken, and the random picks")


class StudyConfig(StudyPoints):
    train: SFTConfig = Field(description="how every point trains; its `data` is the curated fine-tuning set")
    distill: DistillConfig | None = Field(
        default=None,
        description="where random picks come from (its problems: e.g. curation's cleaned pool) and their teacher",
    )
    whole: str | None = Field(
        default=None,
        description="a model already trained on the whole curated set with these settings (a run's train stage): "
        "the point of that size evaluates it instead of training again",
    )

    @model_validator(mode="after")
    def _random_has_a_source(self):
        if self.random and not self.distill:
            raise ValueError("random: picks need a pool to draw from and a teacher: set distill (problems, teacher)")
        return self


def _records(path: str) -> list[str]:
    """The fine-tuning set's lines, as stored."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"train.data: {path} is not a file (the fine-tuning set, e.g. distill/sft.jsonl)")
    lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"train.data: {path} holds no examples")
    return lines


def _steps(cfg: StudyConfig, largest: int) -> int:
    t = cfg.train
    kept = largest - math.floor(largest * t.val_fraction)
    return math.ceil(kept / (t.batch_size * t.grad_accum)) * math.ceil(t.epochs)


def _supersede(out: Path, folder: Path, key: str) -> None:
    aside = inside(out, out / SUPERSEDED / f"{folder.name}-{key[:10]}")
    if aside.exists():
        shutil.rmtree(aside)  # an older copy of the very same settings
    aside.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(aside)
    log.info("%s: its settings changed; the earlier results moved to %s", folder.name, aside)


def _point(
    out: Path,
    name: str,
    train: SFTConfig | None,
    data: list[str] | None,
    evaluation: EvalConfig,
    whole: str | None = None,
) -> dict:
    """One point: its fine-tuning set written, the model trained (resuming) unless `whole`
    already is that model, then evaluated."""
    folder = out / "points" / name
    body = {"eval": evaluation.model_dump(mode="json", exclude={"model"}), "whole": whole}
    if train is not None:
        body["train"] = train.model_dump(mode="json", exclude={"data"})
        body["data"] = hashlib.sha256("\n".join(data).encode()).hexdigest()
    key = settings_key(body)
    record = folder / "point.json"
    before = read_json(record, "point record") if record.exists() else None
    if before is not None and before.get("key") != key:
        _supersede(out, folder, before["key"])
    folder.mkdir(parents=True, exist_ok=True)
    write_json(record, {"key": key, "name": name})
    model = evaluation.model
    trained = folder / "train"
    if whole is not None:
        model, trained = whole, Path(whole).parent
        if not (trained / "train.json").exists():
            raise ConfigError(f"study.whole: {whole} is not a finished training run's model (no train.json beside it)")
        log.info("%s: the model trained on the whole set, %s", name, whole)
    elif train is not None:
        from handful.training.sft import train_sft

        write_text(folder / "sft.jsonl", "\n".join(data) + "\n")
        if not (trained / "train.json").exists():
            resume = last_checkpoint(trained / "checkpoints") is not None
            log.info("%s: training on %d examples%s", name, len(data), " (resuming)" if resume else "")
            train_sft(train.model_copy(update={"data": str(folder / "sft.jsonl")}), trained, resume=resume)
        model = str(trained_folder(train, trained))
    log.info("%s: evaluating", name)
    evaluate(evaluation.model_copy(update={"model": model}), folder / "eval")
    train_record = read_json(trained / "train.json", "training record") if train is not None else {}
    return {"steps": train_record.get("steps", 0), "train_seconds": train_record.get("seconds")}


def _random_set(cfg: StudyConfig, out: Path, size: int) -> list[str]:
    """`size` problems drawn from the pool, given traces by the study's teacher."""
    from handful.distill import distill

    # Kept apart from the point, so that retraining a point never throws away traces a
    # teacher was paid for.
    folder = out / "picks" / f"random-{size}"
    teacher = cfg.distill.model_copy(update={"limit": size, "seed": cfg.seed})
    asked = folder / "distill.json"
    if asked.exists():
        before = read_json(asked, "distill settings file")
        if before != {"problems": teacher.problems, "limit": size, "seed": cfg.seed}:
            _supersede(out, folder, settings_key(before))
    summary = distill(teacher, folder)
    if summary.get("stopped"):
        raise ConfigError(f"random-{size}: distill stopped: {summary['stopped']}")
    return _records(str(folder / "sft.jsonl"))


def study(cfg: StudyConfig, out: str | Path) -> dict:
    with RunDirectory(out) as folder:
        return run_points(cfg, folder)


def run_points(cfg: StudyConfig, out: Path) -> dict:
    """Every point, skipping the finished ones, then the curve from their samples."""
    curated = _records(cfg.train.data or "")
    order = list(range(len(curated)))
    random.Random(cfg.seed).shuffle(order)
    # Sizes above the curated set are the whole set, once.
    sizes = sorted({min(n, len(curated)) for n in cfg.sizes})
    # A max_steps in the training settings caps every point either way.
    steps = _steps(cfg, max([*sizes, *cfg.random])) if cfg.equal == "steps" and cfg.train.max_steps < 0 else None
    train = cfg.train.model_copy(update={"max_steps": steps}) if steps else cfg.train
    # Every point sees the same fresh problems: seeds are fixed once, by the base point.
    evaluation = seed_benchmarks(cfg.eval, out / "points" / BASE / "eval")
    plan: list[tuple[str, str, int, SFTConfig | None]] = [(BASE, BASE, 0, None)]
    plan += [(f"curated-{n}", "curated", n, train) for n in sizes]
    plan += [(f"random-{n}", "random", n, train) for n in sorted(set(cfg.random))]
    facts = {}
    for name, selection, size, settings in plan:
        data = None
        if selection == "curated":
            data = [curated[i] for i in sorted(order[:size])]
        elif selection == "random":
            data = _random_set(cfg, out, size)
        # The whole set's model is reused only if the point would train exactly as it did.
        whole = cfg.whole if selection == "curated" and size == len(curated) and train is cfg.train else None
        facts[name] = {
            "selection": selection,
            "size": len(data or []),
            **_point(out, name, settings, data, evaluation, whole),
        }
    result = {"points": _curve(out, facts, evaluation.n), "config": cfg.model_dump(mode="json")}
    write_json(out / STUDY_FILE, result)
    return result


def recompute(out: Path) -> dict:
    """The curve again from the points' stored samples (after a regrade), training and
    generating nothing: what each point is comes from study.json."""
    result = read_json(out / STUDY_FILE, "study")
    keep = ("selection", "size", "steps", "train_seconds")
    facts = {p["point"]: {k: p[k] for k in keep} for p in result["points"]}
    result["points"] = _curve(out, facts, result["config"]["eval"]["n"])
    write_json(out / STUDY_FILE, result)
    return result


def _curve(out: Path, facts: dict[str, dict], n: int) -> list[dict]:
    """Each point's accuracy per benchmark and pooled, paired against the base model, and each
    random point paired against the curated point of the same size."""
    samples = {name: read_jsonl(out / "points" / name / "eval" / SAMPLES_FILE, Generation) for name in facts}
    rows = []
    for name, fact in facts.items():
        against_base = {
            c.benchmark: c for c in compare_samples(samples[BASE], samples[name], n, n, baseline=BASE, compared=name)
        }
        curated = f"curated-{fact['size']}"
        against_curated = (
            {
                c.benchmark: c
                for c in compare_samples(samples[curated], samples[name], n, n, baseline=curated, compared=name)
            }
            if fact["selection"] == "random" and curated in samples
            else {}
        )
        for bench, c in against_base.items():
            rows.append(
                {
                    "point": name,
                    **fact,
                    "benchmark": bench,
                    "problems": c.problems,
                    "accuracy": c.accuracy,
                    "ci95": list(c.ci95),
                    "against_base": c.model_dump(mode="json"),
                    "against_curated": against_curated[bench].model_dump(mode="json")
                    if bench in against_curated
                    else None,
                }
            )
    return rows


def pooled(points: list[dict]) -> list[dict]:
    """One row per point: over all its benchmarks where it has several, else its one benchmark's."""
    several = {p["point"] for p in points if p["benchmark"] == "all of them"}
    return [p for p in points if p["point"] not in several or p["benchmark"] == "all of them"]


def summary_lines(result: dict) -> list[str]:
    """One line per point, pooled over benchmarks where there are several."""
    lines = []
    for p in pooled(result["points"]):
        base = p["against_base"]
        line = (
            f"{p['point']} ({p['size']} examples, {p['steps']} steps) {p['benchmark']}: {p['accuracy']:.3f} "
            f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]"
        )
        if p["point"] != BASE:
            line += f"; vs base {base['difference']:+.3f} [{base['difference_ci95'][0]:+.3f}, {base['difference_ci95'][1]:+.3f}]"
        if p["against_curated"]:
            c = p["against_curated"]
            line += (
                f"; vs curated {c['difference']:+.3f} [{c['difference_ci95'][0]:+.3f}, {c['difference_ci95'][1]:+.3f}]"
            )
        lines.append(line)
    return lines
