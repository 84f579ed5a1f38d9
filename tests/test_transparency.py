"""The transparency checklist item by item, on run directories built by hand: a complete SFT
run scores 100, and taking away one piece of evidence costs exactly the items that read it.
Running the recipe would take minutes; the checks only read the manifest and a few files."""

import copy
import json
from pathlib import Path

import pytest

from handful import transparency
from handful.records import Generation, write_jsonl

POINTS = {
    check.__name__: item["points"]
    for check, item in zip(transparency.CHECKS, json.loads(transparency.CHECKLIST.read_text())["items"])
}
SHA = "ab" * 32
EVAL = {
    "n": 1,
    "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8, "seed": 0},
    "budget": {"min_thinking_tokens": 0, "max_thinking_tokens": None, "max_waits": 0},
}
GRPO_KNOBS = {
    "beta": 0.0,
    "loss_type": "dr_grpo",
    "epsilon": 0.2,
    "num_generations": 4,
    "temperature": 1.0,
    "rewards": ["accuracy"],
    "max_completion_length": 64,
    "scale_rewards": False,
}


def stage(name, kind, config):
    return {
        "name": name,
        "kind": kind,
        "status": "done",
        "seconds_spent": 1.5,
        "command": ["handful", kind],
        "config": config,
    }


def complete_manifest() -> dict:
    """Everything a curate -> distill -> sft -> eval (base and trained) -> study run records."""
    teacher = {"model": "tiny", "engine": {"name": "program"}, "sampling": {"temperature": 0.0}}
    files = ["curate/funnel.json", "curate/selected.jsonl", "curate/removed.jsonl", "distill/stats.json"]
    files += ["distill/traces.jsonl", "distill/sft.jsonl", "REPRODUCE.md", "prompts/base.json"]
    metric = {"definition": "defined", "why": "justified"}
    return {
        "run": "by-hand",
        "handful": {"handful": "0.1.0", "git_commit": "c" * 40, "git_dirty": False},
        "machine": {"processor": "x86_64", "logical_cpus": 2, "memory_gib": 4.0, "gpus": []},
        "recipe": {"settings": {"eval": {"models": ["@base", "@train"], "runs": {"plain": {}}}}},
        "stages": [
            stage("curate", "curate", {"target": 2}),
            stage("distill", "distill", {"teacher": teacher, "keep": "correct", "select": "shortest"}),
            stage("train", "sft", {"lr": 1e-5, "epochs": 1}),
            stage("eval/plain/base", "eval", {**EVAL, "model": "tiny"}),
            stage("eval/plain/trained", "eval", {**EVAL, "model": "train/model"}),
            stage("study", "study", {"eval": {**EVAL, "model": "tiny"}, "sizes": [2, 4], "random": [2]}),
        ],
        "data": {
            "pools": {"dyn:addition?n=4&seed=1": {"source": "procedural generator", "license": "Apache-2.0"}},
            "benchmarks": {"dyn:addition?n=2&seed=3": {"source": "procedural generator", "license": "Apache-2.0"}},
        },
        "models": {
            "base": {
                "name": "tiny",
                "architecture": {"model_type": "llama", "num_hidden_layers": 2},
                "parameters": 1000,
            },
            "trained": {"path": "train/model", "weights": {"model.safetensors": SHA}},
        },
        "evaluation": {
            "level": "answer",
            "purpose": "fresh problems of the trained skill, the same for both models",
            "metrics": {name: metric for name in ("accuracy", "ci95", "pass@k", "maj@k", "transparency", "difference")},
        },
        "release": {},
        "files": {rel: {"bytes": 10, "sha256": SHA} for rel in files},
    }


def write_run(
    out: Path,
    manifest: dict,
    problems=("p1", "p2"),
    trained_problems=None,
    extra_metric=None,
    study_sizes=(2, 4),
    study_problems=None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "report.html").write_text("<!DOCTYPE html>")
    for model, ids in (("base", problems), ("trained", trained_problems or problems)):
        folder = out / "eval" / "plain" / model
        scores = {
            "n_problems": len(ids),
            "n_samples": len(ids),
            "accuracy": 0.5,
            "ci95": [0, 1],
            "pass@k": {},
            "maj@k": {},
        }
        if extra_metric:
            scores[extra_metric] = 1.0
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "scores.json").write_text(json.dumps({"benchmarks": {"dyn:addition": scores}, "memorisation": []}))
        write_jsonl(
            folder / "samples.jsonl",
            [Generation(problem_id=i, benchmark="dyn:addition", model=model, text="4") for i in ids],
        )
    if any(s["name"] == "study" for s in manifest["stages"]):
        write_study(out / "study", problems, study_sizes, study_problems)
    return out


