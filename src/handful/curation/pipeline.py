"""`handful curate`: pool -> normalise -> quality -> dedup -> decontaminate -> difficulty -> select.

Each stage is a function from the surviving problems to (kept, removed). A stage's results
go to `OUT/stages/N-NAME/` with a key made of its settings and the ids it was given; a rerun
with the same key reads them back instead of working again, and a changed setting reruns
that stage and every later one. The difficulty stage runs ordinary eval runs in its folder,
so its graded samples are kept one by one and a stopped run resumes mid-stage.

Outputs: `selected.jsonl` (Problems, `metadata.curation` holding the evidence for each),
`removed.jsonl` (every removed problem with its stage, reason and evidence) and
`funnel.json` (the count after each stage).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from handful.curation import decontam, dedup, difficulty, rules, select
from handful.curation.config import CurateConfig
from handful.curation.pools import load_pool
from handful.errors import ConfigError, RecordError
from handful.files import RunDirectory, read_json, write_json
from handful.records import Problem, Removal, read_jsonl, unique_ids, write_jsonl

SELECTED, REMOVED, FUNNEL = "selected.jsonl", "removed.jsonl", "funnel.json"
# The problems that passed the cleaning steps: what difficulty and selection chose from, and
# where a random selection of the same size draws from (s1's ablation, `handful study`).
CLEANED = "cleaned.jsonl"
_DIGITS = re.compile(r"\d+")
_ASY = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.DOTALL)

Outcome = tuple[list[Problem], list[Removal]]

log = logging.getLogger(__name__)


def _removal(problem: Problem, stage: str, reason: str, **evidence) -> Removal:
    return Removal(id=problem.id, source=problem.source, stage=stage, reason=reason, evidence=evidence, problem=problem)


def _noted(problem: Problem, **facts) -> Problem:
    """The problem with curation evidence added under metadata.curation."""
    curation = {**problem.metadata.get("curation", {}), **facts}
    return problem.model_copy(update={"metadata": {**problem.metadata, "curation": curation}})


def load_pools(specs: list[str]) -> list[Problem]:
    problems, seen = [], {}
    for spec in specs:
        for p in unique_ids(load_pool(spec), f"pool {spec}"):
            if p.id in seen:
                raise RecordError(
                    f"problem id {p.id!r} is in both {seen[p.id]} and {spec}; give the pools distinct ids (id=... in the spec)"
                )
            seen[p.id] = spec
            problems.append(p)
    return problems


def normalise(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    from handful.grading import Grader, GradeRequest, readable_with_deadline

    kept, removed = [], []
    for p in map(rules.cleanup, problems):
        if not p.question.strip():
            removed.append(_removal(p, "normalise", "empty question"))
        elif not p.answer.strip():
            removed.append(_removal(p, "normalise", "no reference answer"))
        else:
            kept.append(p)
    if not cfg.normalise.verifiable:
        return kept, removed
    with Grader(workers=2, check_fn=readable_with_deadline) as grader:
        grades = grader.grade([GradeRequest("", p.answer, p.answer_format) for p in kept])
    survivors = []
    for p, g in zip(kept, grades):
        if g.correct:
            survivors.append(p)
        else:
            removed.append(
                _removal(p, "normalise", f"the grader cannot read the answer ({g.outcome})", answer=p.answer)
            )
    return survivors, removed


def quality(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    q = cfg.quality
    builtin: dict[str, Callable] = {
        "missing_figure": partial(rules.missing_figure, keep_asy=q.keep_asy),
        "ascii_art": rules.ascii_art,
        "broken_numbering": rules.broken_numbering,
        "truncated": rules.truncated,
        "too_short": partial(rules.too_short, min_words=q.min_words),
        "too_long": partial(rules.too_long, max_chars=q.max_chars),
        "not_english": partial(rules.not_english, min_ascii=q.min_ascii),
    }
    unknown = sorted(set(q.rules) - set(builtin))
    if unknown:
        raise ConfigError(f"quality.rules: unknown rule(s) {', '.join(unknown)}; known: {', '.join(builtin)}")
    chosen = [(name, builtin[name]) for name in q.rules] + [
        (name, rules.pattern_rule(name, pattern)) for name, pattern in q.extra.items()
    ]
    kept, removed = [], []
    for p in problems:
        for name, rule in chosen:
            reason = rule(p)
            if reason:
                removed.append(_removal(p, "quality", reason, rule=name))
                break
        else:
            kept.append(p)
    return kept, removed


def deduplicate(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    texts = [p.question for p in problems]
    exact = dedup.exact_duplicates(texts)
    if cfg.dedup.mask_numbers:
        # The same problem with other numbers is a copy of its template, not a new problem.
        texts = [_DIGITS.sub("0", t) for t in texts]
    near = (
        dedup.near_duplicates(
            texts, threshold=cfg.dedup.threshold, n=cfg.dedup.ngram, num_perm=cfg.dedup.num_perm, skip=set(exact)
        )
        if cfg.dedup.near
        else {}
    )
    kept, removed = [], []
    for i, p in enumerate(problems):
        if i in exact:
            removed.append(
                _removal(p, "dedup", f"exact duplicate of {problems[exact[i]].id}", duplicate_of=problems[exact[i]].id)
            )
        elif i in near:
            j, similarity = near[i]
            removed.append(
                _removal(
                    p,
                    "dedup",
                    f"near duplicate of {problems[j].id} (Jaccard ~{similarity:.2f})",
                    duplicate_of=problems[j].id,
                    jaccard=round(similarity, 3),
                )
            )
        else:
            kept.append(p)
    return kept, removed


def benchmark_problems(cfg: CurateConfig) -> list[tuple[str, Problem]]:
    from handful.benchmarks import BENCHMARKS, benchmark_name, load_benchmark

    specs = [s for spec in cfg.decontaminate.benchmarks for s in (BENCHMARKS if spec == "all" else [spec])]
    return [
        (benchmark_name(spec), p)
        for spec in dict.fromkeys(specs)
        for p in load_benchmark(spec, data=cfg.decontaminate.data)
    ]


def _same_answer(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return re.sub(r"\s|\$|\\[dt](?=frac)|\\!|\\text\{\s*\}", "", s).rstrip(".")

    return bool(a.strip()) and norm(a) == norm(b)


def decontaminate(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    d = cfg.decontaminate
    items = benchmark_problems(cfg)
    clean = (lambda t: _ASY.sub(" ", t)) if d.strip_asy else (lambda t: t)
    questions = decontam.NgramIndex([clean(p.question) for _, p in items], d.ngram, d.max_df)
    with_solution = [i for i, (_, p) in enumerate(items) if p.solution]
    solutions = decontam.NgramIndex([items[i][1].solution for i in with_solution], d.ngram, d.max_df)
    flagged: dict[int, dict] = {}
    for o in questions.overlaps([clean(p.question) for p in problems], min(d.flag, d.flag_same_answer)):
        name, item = items[o.item]
        same = _same_answer(problems[o.doc].answer, item.answer)
        if o.containment >= d.flag or (same and o.containment >= d.flag_same_answer):
            best = flagged.get(o.doc)
            if best is None or o.containment > best["containment"]:
                flagged[o.doc] = {
                    "benchmark": name,
                    "item": item.id,
                    "field": "question",
                    "containment": round(o.containment, 3),
                    "same_answer": same,
                    "shared": decontam.shared_ngrams(problems[o.doc].question, item.question, d.ngram),
                }
    own = [i for i, p in enumerate(problems) if p.solution]
    for o in solutions.overlaps([problems[i].solution for i in own], d.solution):
        doc, (name, item) = own[o.doc], items[with_solution[o.item]]
        if doc not in flagged:
            flagged[doc] = {
                "benchmark": name,
                "item": item.id,
                "field": "solution",
                "containment": round(o.containment, 3),
                "same_answer": _same_answer(problems[doc].answer, item.answer),
                "shared": decontam.shared_ngrams(problems[doc].solution, item.solution, d.ngram),
            }
    kept, removed = [], []
    for i, p in enumerate(problems):
        if i in flagged:
            f = flagged[i]
            removed.append(
                _removal(
                    p,
                    "decontaminate",
                    f"{f['field']} overlaps {f['benchmark']} item {f['item']} ({f['containment']:.0%} of n-grams)",
                    **f,
                )
            )
        else:
            kept.append(p)
    return kept, removed


def rate_difficulty(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    c = cfg.difficulty
    if not c.references:
        raise ConfigError("difficulty.references: list at least one reference model (or set difficulty.enabled: false)")
    removed = []
    rated = problems
    if c.candidates is not None and c.candidates < len(problems):
        chosen = set(random.Random(cfg.seed).sample(range(len(problems)), c.candidates))
        rated = [p for i, p in enumerate(problems) if i in chosen]
        removed = [
            _removal(p, "difficulty", f"not among the {c.candidates} rated candidates")
            for i, p in enumerate(problems)
            if i not in chosen
        ]
    counts = difficulty.solve_counts(rated, c.references, folder / "references")
    kept = []
    for p in rated:
        rates = counts[p.id]
        reason = difficulty.verdict(rates, c.policy, c.max_solved, c.band)
        evidence = {name: f"{solved}/{n}" for name, (solved, n) in rates.items()}
        if reason:
            removed.append(_removal(p, "difficulty", reason, solved=evidence, policy=c.policy))
        else:
            kept.append(_noted(p, solved=evidence))
    return kept, removed


def choose(problems: list[Problem], cfg: CurateConfig, folder: Path) -> Outcome:
    s = cfg.select
    names = select.domains(problems, s.domains, s.clusters, cfg.seed)
    order = select.select(problems, names, cfg.target, s.method, cfg.seed)
    picked = set(order)
    kept = [
        _noted(problems[i], domain=names[i], trace_length=select.trace_length(problems[i]), rank=r)
        for r, i in enumerate(order)
    ]
    removed = [
        _removal(p, "select", f"not drawn (domain {names[i]})", domain=names[i])
        for i, p in enumerate(problems)
        if i not in picked
    ]
    return kept, removed


# Stage name = its section in CurateConfig.
STAGES: dict[str, Callable[..., Outcome]] = {
    "normalise": normalise,
    "quality": quality,
    "dedup": deduplicate,
    "decontaminate": decontaminate,
    "difficulty": rate_difficulty,
    "select": choose,
}


def _key(cfg: CurateConfig, section: str, problems: list[Problem]) -> str:
    settings = getattr(cfg, section).model_dump(mode="json")
    if section in ("select", "difficulty"):
        settings = {**settings, "seed": cfg.seed, "target": cfg.target}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for p in problems:
        digest.update(p.id.encode() + b"\0")
    return digest.hexdigest()


def curate(cfg: CurateConfig, out: str | Path, on_stage: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """The funnel. Each stage's count, as it finishes, goes to `on_stage(name, before, after)`,
    or without one to the log ("quality: 120 -> 97")."""
    with RunDirectory(out) as folder:
        return _curate(cfg, folder, on_stage)


def _curate(cfg: CurateConfig, out: Path, on_stage) -> list[dict]:
    problems = load_pools(cfg.pools)  # read before anything is written: a bad pool leaves --out as it was
    write_json(out / "curate.json", cfg.model_dump(mode="json"))
    funnel = [{"stage": "pool", "count": len(problems)}]
    all_removed: list[Removal] = []
    for number, (name, run) in enumerate(STAGES.items(), start=1):
        before = len(problems)
        if name == "difficulty":  # the first step that chooses rather than cleans
            write_jsonl(out / CLEANED, problems)
        if not getattr(cfg, name).enabled:
            funnel.append({"stage": name, "count": before, "skipped": True})
            continue
        folder = out / "stages" / f"{number}-{name}"
        key = _key(cfg, name, problems)
        done = folder / "done.json"
        if done.exists() and read_json(done, "stage record").get("key") == key:
            kept = read_jsonl(folder / "kept.jsonl", Problem, allow_empty=True)
            removed = read_jsonl(folder / "removed.jsonl", Removal, allow_empty=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            done.unlink(missing_ok=True)
            kept, removed = run(problems, cfg, folder)
            write_jsonl(folder / "kept.jsonl", kept)
            write_jsonl(folder / "removed.jsonl", removed)
            write_json(done, {"key": key, "kept": len(kept), "removed": len(removed)})
        problems = kept
        all_removed += removed
        reasons: dict[str, int] = {}
        for r in removed:
            label = r.evidence.get("rule") or r.evidence.get("benchmark") or r.reason.split(" (")[0].split(" of ")[0]
            reasons[label] = reasons.get(label, 0) + 1
        funnel.append(
            {
                "stage": name,
                "count": len(kept),
                "removed": len(removed),
                "by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:8]),
            }
        )
        if on_stage:
            on_stage(name, before, len(kept))
        else:
            log.info("%s: %d -> %d", name, before, len(kept))
    write_jsonl(out / SELECTED, problems)
    write_jsonl(out / REMOVED, all_removed)
    write_json(out / FUNNEL, funnel)
    return funnel
