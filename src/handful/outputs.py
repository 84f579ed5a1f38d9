"""What a handful output directory holds, read back as typed records: the one reader behind
the report and the transparency score.

A directory written by `handful run` is read through its manifest. The folder of a single
command (`handful eval`, `scale`, `curate`, `distill`, `train sft|grpo`) has no manifest: its
one stage is recognised by the files that command writes, and what only `handful run` records
(the machine, the models' checksums, the code's revision, the purpose of the evaluation) is
left out, so that the checks that need it say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from handful.errors import ConfigError
from handful.files import read_json
from handful.layout import HASHES, MANIFEST
from handful.manifest import HashCache, data_sources, evaluation_protocol, output_files
from handful.metrics import Score

# What each command leaves in its folder, in the order they are recognised (a distill folder
# holds an eval run of the teacher too, so it is recognised first).
SIGNS = {
    "distill": ("stats.json", "distill.json", "traces.jsonl"),
    "curate": ("funnel.json", "curate.json"),
    # A precision study's first point is always float32; any other folder of points is a sweep's.
    "precision": ("precision.json", "points/float32"),
    "study": ("study.json", "points/base"),
    "scale": ("curve.json", "points"),
    "train": ("train.json", "checkpoints"),
    "eval": ("run.json", "scores.json", "samples.jsonl"),
}

# Stages made of eval runs over the same problems, their settings under `eval`.
SWEEPS = ("scale", "precision", "study")


@dataclass
class StageView:
    """One stage as it was recorded: who it is, its settings, how far it got, and its scores."""

    name: str  # its folder under the run directory ("" for a single command's own folder)
    kind: str  # a key of handful.stages.STAGES
    folder: Path
    status: str  # done, started, not run
    config: dict | None
    run: str | None = None  # the eval run (eval stages of `handful run`)
    model: str | None = None  # the model's label (eval, scale and precision stages)
    command: list[str] = field(default_factory=list)
    seconds_spent: float | None = None
    scores: dict[str, Score] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def eval_settings(self) -> dict | None:
        """The eval settings of an eval stage, or of the points of a scale or precision stage."""
        if not self.config:
            return None
        return self.config["eval"] if self.kind in SWEEPS else self.config


@dataclass
class RunView:
    out: Path
    name: str
    description: str
    written_by: str  # "handful run", or the single command that wrote the folder
    manifest: dict  # manifest.json; for a single command, only the parts that can be known from its files
    stages: list[StageView]

    @property
    def standalone(self) -> bool:
        return self.written_by != "handful run"

    def stage(self, kind: str) -> StageView | None:
        """The first stage of a kind (`train` finds sft and grpo)."""
        return next((s for s in self.stages if s.kind == kind or (kind == "train" and s.kind in TRAINING)), None)

    def of(self, *kinds: str) -> list[StageView]:
        return [s for s in self.stages if s.kind in kinds]

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.out))

    def eval_runs(self) -> dict[str, list[StageView]]:
        """The finished eval stages of each eval run of `handful run`, in order: its models."""
        groups: dict[str, list[StageView]] = {}
        for s in self.of("eval"):
            if s.done and s.run is not None:
                groups.setdefault(s.run, []).append(s)
        return groups

    def file(self, kind: str, name: str) -> str | None:
        """The path, relative to the directory, of a stage's file, if the stage ran here."""
        stage = self.stage(kind)
        return self.relative(stage.folder / name) if stage else None


TRAINING = ("sft", "grpo")


def read(out: str | Path) -> RunView:
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out}: no such directory")
    if (out / MANIFEST).exists():
        return _from_manifest(out, read_json(out / MANIFEST, "manifest"))
    return _from_folder(out)


def _scores(entries: dict | None, where: str) -> dict[str, Score]:
    try:
        return {name: Score.model_validate(s) for name, s in (entries or {}).items()}
    except ValueError as e:
        raise ConfigError(f"{where}: a score is damaged: {e}") from None


