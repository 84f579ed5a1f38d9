"""`handful eval`: generate, grade and score, resumable at any moment.

A run directory holds one configuration (`run.json`), every sample as it is produced
(`samples.jsonl`, graded before it is written) and, once all samples are in, `scores.json`.
Rerunning the same command skips what is done; a different configuration is refused rather
than mixed into the same results.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from handful import __version__, tasks
from handful.benchmarks import benchmark_name, load_benchmark, subset
from handful.config import EvalConfig
from handful.engines import ENGINES, Prompt, load_tokenizer
from handful.engines.base import with_opener
from handful.errors import ConfigError, lookup
from handful.files import RunDirectory, read_json, register_config_secrets, settings_key, write_json
from handful.grading import VERSION as GRADER_VERSION
from handful.grading import Grader, GradeRequest
from handful.metrics import MemorisationGap, Score, Scores, difference_ci, per_problem_accuracy, score
from handful.models import resolve
from handful.prompts import messages, render
from handful.records import Generation, Posed, Problem, RecordStore, read_jsonl, write_jsonl
from handful.tasks import gym
from handful.terminal import visible

RUN_FILE, SAMPLES_FILE, SCORES_FILE = "run.json", "samples.jsonl", "scores.json"
POSED_FILE = "benchmarks.jsonl"  # every problem each benchmark posed, in order

log = logging.getLogger(__name__)


def versions(*extra: str) -> dict[str, str]:
    found = {"handful": __version__, "handful-grader": GRADER_VERSION, "python": platform.python_version()}
    for package in ("torch", "transformers", "math-verify", "openai", *extra):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def problems_digest(by_benchmark: dict[str, list[Problem]]) -> dict[str, str]:
    """What each benchmark's problems say, hashed: an edited file is another benchmark, whatever its path."""
    return {
        name: hashlib.sha256("\n".join(p.model_dump_json() for p in ps).encode()).hexdigest()
        for name, ps in by_benchmark.items()
    }


def fingerprint(cfg: EvalConfig, by_benchmark: dict[str, list[Problem]]) -> dict:
    return {**cfg.fingerprint(), "problems": problems_digest(by_benchmark)}


def stamp(fingerprint: dict) -> str:
    """A short name for a set of settings, stored in every sample they made."""
    return settings_key(fingerprint)[:16]


def _read_run_file(out: Path) -> dict | None:
    run_file = out / RUN_FILE
    if not run_file.exists():
        return None
    data = read_json(run_file, "run settings file")
    if not isinstance(data.get("fingerprint"), dict) or not isinstance(data.get("config"), dict):
        raise ConfigError(
            f"{run_file}: the run settings file is damaged (no fingerprint or config); move the directory away and start again"
        )
    return data


def _check_run_dir(out: Path, cfg: EvalConfig, mine: dict, samples_file: str) -> None:
    """Samples are only ever added to, and scored with, the settings that made them."""
    run_file = out / RUN_FILE
    recorded = _read_run_file(out)
    if recorded is not None:
        theirs = recorded["fingerprint"]
        if theirs != mine:
            diffs = [
                f"{k}: was {theirs.get(k)!r}, now {mine.get(k)!r}"
                for k in sorted(set(theirs) | set(mine))
                if theirs.get(k) != mine.get(k)
            ]
            raise ConfigError(
                f"{out} holds a run with other settings ({'; '.join(diffs)}); rerun with the same settings to resume, or use another --out"
            )
        return
    samples = out / samples_file
    if samples.exists() and samples.stat().st_size:
        # Without run.json the samples' own stamps say which settings made them.
        with RecordStore(samples, Generation, key=lambda g: g.key) as stored:
            stamps = {g.metadata.get("run") for g in stored.records}
        if stamps != {stamp(mine)}:
            raise ConfigError(
                f"{samples} holds samples but {run_file} is missing, and the samples were not made with these settings "
                "(or predate settings stamps); move them away or use another --out"
            )
    write_json(run_file, {"fingerprint": mine, "config": cfg.model_dump(mode="json"), "versions": versions()})


def seed_benchmarks(cfg: EvalConfig, out: Path) -> EvalConfig:
    """Give every `dyn:` benchmark a seed: the one asked for, the one this run directory drew
    before (so a rerun resumes), or a fresh one, logged so that the result can be reproduced."""
    recorded = _read_run_file(out)
    previous = recorded["config"].get("benchmarks") if recorded else None
    specs, drawn = tasks.with_seeds(cfg.benchmarks, previous)
    for spec in specs:
        if spec.startswith(tasks.SCHEME) and any(spec.startswith(key + "&seed=") for key in drawn):
            log.info("fresh problems: %s", spec)
    return cfg.model_copy(update={"benchmarks": specs})


