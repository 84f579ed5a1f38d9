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
from handful.layout import REPORT, REPRODUCE, TRANSPARENCY
from handful.outputs import SWEEPS, RunView, StageView, read

CHECKLIST = Path(__file__).resolve().parent / "data" / "transparency" / "checklist.json"
MET, NOT_APPLICABLE, MISSING, PARTIAL = "met", "not applicable", "missing", "partly met"


def checklist() -> dict:
    return json.loads(CHECKLIST.read_text())


class Evidence:
    """What a run recorded, as the checks ask for it."""

    def __init__(self, view: RunView, report_written: bool = False):
        self.view, self.out, self.manifest = view, view.out, view.manifest
        self.settings = self.manifest["recipe"]["settings"]
        self.report_written = report_written

    def done(self, *kinds: str) -> list[StageView]:
        return [s for s in self.view.of(*kinds) if s.done]

    def has(self, kind: str) -> bool:
        return bool(self.view.of(kind))

    def stage(self, kind: str) -> StageView | None:
        return self.view.stage(kind)

    def file(self, kind: str, name: str) -> dict | None:
        """A stage's file as the manifest lists it (bytes, sha256), if it is there."""
        return self.manifest["files"].get(self.where(kind, name))

    def where(self, kind: str, name: str) -> str:
        """A stage's file: in its folder, or where `handful run` would put it if the stage is not in the run."""
        return self.view.file(kind, name) or (name if self.view.standalone else f"{kind}/{name}")

    def released(self, what: str) -> str:
        url = self.manifest.get("release", {}).get(what)
        return f"; published at {url}" if url else ""

    def unrecorded(self, what: str) -> str:
        """Why a single command's folder cannot show what `handful run` records."""
        return (
            f"{what} is not recorded: `{self.view.written_by}` does not record it; `handful run` does (manifest.json)"
        )

    @property
    def trains(self) -> bool:
        return self.view.stage("train") is not None

    @property
    def evaluates(self) -> bool:
        return bool(self.view.of("eval", *SWEEPS))


# (status, evidence or what is missing), and for a partly met item the share of its points earned.
Check = Callable[[Evidence], tuple[str, str] | tuple[str, str, float]]


def _file_evidence(ev: Evidence, kind: str, name: str, what: str, release_key: str) -> tuple[str, str]:
    found = ev.file(kind, name)
    if not found:
        return MISSING, f"{what} ({name}) is not in the directory"
    return (
        MET,
        f"{what} in {ev.where(kind, name)} ({found['bytes']:,} bytes, sha256 {found['sha256'][:12]}){ev.released(release_key)}",
    )


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
    wanted = ([("curate", "funnel.json"), ("curate", "selected.jsonl")] if ev.has("curate") else []) + (
        [("distill", "stats.json")] if ev.has("distill") else []
    )
    missing = [name for kind, name in wanted if not ev.file(kind, name)]
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
    if not (ev.file("curate", "removed.jsonl") and ev.stage("curate").config):
        return MISSING, "the curate stage has not finished"
    return (
        MET,
        (
            "every curation stage's settings and every removed problem with its stage, reason and evidence "
            f"({ev.where('curate', 'removed.jsonl')})"
        ),
    )


def synthetic_data(ev: Evidence) -> tuple[str, str]:
    if not ev.has("distill"):
        return NOT_APPLICABLE, "the run generates no synthetic data"
    cfg = ev.stage("distill").config
    if not cfg or not cfg.get("teacher") or not ev.file("distill", "traces.jsonl"):
        return MISSING, "the distill stage has not finished"
    teacher = cfg["teacher"]
    prompts = [rel for rel in ev.manifest["files"] if rel.startswith("prompts/")]
    how = (
        "exact step-by-step traces written by handful's procedural generators"
        if teacher["engine"]["name"] == "program"
        else f"teacher {teacher['model']}"
    )
    return MET, (
        f"{how}; sampling {teacher['sampling']}; rejection sampling keep={cfg.get('keep', 'not recorded')}, "
        f"select={cfg.get('select', 'not recorded')}; every trace graded in {ev.where('distill', 'traces.jsonl')}; prompts and chat templates stored ({', '.join(prompts) or 'none'})"
    )