def write_study(folder: Path, problems, sizes, other=None) -> None:
    """A study's points: the untrained model, curated sets of each size, random picks at the
    smallest (evaluated on `other` problems if given)."""
    named = [
        ("base", "base", 0),
        *((f"curated-{n}", "curated", n) for n in sizes),
        (f"random-{sizes[0]}", "random", sizes[0]),
    ]
    points = []
    for name, selection, size in named:
        against = {"problems": len(problems), "baseline": f"curated-{size}"} if selection == "random" else None
        points.append(
            {
                "point": name,
                "selection": selection,
                "size": size,
                "benchmark": "dyn:addition",
                "against_curated": against,
            }
        )
        write_jsonl(
            folder / "points" / name / "eval" / "samples.jsonl",
            [
                Generation(problem_id=i, benchmark="dyn:addition", model=name, text="4")
                for i in (other if other and selection == "random" else problems)
            ],
        )
    (folder / "study.json").write_text(json.dumps({"points": points, "config": {}}))


def missing(result: dict) -> set[str]:
    return {i["check"] for i in result["items"] if i["status"] == transparency.MISSING}


def test_a_complete_run_meets_every_item(tmp_path):
    result = transparency.score(write_run(tmp_path, complete_manifest()))
    statuses = {i["check"]: i["status"] for i in result["items"]}
    assert statuses == {name: ("not applicable" if name == "rl" else "met") for name in POINTS}
    assert result["total"] == 100 and sum(POINTS.values()) == 100


def _without_file(rel):
    def change(m, run):
        del m["files"][rel]

    return change


def _set(path, value):
    def change(m, run):
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _drop_stage(name):
    def change(m, run):
        m["stages"] = [s for s in m["stages"] if s["name"] != name]

    return change


def _grpo(config):
    def change(m, run):
        train = next(s for s in m["stages"] if s["name"] == "train")
        train.update(kind="grpo", config=config)

    return change


def _drop_curate_and_grpo(m, run):
    _grpo(GRPO_KNOBS)(m, run)
    _drop_stage("curate")(m, run)


# (what is taken away, how, the items that must then be missing and score 0)
CASES = [
    ("no data recorded", _set(["data"], {"pools": {}, "benchmarks": {}}), {"data_sources"}),
    ("a pool without a license", _set(["data", "pools", "dyn:addition?n=4&seed=1", "license"], ""), {"data_sources"}),
    ("no funnel", _without_file("curate/funnel.json"), {"data_characteristics"}),
    ("no trace statistics", _without_file("distill/stats.json"), {"data_characteristics"}),
    ("no removals", _without_file("curate/removed.jsonl"), {"data_selection"}),
    ("curate settings not recorded", _set(["stages", 0, "config"], None), {"data_selection"}),
    ("distill never finished", _set(["stages", 1, "status"], "started"), {"long_thought_workflow"}),
    ("training data not selected by the run", _drop_stage("curate"), {"data_selection", "long_thought_workflow"}),
    ("distill settings not recorded", _set(["stages", 1, "config"], None), {"synthetic_data"}),
    ("no traces", _without_file("distill/traces.jsonl"), {"synthetic_data", "long_thought_data"}),
    ("base model architecture unknown", _set(["models", "base", "architecture"], None), {"base_model"}),
    ("base model size unknown", _set(["models", "base", "parameters"], None), {"base_model"}),
    ("GRPO knobs not recorded", _grpo({"lr": 1e-6}), {"rl"}),
    ("training data not distilled by the run", _drop_stage("distill"), {"long_thought_workflow"}),
    ("a finished stage without its time", lambda m, run: m["stages"][2].pop("seconds_spent"), {"compute"}),
    ("machine not recorded", _set(["machine", "logical_cpus"], None), {"compute"}),
    ("train settings not recorded", _set(["stages", 2, "config"], None), {"hyperparameters"}),
    (
        "no ablation at all",
        lambda m, run: (_drop_stage("study")(m, run), _drop_stage("eval/plain/base")(m, run)),
        {"ablations"},
    ),
    ("study points on other problems", lambda m, run: run.update(study_problems=("p1", "p3")), {"consistent"}),
    ("no reason for the benchmarks", _set(["evaluation", "purpose"], "because"), {"benchmark_choice"}),
    ("a reported metric not defined", lambda m, run: run.update(extra_metric="mystery"), {"metrics_defined"}),
    (
        "a custom metric not justified",
        _set(["evaluation", "metrics", "transparency"], {"definition": "d"}),
        {"custom_metrics"},
    ),
    ("models evaluated with other settings", _set(["stages", 4, "config", "n"], 4), {"consistent"}),
    ("models evaluated on other problems", lambda m, run: run.update(trained_problems=("p1", "p3")), {"consistent"}),
    ("no fine-tuning set", _without_file("distill/sft.jsonl"), {"post_training_data"}),
    (
        "RL problems not in the run",
        _drop_curate_and_grpo,
        {"post_training_data", "data_selection", "long_thought_workflow"},
    ),
    ("no trained weights", lambda m, run: m["models"].pop("trained"), {"weights"}),
    ("uncommitted source", _set(["handful", "git_dirty"], True), {"training_code", "evaluation_code"}),
    ("no REPRODUCE.md", _without_file("REPRODUCE.md"), {"guidance"}),
]