def load_problems(cfg: EvalConfig) -> dict[str, list[Problem]]:
    chosen: dict[str, list[Problem]] = {}
    for spec in cfg.benchmarks:
        name = benchmark_name(spec)
        if name in chosen:
            raise ConfigError(
                f"benchmark {spec!r}: another benchmark in this run is filed under the same name {name!r}"
            )
        chosen[name] = subset(
            load_benchmark(spec, data=cfg.data, limit=cfg.limit, limit_seed=cfg.limit_seed),
            cfg.limit,
            seed=cfg.limit_seed,
        )
    return chosen


def _same_grader(stored: list[Generation], out: Path, samples_file: str) -> None:
    """Verdicts of two grading rules are never mixed in one eval run: one graded by another
    version is regraded first (traces, which no command regrades, are only warned about)."""
    others = sorted({g.grader or "unrecorded" for g in stored if g.grader != GRADER_VERSION})
    if not others:
        return
    message = (
        f"{out / samples_file}: its samples were graded by grader version {', '.join(others)}; "
        f"this handful grades with version {GRADER_VERSION}"
    )
    if samples_file != SAMPLES_FILE:
        log.warning("%s; their verdicts are kept as they are", message)
        return
    raise ConfigError(f"{message}; run `handful regrade {out}` first, then this command again")


def spec_overrides(cfg: EvalConfig) -> dict:
    """The prompt settings an eval run changes on its model's own."""
    overrides = cfg.prompt.overrides()
    if cfg.budget.active:
        overrides.setdefault("open_thinking", True)  # s1: the prompt ends by opening the thinking
    return overrides


def grade_generations(
    grader: Grader, generations: list[Generation], problems: dict[tuple, Problem], spec
) -> list[Generation]:
    requests = []
    for g in generations:
        p = problems[(g.benchmark, g.problem_id)]
        text = with_opener(g.text, spec)
        choices = tuple(p.choices) if p.choices else None
        requests.append(
            GradeRequest(
                text,
                p.answer,
                p.answer_format,
                choices,
                (spec.think_open, spec.think_close),
                g.finish_reason == "length",
                gym.handle(p),
            )
        )
    return [
        g.model_copy(
            update={
                "extracted": r.extracted,
                "canonical": r.canonical,
                "outcome": r.outcome,
                "correct": r.correct,
                "grader": GRADER_VERSION,
                **({"metadata": {**g.metadata, "score": r.score}} if r.score is not None else {}),
            }
        )
        for g, r in zip(generations, grader.grade(requests))
    ]


def evaluate(cfg: EvalConfig, out: str | Path) -> Scores:
    with RunDirectory(out) as folder:
        cfg, by_benchmark, samples = generate(cfg, folder, SAMPLES_FILE)
        # Written once the samples are in: on a nearly full disk, the samples come first.
        posed = [Posed(benchmark=name, problem=p) for name, ps in by_benchmark.items() for p in ps]
        write_jsonl(folder / POSED_FILE, posed)
        return write_scores(cfg, folder, by_benchmark, samples)