def base_model(ev: Evidence) -> tuple[str, str]:
    base = ev.manifest["models"].get("base", {})
    if ev.view.standalone:
        return MISSING, ev.unrecorded("the base model's architecture, size and weight checksums")
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
    return [(s.name or s.kind, s.eval_settings) for s in ev.done("eval", *SWEEPS) if s.eval_settings]


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
    cfg = ev.stage("train").config or {}
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
        name for name in ("curate", "distill") if not ev.has(name) and not (name == "distill" and ev.has("grpo"))
    ]
    if missing:
        return (
            MISSING,
            f"the training data did not come through this run's {' and '.join(missing)} stage: its workflow is not recorded",
        )
    # A stage that is named but never finished records no workflow.
    unfinished = [name for name in ("curate", "distill") if ev.has(name) and not ev.done(name)]
    if unfinished:
        return MISSING, f"the {' and '.join(unfinished)} stage has not finished: its outputs are not all recorded"
    return (
        MET,
        "pool -> curation stages (funnel, removals) -> teacher traces with rejection sampling -> fine-tuning set, each stage's settings and outputs recorded",
    )


def pipeline(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    if ev.view.standalone:
        return MISSING, ev.unrecorded("the pipeline from data to model")
    order = " -> ".join(s.name for s in ev.view.stages)
    return MET, f"stages in order with what each reads: {order} (manifest.stages)"


def compute(ev: Evidence) -> tuple[str, str]:
    m = ev.manifest["machine"]
    if ev.view.standalone:
        return MISSING, ev.unrecorded("the machine and the time each stage took")
    untimed = [s.name for s in ev.view.stages if s.done and s.seconds_spent is None]
    if untimed or not m.get("logical_cpus"):
        return MISSING, f"no timing for {', '.join(untimed)}" if untimed else "machine not recorded"
    spent = sum(s.seconds_spent or 0 for s in ev.view.stages)
    return MET, (
        f"{m.get('cpu', m['processor'])}, {m['logical_cpus']} CPUs, {m.get('memory_gib')} GiB, GPUs: {m.get('gpus') or 'none'}; "
        f"{spent / 60:.1f} min over all stages, time and peak memory per stage"
    )


def hyperparameters(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    cfg = ev.stage("train").config
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
    return MET, "the train stage's settings: " + ", ".join(
        f"{k}={cfg.get(k)}" for k in shown
    ) + " (and every other setting)"


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


def _budgeted(cfg: dict) -> bool:
    from handful.records import Budget

    return Budget.model_validate(cfg.get("budget", {})).active


def _studies(ev: Evidence) -> list[tuple[StageView, dict]]:
    """Every finished study with its curve (study.json)."""
    from handful.study import STUDY_FILE

    return [
        (s, read_json(s.folder / STUDY_FILE, "study")) for s in ev.done("study") if (s.folder / STUDY_FILE).exists()
    ]


def _same_problems(folders: list[Path]) -> bool:
    """Whether the samples in every folder are of the same problems (checked sample by sample)."""
    from handful.records import Generation, read_jsonl

    sets = [{(g.benchmark, g.problem_id) for g in read_jsonl(f / "samples.jsonl", Generation)} for f in folders]
    return all(x == sets[0] for x in sets[1:])


def _training_ablated(ev: Evidence) -> str | None:
    for run, stages in ev.view.eval_runs().items():
        models = {s.model for s in stages}
        if "base" in models and "trained" in models:
            return f"training: eval run {run}, base against trained on the same problems"
    return None


def _budget_ablated(ev: Evidence) -> str | None:
    for s in ev.done("scale"):
        if s.config and (s.folder / "curve.json").exists():
            points = {p["point"] for p in read_json(s.folder / "curve.json", "curve")["points"]}
            if len(points) > 1:
                return f"test-time budget: {s.name or s.kind}, {len(points)} budgets on the same problems"
    runs = {run: stages[0].config for run, stages in ev.view.eval_runs().items() if stages[0].config}
    with_budget = [r for r, cfg in runs.items() if _budgeted(cfg)]
    without = [r for r, cfg in runs.items() if not _budgeted(cfg)]
    for a in with_budget:
        for b in without:
            shared = sorted(set(runs[a]["benchmarks"]) & set(runs[b]["benchmarks"]))
            if shared:
                return (
                    f"test-time budget: eval runs {b} and {a}, without and with budget forcing on {', '.join(shared)}"
                )
    return None


def _data_ablated(study: dict | None) -> str | None:
    sizes = sorted({p["size"] for p in (study or {}).get("points", []) if p["selection"] in ("base", "curated")})
    if len(sizes) >= 3:
        return f"data size: {', '.join(map(str, sizes))} training examples (handful study)"
    return None


def _curation_ablated(study: dict | None) -> str | None:
    sizes = sorted({p["size"] for p in (study or {}).get("points", []) if p.get("against_curated")})
    if sizes:
        return f"curation: curated against random picks at {', '.join(map(str, sizes))} examples (handful study)"
    return None


def ablations(ev: Evidence) -> tuple[str, str] | tuple[str, str, float]:
    """Points for each component the run has that it also ablates: training (before against
    after), the test-time budget (with against without, or a sweep), data size (a curve of at
    least three sizes) and curation (against random picks of the same size). Two eval runs
    alone are no ablation of a component that was never varied."""
    study = next((result for _, result in _studies(ev)), None)
    components = {}
    if ev.trains:
        components["training"] = _training_ablated(ev)
        components["data size"] = _data_ablated(study)
        if ev.has("curate"):
            components["curation"] = _curation_ablated(study)
    if any(_budgeted(cfg) for _, cfg in inference(ev)) or ev.has("scale"):
        components["test-time budget"] = _budget_ablated(ev)
    if not components:
        return NOT_APPLICABLE, "the run has no component to ablate: it trains nothing and uses no test-time budget"
    done = [found for found in components.values() if found]
    missing = [name for name, found in components.items() if not found]
    hints = {
        "training": "evaluate @base beside @train in one eval run",
        "data size": "a study: section with at least three sizes (handful study --sizes)",
        "curation": "study.random: the same sizes drawn at random from the pool",
        "test-time budget": "the same benchmarks with and without the budget, or a scale sweep",
    }
    text = "; ".join(done) + ("; " if done and missing else "")
    text += "; ".join(f"not ablated: {name} ({hints[name]})" for name in missing)
    if not missing:
        return MET, "each paired on the same problems, with its interval in the report: " + text
    return (PARTIAL if done else MISSING), text, len(done) / len(components)


def benchmark_choice(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    purpose = (ev.manifest["evaluation"].get("purpose") or "").strip()
    if ev.view.standalone:
        return MISSING, ev.unrecorded("why these benchmarks (a recipe's eval.purpose)")
    if len(purpose) < 20:
        return MISSING, "eval.purpose in the recipe does not say why these benchmarks"
    return MET, f"eval.purpose: {purpose}"


def evaluation_level(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    return MET, ev.manifest["evaluation"]["level"]


def _reported(ev: Evidence) -> list[dict]:
    """Every finished eval stage's scores.json as written: the checks look for any key in it,
    which a typed read would drop."""
    files = [s.folder / "scores.json" for s in ev.done("eval")]
    return [read_json(path, "scores file") for path in files if path.exists()]


def metrics_defined(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    defined = ev.manifest["evaluation"]["metrics"]
    used = {
        k
        for scores in _reported(ev)
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
    reported = _reported(ev)
    keys = {k for scores in reported for b in scores["benchmarks"].values() for k in b}
    used += [m for m in ("truncated", "unclosed_thinking", "variance_between", "variance_within") if m in keys]
    used += ["memorisation_gap"] if any(scores.get("memorisation") for scores in reported) else []
    bare = [m for m in used if not defined.get(m, {}).get("why")]
    if bare:
        return MISSING, f"custom metrics without a justification: {', '.join(bare)}"
    return MET, "; ".join(f"{m}: {defined[m]['definition']} (why: {defined[m]['why']})" for m in used)


def consistent(ev: Evidence) -> tuple[str, str]:
    groups = {run: stages for run, stages in ev.view.eval_runs().items() if len(stages) > 1}
    # A study's points are compared with one another as pairs too: those its curve holds.
    points = {
        f"{s.name or s.kind} points": [
            s.folder / "points" / name / "eval" for name in dict.fromkeys(p["point"] for p in result["points"])
        ]
        for s, result in _studies(ev)
    }
    if not groups and not points:
        return (
            (NOT_APPLICABLE, "no baseline is compared")
            if ev.evaluates
            else (NOT_APPLICABLE, "the run evaluates nothing")
        )
    for run, stages in groups.items():
        settings = [{k: v for k, v in s.config.items() if k != "model"} for s in stages]
        if any(x != settings[0] for x in settings[1:]):
            return MISSING, f"eval run {run}: its models were evaluated with different settings"
        if not _same_problems([s.folder for s in stages]):
            return MISSING, f"eval run {run}: its models saw different problems"
    for name, folders in points.items():
        if not _same_problems([f for f in folders if (f / "samples.jsonl").exists()]):
            return MISSING, f"{name}: its points saw different problems"
    return (
        MET,
        "every model compared saw the same problems (checked sample by sample) with the same sampling, budget, grader and metrics: "
        + ", ".join([*groups, *points]),
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
            _file_evidence(ev, "curate", "selected.jsonl", "the RL problems", "data")
            if ev.has("curate")
            else (MISSING, "the RL problems are not in the directory")
        )
    return _file_evidence(ev, "distill", "sft.jsonl", "the fine-tuning set", "data")


def long_thought_data(ev: Evidence) -> tuple[str, str]:
    if not ev.has("distill"):
        return NOT_APPLICABLE, "the run distils no long-thought data"
    return _file_evidence(ev, "distill", "traces.jsonl", "every teacher trace, graded", "traces")


def weights(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    trained = ev.manifest["models"].get("trained")
    if ev.view.standalone:
        found = {rel: f for rel, f in ev.manifest["files"].items() if rel.endswith(".safetensors")}
        if not found:
            return MISSING, "no trained weights in the directory yet"
        return MET, "; ".join(f"{rel} (sha256 {f['sha256'][:12]})" for rel, f in found.items())
    if not trained or not trained.get("weights"):
        return MISSING, "no trained weights in the run directory yet"
    return MET, f"{trained['path']} (safetensors, sha256 in manifest.models.trained){ev.released('model')}"


def _code(ev: Evidence, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    src = ev.manifest["handful"]
    if ev.view.standalone:
        return MISSING, ev.unrecorded(f"the revision of the {what} code that ran")
    if src.get("git_dirty"):
        return (
            MISSING,
            f"handful's source had uncommitted changes when the run was made: the {what} code that ran is not a published revision",
        )
    commands = [" ".join(s.command) for s in ev.view.of(*kinds) if s.command]
    revision = f"commit {src['git_commit'][:12]}" if src.get("git_commit") else "the released package"
    return MET, f"handful {src['handful']} ({revision}, Apache-2.0); commands: " + (" | ".join(commands) or "none")


def training_code(ev: Evidence) -> tuple[str, str]:
    if not ev.trains:
        return NOT_APPLICABLE, "the run trains nothing"
    return _code(ev, ("curate", "distill", "sft", "grpo"), "training")


def evaluation_code(ev: Evidence) -> tuple[str, str]:
    if not ev.evaluates:
        return NOT_APPLICABLE, "the run evaluates nothing"
    return _code(ev, ("eval", *SWEEPS), "evaluation")


def guidance(ev: Evidence) -> tuple[str, str]:
    found = ev.manifest["files"].get(REPRODUCE)
    if not found:
        return MISSING, f"no {REPRODUCE}: " + (
            ev.unrecorded("how to rerun it") if ev.view.standalone else "it is written when the run finishes"
        )
    return MET, (
        f"step-by-step commands to install the same versions and rerun every stage in {REPRODUCE} "
        f"(sha256 {found['sha256'][:12]}){ev.released('code')}"
    )


def write_up(ev: Evidence) -> tuple[str, str]:
    if not (ev.report_written or (ev.out / REPORT).exists()):
        return MISSING, f"no {REPORT} yet (handful report DIR)"
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


def score(run: str | Path | RunView, report_written: bool = False) -> dict:
    """The checklist scored from what the directory holds. `report_written`: score it as the
    report about to be written will show it (the report counts as written)."""
    view = run if isinstance(run, RunView) else read(run)
    ev = Evidence(view, report_written)
    spec = checklist()
    if len(spec["items"]) != len(CHECKS):
        raise RuntimeError("the checklist and its checks are out of step")
    items, by_dimension = [], {d: 0 for d in spec["dimensions"]}
    for item, check in zip(spec["items"], CHECKS):
        status, evidence, *share = check(ev)
        earned = item["points"] if status in (MET, NOT_APPLICABLE) else round(item["points"] * share[0]) if share else 0
        by_dimension[item["dimension"]] += earned
        items.append({**item, "check": check.__name__, "status": status, "earned": earned, "evidence": evidence})
    return {
        "run": view.name,
        "written_by": view.written_by,
        "total": sum(by_dimension.values()),
        "by_dimension": by_dimension,
        "maximum": spec["dimensions"],
        "items": items,
        "source": spec["source"],
        "published_scores": spec["published_scores"],
    }


def write(out: str | Path) -> dict:
    result = score(out)
    write_json(Path(out) / TRANSPARENCY, result)
    return result