def _from_manifest(out: Path, manifest: dict) -> RunView:
    stages = []
    for s in manifest["stages"]:
        parts = s["name"].split("/")  # directories written before stages recorded their run and model
        stages.append(
            StageView(
                name=s["name"],
                kind=s["kind"],
                folder=out / s["name"],
                status=s.get("status", "not run"),
                config=s.get("config"),
                run=s.get("run") or (parts[1] if s["kind"] == "eval" and len(parts) == 3 else None),
                model=s.get("model") or (parts[-1] if s["kind"] in ("eval", *SWEEPS) and len(parts) > 1 else None),
                command=s.get("command", []),
                seconds_spent=s.get("seconds_spent"),
                scores=_scores(s.get("scores"), f"{out / MANIFEST} stage {s['name']}"),
            )
        )
    return RunView(out, manifest["run"], manifest.get("description") or "", "handful run", manifest, stages)


def _kind(out: Path) -> str:
    for kind, names in SIGNS.items():
        if any((out / name).exists() for name in names) or (kind == "train" and any(out.glob("stage-*/train.json"))):
            return kind
    raise ConfigError(
        f"{out}: nothing handful wrote is here (no {MANIFEST}, and none of "
        + ", ".join(sorted({n for names in SIGNS.values() for n in names}))
        + "); give a directory written by `handful run` or by one of its commands"
    )


def _json(path: Path, what: str) -> dict | None:
    return read_json(path, what) if path.exists() else None


def training_record(folder: Path) -> dict | None:
    """A training folder's train.json: its own, or that of its last context stage (GRPO schedules)."""
    stages = sorted(folder.glob("stage-*/train.json"))
    return _json(folder / "train.json", "training record") or (
        read_json(stages[-1], "training record") if stages else None
    )


def _from_folder(out: Path) -> RunView:
    kind = _kind(out)
    config, scores, status, versions = None, {}, "started", {}
    specs: list[str] = []
    pools: list[str] = []
    if kind == "eval":
        run = _json(out / "run.json", "run settings file") or {}
        config, versions = run.get("config"), run.get("versions", {})
        found = _json(out / "scores.json", "scores file")
        if found:
            scores, status = _scores(found.get("benchmarks"), str(out / "scores.json")), "done"
        specs = (config or {}).get("benchmarks", [])
    elif kind in SWEEPS:
        result = _json(out / SIGNS[kind][0], f"{kind} results")
        config, status = (result or {}).get("config"), "done" if result else "started"
        specs = ((config or {}).get("eval") or {}).get("benchmarks", [])
    elif kind == "curate":
        config = _json(out / "curate.json", "curation settings file")
        status = "done" if (out / "funnel.json").exists() else "started"
        pools = (config or {}).get("pools", [])
    elif kind == "distill":
        asked = _json(out / "distill.json", "distill settings file") or {}
        teacher = (_json(out / "run.json", "run settings file") or {}).get("config")
        config = {**asked, "teacher": teacher} if teacher else asked or None
        status = "done" if (out / "stats.json").exists() else "started"
        pools = [asked["problems"]] if asked.get("problems") else []
    else:
        record = training_record(out)
        config = (record or {}).get("recipe")
        kind = "grpo" if config and "num_generations" in config else "sft"
        status = "done" if record else "started"
        versions = (record or {}).get("versions", {})
    sha = HashCache(out / HASHES)  # read, never written here
    command = {"eval": "handful eval", "sft": "handful train sft", "grpo": "handful train grpo"}.get(
        kind, f"handful {kind}"
    )
    manifest = {
        "run": out.resolve().name,
        "description": f"the folder of `{command}`",
        "packages": versions,
        "handful": {"handful": versions["handful"]} if "handful" in versions else {},
        "stages": [],
        "data": data_sources(pools, specs, [], sha),
        "evaluation": evaluation_protocol(None),
        "files": output_files(out, sha),
        "models": {},
        "machine": {},
        "release": {},
        "recipe": {"settings": {}},
    }
    model = ((config or {}).get("eval") or config or {}).get("model") if kind in ("eval", *SWEEPS) else None
    stage = StageView(name="", kind=kind, folder=out, status=status, config=config, model=model, scores=scores)
    return RunView(out, manifest["run"], manifest["description"], command, manifest, [stage])