def generate(
    cfg: EvalConfig,
    out: Path,
    samples_file: str,
    *,
    label: str = "eval",
    annotate: Callable[[Generation], Generation] | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk: int | None = None,
) -> tuple[EvalConfig, dict[str, list[Problem]], list[Generation]]:
    """Every sample the config asks for, graded and stored one by one in `out/samples_file`;
    what is stored already is skipped. `annotate` adds to a sample before it is stored;
    `should_stop`, asked between chunks of `chunk` prompts, ends the run early (a cost cap):
    chunks finish whole, so no paid-for sample is dropped. Progress goes to stderr."""
    from tqdm.auto import tqdm

    lookup("engine", ENGINES, cfg.engine.name)
    register_config_secrets(cfg.model_dump())
    cfg = seed_benchmarks(cfg, out)
    overrides = spec_overrides(cfg)
    # Everything is checked before anything is written, so a typo leaves --out as it was.
    model = resolve(cfg.model, overrides, engine=cfg.engine.name)
    by_benchmark = load_problems(cfg)
    problems = {(name, p.id): p for name, ps in by_benchmark.items() for p in ps}
    mine = fingerprint(cfg, by_benchmark)
    _check_run_dir(out, cfg, mine, samples_file)
    run_stamp = stamp(mine)
    # Closed whatever happens, so a failed run leaves no open file behind (a full disk must be unmountable).
    with RecordStore(out / samples_file, Generation, key=lambda g: g.key) as store:
        _same_grader(store.records, out, samples_file)
        tokenizer = load_tokenizer(model, cfg.engine.trust_remote_code)
        todo = [
            Prompt(
                problem_id=p.id,
                benchmark=name,
                sample_index=i,
                text=render(p, model.spec, tokenizer),
                messages=messages(p, model.spec),
            )
            for name, ps in by_benchmark.items()
            for p in ps
            for i in range(cfg.n)
            if f"{name}/{p.id}#{i}" not in store
        ]
        if todo:
            engine = ENGINES[cfg.engine.name](model, cfg.engine, tokenizer)
            start, tokens, made = time.monotonic(), 0, 0
            with (
                Grader(cfg.grade.workers, cfg.grade.timeout) as grader,
                tqdm(
                    desc=visible(f"{label} {cfg.model}"),
                    total=len(todo) + len(store),
                    initial=len(store),
                    unit="sample",
                    dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",  # the rate is in the postfix
                ) as bar,
            ):

                def keep(batch: list[Generation]) -> None:
                    nonlocal tokens, made
                    for g in grade_generations(grader, batch, problems, model.spec):
                        g = g.model_copy(update={"metadata": {**g.metadata, "run": run_stamp}})
                        store.add(annotate(g) if annotate else g)
                    made += len(batch)
                    tokens += sum(g.completion_tokens for g in batch)
                    elapsed = max(time.monotonic() - start, 1e-9)
                    bar.set_postfix_str(f"{made / elapsed:.2f} samples/s, {tokens / elapsed:.1f} tok/s", refresh=False)
                    bar.update(len(batch))

                try:
                    step = chunk or len(todo)
                    for first in range(0, len(todo), step):
                        if should_stop and should_stop():
                            break
                        engine.generate(
                            todo[first : first + step],
                            cfg.sampling,
                            progress=keep,
                            budget=cfg.budget if cfg.budget.active else None,
                        )
                finally:
                    engine.close()
    return cfg, by_benchmark, store.records


def write_scores(
    cfg: EvalConfig, out: Path, by_benchmark: dict[str, list[Problem]], samples: list[Generation]
) -> Scores:
    results = {
        name: score(
            [g for g in samples if g.benchmark == name], cfg.n, expected=[p.id for p in ps], seed=cfg.sampling.seed
        )
        for name, ps in by_benchmark.items()
    }
    scores = Scores(
        benchmarks=results,
        memorisation=memorisation_gaps(results, samples, cfg.n, cfg.sampling.seed),
        config=cfg.model_dump(mode="json"),
        versions=versions(),
    )
    write_json(out / SCORES_FILE, scores.model_dump(mode="json"))
    return Scores.model_validate(read_json(out / SCORES_FILE, "scores file"))  # as written: secrets removed


def posed(folder: Path) -> dict[tuple[str, str], Problem]:
    """(benchmark, problem id) -> the problem, as an eval run stored them; empty for a run made
    before they were stored."""
    path = folder / POSED_FILE
    return {(r.benchmark, r.problem.id): r.problem for r in read_jsonl(path, Posed)} if path.exists() else {}


def memorisation_gaps(
    results: dict[str, Score], samples: list[Generation], n: int, seed: int = 0
) -> list[MemorisationGap]:
    """Static benchmark minus its fresh procedural copy, where a run holds both (GSM8K and
    `dyn:gsm-template`): a model that learned the skill scores alike on both; a clearly
    positive gap, CI above zero, says the static score is partly recall."""
    gaps = []
    for fresh, fresh_score in results.items():
        if not fresh.startswith(tasks.SCHEME):
            continue
        name, _ = tasks.parse_spec(fresh)
        static = tasks.TASKS[name].mirrors if name in tasks.TASKS else None
        if static not in results:
            continue
        gap, ci = difference_ci(
            per_problem_accuracy([g for g in samples if g.benchmark == static], n),
            per_problem_accuracy([g for g in samples if g.benchmark == fresh], n),
            seed=seed,
        )
        gaps.append(
            MemorisationGap(
                static=static,
                fresh=fresh,
                static_accuracy=results[static].accuracy,
                fresh_accuracy=fresh_score.accuracy,
                gap=gap,
                gap_ci95=ci,
            )
        )
    return gaps