# (what is taken away, how, the ablation points left of 4, the component then named as not ablated)
PARTIAL = [
    ("no study", _drop_stage("study"), 1, "data size"),
    ("a curve of two sizes", lambda m, run: run.update(study_sizes=(4,)), 3, "data size"),
    ("no base model evaluated", _drop_stage("eval/plain/base"), 3, "training"),
    ("a budget never varied", _set(["stages", 4, "config", "budget", "max_thinking_tokens"], 8), 3, "test-time budget"),
]


@pytest.mark.parametrize("change,earned,named", [c[1:] for c in PARTIAL], ids=[c[0] for c in PARTIAL])
def test_ablations_earn_points_for_each_component_ablated(tmp_path, change, earned, named):
    manifest, run = copy.deepcopy(complete_manifest()), {}
    change(manifest, run)
    result = transparency.score(write_run(tmp_path, manifest, **run))
    item = next(i for i in result["items"] if i["check"] == "ablations")
    assert item["status"] == transparency.PARTIAL and item["earned"] == earned, item
    assert f"not ablated: {named}" in item["evidence"]


@pytest.mark.parametrize("change,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_missing_evidence_costs_exactly_its_items(tmp_path, change, expected):
    manifest, run = copy.deepcopy(complete_manifest()), {}
    change(manifest, run)
    result = transparency.score(write_run(tmp_path, manifest, **run))
    assert missing(result) == expected, [
        (i["check"], i["evidence"]) for i in result["items"] if i["status"] == "missing"
    ]
    assert all(i["earned"] == 0 for i in result["items"] if i["check"] in expected)
    assert result["total"] == 100 - sum(POINTS[name] for name in expected)


def test_no_report_is_a_missing_write_up(tmp_path):
    out = write_run(tmp_path, complete_manifest())
    (out / "report.html").unlink()
    result = transparency.score(out)
    assert missing(result) == {"write_up"} and result["total"] == 100 - POINTS["write_up"]


def test_grpo_with_every_knob_recorded_meets_the_rl_item(tmp_path):
    manifest = complete_manifest()
    _grpo(GRPO_KNOBS)(manifest, {})
    result = transparency.score(write_run(tmp_path, manifest))
    rl = next(i for i in result["items"] if i["check"] == "rl")
    assert rl["status"] == "met" and rl["earned"] == POINTS["rl"] and "loss_type=dr_grpo" in rl["evidence"]
    assert result["total"] == 100


def test_items_that_cannot_apply_earn_their_points_with_the_reason(tmp_path):
    # A curate-only run: no training, no inference. search, pipeline, evaluation_level and
    # conditions have no missing branch: what they ask for is recorded by every run that does it.
    manifest = complete_manifest()
    manifest["stages"] = manifest["stages"][:1]
    manifest["recipe"]["settings"] = {}
    manifest["models"] = {"base": manifest["models"]["base"]}
    result = transparency.score(write_run(tmp_path, manifest))
    statuses = {i["check"]: i["status"] for i in result["items"]}
    not_applicable = {
        "synthetic_data", "search", "rl", "long_thought_workflow", "pipeline", "hyperparameters", "ablations",
        "benchmark_choice", "evaluation_level", "metrics_defined", "consistent", "conditions", "post_training_data",
        "long_thought_data", "weights", "training_code", "evaluation_code",
    }  # fmt: skip
    assert {name for name, status in statuses.items() if status == "not applicable"} == not_applicable
    assert missing(result) == set() and result["total"] == 100
    assert all(i["evidence"] for i in result["items"])
