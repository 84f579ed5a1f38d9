"""`handful precision`: the same problems, with the same seeds, once per numeric precision, each
against float32 on the same problems.

Precisions are the hf engine's (float32, bfloat16, float16, int8) and GGUF quantizations run
by llama.cpp (`gguf:Q8_0`, `gguf:Q4_1`, ... see `gguf_export.QTYPES`): the checkpoint is
written as GGUF once (`OUT/gguf/`), served by a llama.cpp server that the study starts and
stops, and evaluated through the openai engine like any server. A GGUF point therefore
differs from float32 by its engine as well as its numbers; `gguf:F32` separates the two.

Each precision is one `handful eval` run in `OUT/points/NAME/`, resumable like any other;
the first point (float32, the reference) fixes the fresh problems' seeds for all of them. For
each precision and benchmark the study gives the accuracy with its interval, the paired
difference from float32 (`comparison.compare_samples`), the share of outputs byte-identical
to float32's for the same problem and sample (meaningful for greedy decoding), the generation
speed, the peak memory of the point, and what the weights take (in memory for the hf engine,
the file for llama.cpp, which maps it).

Speed and peak memory are measured while a point generates: peak resident memory is reset
before each hf point (Linux `clear_refs`) and read after it; a GGUF point's is its server's.
Speed counts the whole point (loading and grading included). A point that had nothing left
to generate keeps the figures stored when it did (`speed.json`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from pydantic import Field, field_validator

from handful.comparison import compare_samples
from handful.config import Config, EvalConfig
from handful.engines import llama_server
from handful.errors import ConfigError, EngineError
from handful.evaluation import SAMPLES_FILE, evaluate, seed_benchmarks
from handful.files import RunDirectory, read_json, write_json
from handful.hardware import slow_dtype
from handful.records import Generation, read_jsonl

PRECISIONS = ("float32", "bfloat16", "float16", "int8")
GGUF = "gguf:"
REFERENCE = "float32"
SPEED_FILE = "speed.json"
STUDY_FILE = "precision.json"


class PrecisionConfig(Config):
    eval: EvalConfig = Field(default_factory=EvalConfig)
    precisions: list[str] = Field(
        default_factory=lambda: ["float32", "int8"],
        min_length=1,
        description="float32 (the reference, always run first), bfloat16, float16, int8, gguf:TYPE (llama.cpp)",
    )
    gguf_template: str | None = Field(
        default=None, description="the GGUF whose metadata GGUF points copy; default: the model's shipped GGUF"
    )

    @field_validator("precisions")
    @classmethod
    def _known(cls, given: list[str]) -> list[str]:
        from handful.gguf_export import QTYPES

        unknown = [p for p in given if p not in PRECISIONS and p.removeprefix(GGUF) not in QTYPES]
        if unknown:
            known = ", ".join([*PRECISIONS, *(GGUF + q for q in QTYPES)])
            raise ValueError(f"unknown precision {', '.join(unknown)}: use {known}")
        return [REFERENCE] + [p for p in dict.fromkeys(given) if p != REFERENCE]


def precision(cfg: PrecisionConfig, out: str | Path) -> dict:
    if cfg.eval.engine.name != "hf":
        raise ConfigError(
            f"eval.engine.name: a precision study loads the model itself (hf), not {cfg.eval.engine.name}"
        )
    device = cfg.eval.engine.device
    for p in cfg.precisions:
        slow = slow_dtype(p, device)
        if slow:
            raise ConfigError(f"precisions: {p}: {slow}; leave it out of the study")
    if any(p.startswith(GGUF) for p in cfg.precisions) and not llama_server.available():
        raise ConfigError(
            f"precisions: the gguf: points run llama.cpp, which needs llama-cpp-python: {llama_server.INSTALL}"
        )
    with RunDirectory(out) as folder:
        return study(cfg, folder)


def _peak_rss_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak is then the process's


def _peak_rss_mib(pid: int | str = "self") -> float | None:
    """Peak resident memory of a process (this one, or a server's) since its last reset."""
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return round(int(found.group(1)) / 1024, 1) if found else None


def _weights_mib(model_path: str, dtype: str, device: str) -> float:
    from handful.engines.hf import load_model, weight_bytes

    return round(weight_bytes(load_model(model_path, dtype, device)) / 2**20, 1)


def _folder(name: str) -> str:
    return name.replace(":", "-")


def _gguf_file(cfg: PrecisionConfig, out: Path, qtype: str) -> Path:
    """The model as GGUF in `qtype`, written once into the study."""
    from handful.gguf_export import write_gguf
    from handful.models import gguf_template, resolve

    target = out / "gguf" / f"{qtype}.gguf"
    if not target.exists():
        model = resolve(cfg.eval.model)
        template = Path(cfg.gguf_template) if cfg.gguf_template else gguf_template(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(model.path, template, target, qtype)
    return target


def _served(cfg: PrecisionConfig, out: Path, name: str, folder: Path):
    """(eval settings for a GGUF point, its server): the server runs until the caller stops it."""
    gguf = _gguf_file(cfg, out, name.removeprefix(GGUF))
    folder.mkdir(parents=True, exist_ok=True)
    server = llama_server.LlamaServer(gguf, folder / "server.log", alias=cfg.eval.model)
    return _through_server(cfg, server.url), server


def _through_server(cfg: PrecisionConfig, url: str) -> EvalConfig:
    """The study's eval settings sent to a llama.cpp server at `url`, the prompt rendered by the
    model's own chat template (completions)."""
    engine = {"name": "openai", "base_url": url, "served_model": cfg.eval.model, "endpoint": "completions"}
    return cfg.eval.model_copy(update={"engine": cfg.eval.engine.model_copy(update=engine)})


def _run_point(cfg: PrecisionConfig, out: Path, name: str) -> tuple[list[Generation], dict]:
    folder = out / "points" / _folder(name)
    samples_file = folder / SAMPLES_FILE
    had = len(read_jsonl(samples_file, Generation)) if samples_file.exists() else 0
    server = None
    if name.startswith(GGUF) and (folder / "scores.json").exists():
        # A finished point: nothing to generate, so no server (its address is in no fingerprint).
        point = _through_server(cfg, "http://127.0.0.1:1/v1")
    elif name.startswith(GGUF):
        point, server = _served(cfg, out, name, folder)
    else:
        point = cfg.eval.model_copy(update={"engine": cfg.eval.engine.model_copy(update={"dtype": name})})
        _peak_rss_reset()
    try:
        start = time.perf_counter()
        evaluate(point, folder)
        seconds = time.perf_counter() - start
        peak = _peak_rss_mib(server.proc.pid if server else "self")
    except EngineError:
        if server is None or server.alive:
            raise
        done = len(read_jsonl(samples_file, Generation)) if samples_file.exists() else 0
        raise EngineError(
            f"the llama.cpp server for {name} stopped during the point (exit code {server.proc.returncode}; see "
            f"{folder / 'server.log'}); the {done} samples done are kept in {samples_file}, and running the "
            "study again resumes from them"
        ) from None
    finally:
        if server:
            server.close()
    samples = read_jsonl(samples_file, Generation)
    stored = read_json(folder / SPEED_FILE, "speed file") if (folder / SPEED_FILE).exists() else None
    if len(samples) > had or stored is None:
        made = samples[had:]
        tokens = sum(g.completion_tokens for g in made)
        stored = {
            "samples": len(made),
            "completion_tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1) if made else None,
            "peak_rss_mib": peak,
            "weights_mib": round(_gguf_file(cfg, out, name.removeprefix(GGUF)).stat().st_size / 2**20, 1)
            if server
            else _weights_mib(_model_path(cfg), name, cfg.eval.engine.device),
        }
        write_json(folder / SPEED_FILE, stored)
    return samples, stored


def _model_path(cfg: PrecisionConfig) -> str:
    from handful.models import resolve

    return resolve(cfg.eval.model).path


def _identical(reference: list[Generation], samples: list[Generation]) -> float | None:
    texts = {g.key: g.text for g in reference}
    shared = [g for g in samples if g.key in texts]
    return sum(g.text == texts[g.key] for g in shared) / len(shared) if shared else None


def study(cfg: PrecisionConfig, out: Path) -> dict:
    # Every point must see the same fresh problems: seeds are fixed once, by the reference.
    cfg = cfg.model_copy(update={"eval": seed_benchmarks(cfg.eval, out / "points" / REFERENCE)})
    rows, reference = [], None
    for name in cfg.precisions:
        samples, speed = _run_point(cfg, out, name)
        reference = reference if reference is not None else samples
        against = {
            c.benchmark: c
            for c in compare_samples(reference, samples, cfg.eval.n, cfg.eval.n, baseline=REFERENCE, compared=name)
        }
        scores = read_json(out / "points" / _folder(name) / "scores.json", "scores file")["benchmarks"]
        for bench, s in scores.items():
            mine = [g for g in samples if g.benchmark == bench]
            rows.append(
                {
                    "precision": name,
                    "benchmark": bench,
                    "accuracy": s["accuracy"],
                    "ci95": s["ci95"],
                    "against_float32": against[bench].model_dump(mode="json"),
                    "identical_to_float32": _identical([g for g in reference if g.benchmark == bench], mine),
                    **{k: speed[k] for k in ("tokens_per_s", "peak_rss_mib", "weights_mib")},
                }
            )
    result = {"points": rows, "config": cfg.model_dump(mode="json")}
    write_json(out / STUDY_FILE, result)
    return result
