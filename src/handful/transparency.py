"""The transparency score of a run: the O1 Replication Journey part 2 checklist (Huang et al.
2024, arXiv 2411.16489, Tables 3 and 4), scored from what the run recorded.

The 25 questions and their points are data (`data/transparency/checklist.json`); this module
holds one check per question, in the same order. A check finds its evidence in the manifest
and the run's files, or says what is missing. A question that cannot apply to the run (an RL
question for a run without RL) earns its points with the reason stated: the paper scored its
own SFT-only run 33 of 33 in methodology, so it counts such items the same way.

"Publicly available" is read as: in the run directory, with its checksum in the manifest, so
that publishing the directory publishes it; `release:` URLs in the recipe are shown beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from handful.files import read_json, write_json
from handful.manifest import MANIFEST

CHECKLIST = Path(__file__).resolve().parent / "data" / "transparency" / "checklist.json"
OUTPUT = "transparency.json"
MET, NOT_APPLICABLE, MISSING = "met", "not applicable", "missing"


def checklist() -> dict:
    return json.loads(CHECKLIST.read_text())


class Evidence:
    """What a run recorded, as the checks ask for it."""

    def __init__(self, out: Path):
        self.out = out
        path = out / MANIFEST
        if not path.exists():
            from handful.errors import ConfigError

            raise ConfigError(f"{out}: no {MANIFEST}; score a directory written by `handful run`")
        self.manifest = read_json(path, "manifest")
        self.stages = {s["name"]: s for s in self.manifest["stages"]}
        self.settings = self.manifest["recipe"]["settings"]

    def done(self, prefix: str) -> list[dict]:
        return [
            s
            for name, s in self.stages.items()
            if (name == prefix or name.startswith(prefix + "/")) and s.get("status") == "done"
        ]

    def has(self, kind: str) -> bool:
        return any(s["kind"] == kind for s in self.stages.values())

    def file(self, rel: str) -> dict | None:
        return self.manifest["files"].get(rel)

    def released(self, what: str) -> str:
        url = self.manifest.get("release", {}).get(what)
        return f"; published at {url}" if url else ""

    @property
    def trains(self) -> bool:
        return "train" in self.stages

    @property
    def evaluates(self) -> bool:
        return any(s["kind"] in ("eval", "scale") for s in self.stages.values())


Check = Callable[[Evidence], tuple[str, str]]  # (status, evidence or what is missing)


def _file_evidence(ev: Evidence, rel: str, what: str, release_key: str) -> tuple[str, str]:
    found = ev.file(rel)
    if not found:
        return MISSING, f"{rel} is not in the run directory"
    return MET, f"{what} in {rel} ({found['bytes']:,} bytes, sha256 {found['sha256'][:12]}){ev.released(release_key)}"


def data_sources(ev: Evidence) -> tuple[str, str]:
    data = ev.manifest["data"]
    entries = {**data["pools"], **data["benchmarks"]}
    if not entries:
        return MISSING, "no pool or benchmark is recorded"
    bare = [name for name, e in entries.items() if not e.get("source") or not e.get("license")]
    if bare:
        return MISSING, f"no source or license for {', '.join(bare)}"
    return (
        MET,
        f"{len(data['pools'])} pools and {len(data['benchmarks'])} benchmarks, each with source and license (manifest.data)",
    )


def data_characteristics(ev: Evidence) -> tuple[str, str]:
    if not (ev.has("curate") or ev.has("distill")):
        return NOT_APPLICABLE, "the run prepares no training data"
    found = [rel for rel in ("curate/funnel.json", "curate/selected.jsonl", "distill/stats.json") if ev.file(rel)]
    wanted = (["curate/funnel.json", "curate/selected.jsonl"] if ev.has("curate") else []) + (
        ["distill/stats.json"] if ev.has("distill") else []
    )
    missing = [w for w in wanted if w not in found]
    if missing:
        return MISSING, f"not written yet: {', '.join(missing)}"
    return (
        MET,
        "counts after every curation stage (funnel.json), each selected problem with its domain and difficulty evidence, trace length and correctness statistics (stats.json); records are typed JSONL",
    )


def data_selection(ev: Evidence) -> tuple[str, str]:
    if not ev.has("curate"):
        if ev.trains:
            return (
                MISSING,
                "the training problems were not selected by this run; add a curate stage or document their selection",
            )
        return NOT_APPLICABLE, "the run selects no data"
    if not (ev.file("curate/removed.jsonl") and ev.stages["curate"].get("config")):
        return MISSING, "the curate stage has not finished"
    return (
        MET,
        "every curation stage's settings (configs/curate.yaml) and every removed problem with its stage, reason and evidence (curate/removed.jsonl)",
    )


def synthetic_data(ev: Evidence) -> tuple[str, str]:
    if not ev.has("distill"):
        return NOT_APPLICABLE, "the run generates no synthetic data"
    cfg = ev.stages["distill"].get("config")
    if not cfg or not ev.file("distill/traces.jsonl"):
        return MISSING, "the distill stage has not finished"
    teacher = cfg["teacher"]
    prompts = [rel for rel in ev.manifest["files"] if rel.startswith("prompts/")]
    how = (
        "exact step-by-step traces written by handful's procedural generators"
        if teacher["engine"]["name"] == "program"
        else f"teacher {teacher['model']}"
    )
    return MET, (
        f"{how}; sampling {teacher['sampling']}; rejection sampling keep={cfg['keep']}, select={cfg['select']}; every trace graded in "
        f"distill/traces.jsonl; prompts and chat templates stored ({', '.join(prompts) or 'none'})"
    )


def base_model(ev: Evidence) -> tuple[str, str]:
    base = ev.manifest["models"].get("base", {})
    if not base.get("architecture") or not base.get("parameters"):
        return (
            MISSING,
            f"architecture and size of {base.get('name', 'the base model')} are not recorded (weights not on this machine)",
        )
    arch = base["architecture"]
    return MET, (
        f"{base['name']}: {arch.get('model_type')}, {arch.get('num_hidden_layers')} layers, hidden {arch.get('hidden_size')}, "
        f"{base['parameters']:,} parameters, weights sha256 in manifest.models.base"
    )


def inference(ev: Evidence) -> list[tuple[str, dict]]:
    """(stage name, eval settings) of every finished eval and scale stage."""
    return [
        (s["name"], s["config"]["eval"] if s["kind"] == "scale" else s["config"])
        for s in ev.done("eval") + ev.done("scale")
    ]


def search(ev: Evidence) -> tuple[str, str]:
    if not inference(ev):
        return NOT_APPLICABLE, "the run does no inference"
    described = [
        f"{name}: n={cfg['n']}, temperature {cfg['sampling']['temperature']}, budget forcing {({k: v for k, v in cfg['budget'].items() if v}) or 'off'}"
        for name, cfg in inference(ev)
    ]
    return (
        MET,
        "no tree search; test-time compute is decoding, budget forcing and majority voting, each run's settings recorded: "
        + "; ".join(described),
    )


def rl(ev: Evidence) -> tuple[str, str]:
    if not ev.has("grpo"):
        return NOT_APPLICABLE, "the run has no RL stage"
    cfg = ev.stages["train"].get("config") or {}
    knobs = (
        "beta",
        "loss_type",
        "epsilon",
        "num_generations",
        "temperature",
        "rewards",
        "max_completion_length",
        "scale_rewards",
    )
    absent = [k for k in knobs if k not in cfg]
    if absent:
        return MISSING, f"GRPO settings not recorded: {', '.join(absent)}"
    return MET, "GRPO through TRL with every knob explicit (" + ", ".join(
        f"{k}={cfg[k]}" for k in knobs
    ) + "); rewards from the shared grader"


def long_thought_workflow(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    missing = [
        name for name in ("curate", "distill") if name not in ev.stages and not (name == "distill" and ev.has("grpo"))
    ]
    if missing:
        return (
            MISSING,
            f"the training data did not come through this run's {' and '.join(missing)} stage: its workflow is not recorded",
        )
    return (
        MET,
        "pool -> curation stages (funnel, removals) -> teacher traces with rejection sampling -> fine-tuning set, each stage's settings and outputs recorded",
    )


def pipeline(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    order = " -> ".join(s["name"] for s in ev.manifest["stages"])
    return MET, f"stages in order with what each reads: {order} (manifest.stages)"


def compute(ev: Evidence) -> tuple[str, str]:
    m = ev.manifest["machine"]
    untimed = [s["name"] for s in ev.manifest["stages"] if s.get("status") == "done" and "seconds_spent" not in s]
    if untimed or not m.get("logical_cpus"):
        return MISSING, f"no timing for {', '.join(untimed)}" if untimed else "machine not recorded"
    spent = sum(s.get("seconds_spent", 0) for s in ev.manifest["stages"])
    return MET, (
        f"{m.get('cpu', m['processor'])}, {m['logical_cpus']} CPUs, {m.get('memory_gib')} GiB, GPUs: {m.get('gpus') or 'none'}; "
        f"{spent / 60:.1f} min over all stages, time and peak memory per stage"
    )


def hyperparameters(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    cfg = ev.stages["train"].get("config")
    if not cfg:
        return MISSING, "the train stage has not started"
    shown = (
        "lr",
        "scheduler",
        "warmup",
        "weight_decay",
        "adam_betas",
        "batch_size",
        "grad_accum",
        "epochs",
        "max_steps",
    )
    return MET, "configs/train.yaml: " + ", ".join(f"{k}={cfg.get(k)}" for k in shown) + " (and every other setting)"


def comparisons(ev: Evidence) -> list[str]:
    if "eval" not in ev.settings or not ev.settings["eval"]:
        return []
    found = []
    runs, models = list(ev.settings["eval"]["runs"]), ev.settings["eval"]["models"]
    if len(models) > 1:
        found += [f"{run}: {' vs '.join(models)}" for run in runs]
    if len(runs) > 1:
        found += [f"{' vs '.join(runs)} with {model}" for model in models]
    return found


def ablations(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    found = comparisons(ev)
    if not found:
        return (
            MISSING,
            "one configuration only: evaluate @base beside @train, or a second eval run (e.g. without budget forcing)",
        )
    return MET, "each compared on the same problems, the difference with a 95 % interval in the report: " + "; ".join(
        found
    )


def benchmark_choice(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    purpose = (ev.manifest["evaluation"].get("purpose") or "").strip()
    if len(purpose) < 20:
        return MISSING, "eval.purpose in the recipe does not say why these benchmarks"
    return MET, f"eval.purpose: {purpose}"


def evaluation_level(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    return MET, ev.manifest["evaluation"]["level"]


def _scores(ev: Evidence) -> list[dict]:
    found = []
    for s in ev.done("eval"):
        path = ev.out / s["name"] / "scores.json"
        if path.exists():
            found.append(read_json(path, "scores file"))
    return found


def metrics_defined(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    defined = ev.manifest["evaluation"]["metrics"]
    used = {
        k
        for scores in _scores(ev)
        for b in scores["benchmarks"].values()
        for k in b
        if k not in ("n_problems", "n_samples", "maj@k_ci95")
    }
    undefined = sorted(used - set(defined))
    if undefined:
        return MISSING, f"reported but not defined: {', '.join(undefined)}"
    return MET, "defined in manifest.evaluation.metrics: " + ", ".join(sorted(used))


def custom_metrics(ev: Evidence) -> tuple[str, str]:
    defined = ev.manifest["evaluation"]["metrics"]
    used = (
        ["transparency"]
        + (["difference"] if comparisons(ev) else [])
        + (["control", "scaling_slope"] if ev.has("scale") else [])
    )
    used += ["memorisation_gap"] if any(scores.get("memorisation") for scores in _scores(ev)) else []
    bare = [m for m in used if not defined.get(m, {}).get("why")]
    if bare:
        return MISSING, f"custom metrics without a justification: {', '.join(bare)}"
    return MET, "; ".join(f"{m}: {defined[m]['definition']} (why: {defined[m]['why']})" for m in used)


def _eval_groups(ev: Evidence) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for s in ev.done("eval"):
        groups.setdefault(s["name"].split("/")[1], []).append(s)
    return groups


def consistent(ev: Evidence) -> tuple[str, str]:
    groups = {run: stages for run, stages in _eval_groups(ev).items() if len(stages) > 1}
    if not groups:
        return (
            (NOT_APPLICABLE, "no baseline is compared")
            if ev.evaluates
            else (NOT_APPLICABLE, "the run evaluates nothing")
        )
    from handful.records import Generation, read_jsonl

    for run, stages in groups.items():
        settings = [{k: v for k, v in s["config"].items() if k != "model"} for s in stages]
        if any(x != settings[0] for x in settings[1:]):
            return MISSING, f"eval run {run}: its models were evaluated with different settings"
        problem_sets = [
            {(g.benchmark, g.problem_id) for g in read_jsonl(ev.out / s["name"] / "samples.jsonl", Generation)}
            for s in stages
        ]
        if any(x != problem_sets[0] for x in problem_sets[1:]):
            return MISSING, f"eval run {run}: its models saw different problems"
    return (
        MET,
        "within each eval run every model saw the same problems (checked sample by sample) with the same sampling, budget, grader and metrics: "
        + ", ".join(groups),
    )


def conditions(ev: Evidence) -> tuple[str, str]:
    if not inference(ev):
        return NOT_APPLICABLE, "the run evaluates nothing"
    return MET, "; ".join(
        f"{name}: temperature {cfg['sampling']['temperature']}, top_p {cfg['sampling']['top_p']}, max_tokens "
        f"{cfg['sampling']['max_tokens']}, seed {cfg['sampling']['seed']}, n {cfg['n']}"
        for name, cfg in inference(ev)
    )


def post_training_data(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    if ev.has("grpo"):
        return (
            _file_evidence(ev, "curate/selected.jsonl", "the RL problems", "data")
            if ev.has("curate")
            else (MISSING, "the RL problems are not in the run directory")
        )
    return _file_evidence(ev, "distill/sft.jsonl", "the fine-tuning set", "data")


def long_thought_data(ev: Evidence) -> tuple[str, str]:
    if not ev.has("distill"):
        return NOT_APPLICABLE, "the run distils no long-thought data"
    return _file_evidence(ev, "distill/traces.jsonl", "every teacher trace, graded", "traces")


def weights(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    trained = ev.manifest["models"].get("trained")
    if not trained or not trained.get("weights"):
        return MISSING, "no trained weights in the run directory yet"
    return MET, f"{trained['path']} (safetensors, sha256 in manifest.models.trained){ev.released('model')}"


def _code(ev: Evidence, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    src = ev.manifest["handful"]
    if src.get("git_dirty"):
        return (
            MISSING,
            f"handful's source had uncommitted changes when the run was made: the {what} code that ran is not a published revision",
        )
    commands = [" ".join(s["command"]) for s in ev.manifest["stages"] if s["kind"] in kinds and s.get("command")]
    revision = f"commit {src['git_commit'][:12]}" if src.get("git_commit") else "the released package"
    return MET, f"handful {src['handful']} ({revision}, Apache-2.0); commands: " + (" | ".join(commands) or "none")


def training_code(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    return _code(ev, ("curate", "distill", "sft", "grpo"), "training")


def evaluation_code(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    return _code(ev, ("eval", "scale"), "evaluation")


def guidance(ev: Evidence) -> tuple[str, str]:
    return _file_evidence(
        ev, "REPRODUCE.md", "step-by-step commands to install the same versions and rerun every stage", "code"
    )


def write_up(ev: Evidence) -> tuple[str, str]:
    if not (ev.out / "report.html").exists():
        return MISSING, "no report.html yet (handful report DIR)"
    return MET, (
        "report.html: data funnel, every stage's settings, results with intervals, comparisons, the transparency score and every sample"
        + ev.released("paper")
    )


# One check per checklist item, in the checklist's order.
CHECKS: list[Check] = [
    data_sources,
    data_characteristics,
    data_selection,
    synthetic_data,
    base_model,
    search,
    rl,
    long_thought_workflow,
    pipeline,
    compute,
    hyperparameters,
    ablations,
    benchmark_choice,
    evaluation_level,
    metrics_defined,
    custom_metrics,
    consistent,
    conditions,
    post_training_data,
    long_thought_data,
    weights,
    training_code,
    evaluation_code,
    guidance,
    write_up,
]


def score(out: str | Path) -> dict:
    out = Path(out)
    ev = Evidence(out)
    spec = checklist()
    if len(spec["items"]) != len(CHECKS):
        raise RuntimeError("the checklist and its checks are out of step")
    items, by_dimension = [], {d: 0 for d in spec["dimensions"]}
    for item, check in zip(spec["items"], CHECKS):
        status, evidence = check(ev)
        earned = item["points"] if status in (MET, NOT_APPLICABLE) else 0
        by_dimension[item["dimension"]] += earned
        items.append({**item, "check": check.__name__, "status": status, "earned": earned, "evidence": evidence})
    return {
        "total": sum(by_dimension.values()),
        "by_dimension": by_dimension,
        "maximum": spec["dimensions"],
        "items": items,
        "source": spec["source"],
        "published_scores": spec["published_scores"],
    }


def write(out: str | Path) -> dict:
    result = score(out)
    write_json(Path(out) / OUTPUT, result)
    return result
