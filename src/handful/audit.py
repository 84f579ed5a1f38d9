"""`handful audit DIR`: the stored samples graded again by a second, independent grader, to see
how far a score rests on its grader.

The second grader is the rule grader (`rule_grader.py`, in the style of Qwen2.5-Math's
evaluation) or an LLM judge through any engine (`judge.py`). Each sample's stored verdict (the
one its scores were computed from) is set against the second one; two verdicts agree when both
call the sample correct or both do not (no_answer and incorrect are both "not correct"), and a
judge's unclear reply never agrees. Per benchmark of each eval folder, and pooled over all:
the agreement rate with a 95 % Wilson interval, the accuracy under each grader, and every
disagreement with both verdicts, both answers read and the reference.

The interval treats samples as independent; with several samples per problem they are not
quite, and the interval is then somewhat too narrow.

DIR is an eval folder, a scale folder (its points) or a `handful run` directory (its eval
stages and scale points), found as `handful regrade` finds them. The audit only reads: nothing
is written into DIR (`handful audit DIR --json` prints the whole record, to keep it).
Countdown samples are skipped (both second graders compare answers, and a countdown answer is
an expression to check by arithmetic), as are samples never graded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from handful.benchmarks import subset
from handful.engines.base import with_opener
from handful.errors import ConfigError
from handful.evaluation import SAMPLES_FILE
from handful.grading import VERSION, GradeRequest
from handful.judge import UNCLEAR, Case, Judge
from handful.models import ModelSpec
from handful.records import Generation, Problem, read_jsonl
from handful.regrade import eval_folders, stored

RULES = "rules"
log = logging.getLogger(__name__)


class Verdict(BaseModel):
    outcome: str
    correct: bool
    answer: str | None = Field(description="the answer the grader read; for a judge, its reply")


class Disagreement(BaseModel):
    folder: str  # the eval folder, relative to DIR ("." for DIR itself)
    benchmark: str
    problem_id: str
    sample_index: int
    reference: str
    main: Verdict  # as stored with the sample
    second: Verdict


class Agreement(BaseModel):
    folder: str  # relative to DIR; "" for the pooled row
    benchmark: str  # "" for the pooled row
    graded: int  # samples both graders ruled on
    agreed: int
    rate: float | None  # None when nothing was graded
    ci95: tuple[float, float] | None  # Wilson
    main_accuracy: float | None
    second_accuracy: float | None
    unclear: int = 0  # judge replies that were neither word (counted as disagreements)
    skipped: int = 0  # countdown samples and samples never graded


class Audit(BaseModel):
    folder: str
    second: str  # "rules", or "judge ENGINE:MODEL"
    main_grader: list[str]  # grading versions of the stored verdicts
    benchmarks: list[Agreement]
    pooled: Agreement
    disagreements: list[Disagreement]


@dataclass(frozen=True)
class _Sample:
    folder: str
    generation: Generation
    problem: Problem
    text: str  # the response as it reads, thinking opener included
    spec: ModelSpec  # the answering model's prompt settings

    @property
    def case(self) -> Case:
        return Case(self.problem, self.text, self.spec)


def audit(
    folder: str | Path,
    second: str | Judge = RULES,
    *,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 2,
    timeout: float = 5.0,
    progress=None,
) -> Audit:
    """Grade DIR's stored samples again with `second` ("rules", or a Judge) and set the two
    verdicts side by side. `limit`: a fixed, seeded subset of N problems per benchmark (all their
    samples), to bound a judge's cost."""
    out = Path(folder)
    if not out.is_dir():
        raise ConfigError(f"{out}: no such directory")
    if not isinstance(second, Judge) and second != RULES:
        raise ConfigError(f"second grader {second!r}: use {RULES!r} or a judge")
    samples, skipped = [], {}
    for f in eval_folders(out):
        chosen, left_out = _samples(f, out, limit, seed)
        samples += chosen
        skipped.update(left_out)  # keyed by folder: no two folders share a key
    if isinstance(second, Judge):
        rulings = second.rule([s.case for s in samples], progress)
        verdicts = [Verdict(outcome=r.outcome, correct=r.correct, answer=r.reply) for r in rulings]
        name = f"judge {second.name}"
    else:
        verdicts = _rules(samples, workers, timeout, progress)
        name = RULES
    versions = sorted({s.generation.grader or "unrecorded" for s in samples})
    if any(v != VERSION for v in versions):
        log.warning(
            "%s: stored verdicts of grader version %s; this handful grades with %s (see `handful regrade`)",
            out,
            ", ".join(versions),
            VERSION,
        )
    return _summary(out, name, versions, samples, verdicts, skipped)


def _samples(folder: Path, root: Path, limit: int | None, seed: int) -> tuple[list[_Sample], dict]:
    """The samples of one eval folder to audit, and how many were skipped per benchmark. Read
    only: a torn last line is an error here, not repaired."""
    found: dict[str, Generation] = {}
    for g in read_jsonl(folder / SAMPLES_FILE, Generation, allow_empty=True):
        found.setdefault(g.key, g)  # a record stored twice counts once, the first, as everywhere
    generations = list(found.values())
    run = stored(folder, generations)
    problems = run.problems
    chosen = {(name, p.id) for name, ps in run.by_benchmark.items() for p in subset(ps, limit, seed)}
    label = str(folder.relative_to(root))
    kept, skipped = [], {}
    for g in generations:
        key = (g.benchmark, g.problem_id)
        if key not in chosen:
            continue
        problem = problems[key]
        if problem.answer_format == "countdown" or g.correct is None:
            where = (label, g.benchmark or "")
            skipped[where] = skipped.get(where, 0) + 1
            continue
        text = with_opener(g.text, run.spec)
        kept.append(_Sample(label, g, problem, text, run.spec))
    return kept, skipped


def _rules(samples: list[_Sample], workers: int, timeout: float, progress) -> list[Verdict]:
    from handful import rule_grader

    requests = [
        GradeRequest(
            s.text,
            s.problem.answer,
            s.problem.answer_format,
            tuple(s.problem.choices) if s.problem.choices else None,
        )
        for s in samples
    ]
    grades = rule_grader.grade(requests, workers, timeout, progress)
    return [Verdict(outcome=g.outcome, correct=g.correct, answer=g.extracted) for g in grades]


def _agreement(folder: str, benchmark: str, pairs: list[tuple[Verdict, Verdict]], skipped: int) -> Agreement:
    graded = len(pairs)
    agreed = sum(main.correct == second.correct and second.outcome != UNCLEAR for main, second in pairs)
    ci = None
    if graded:
        from scipy.stats import binomtest

        low, high = binomtest(agreed, graded).proportion_ci(confidence_level=0.95, method="wilson")
        ci = (float(low), float(high))
    return Agreement(
        folder=folder,
        benchmark=benchmark,
        graded=graded,
        agreed=agreed,
        rate=agreed / graded if graded else None,
        ci95=ci,
        main_accuracy=sum(m.correct for m, _ in pairs) / graded if graded else None,
        second_accuracy=sum(s.correct for _, s in pairs) / graded if graded else None,
        unclear=sum(s.outcome == UNCLEAR for _, s in pairs),
        skipped=skipped,
    )


def _summary(
    out: Path, name: str, versions: list[str], samples: list[_Sample], verdicts: list[Verdict], skipped: dict
) -> Audit:
    groups: dict[tuple[str, str], list[tuple[Verdict, Verdict]]] = {key: [] for key in skipped}
    disagreements = []
    for s, second in zip(samples, verdicts):
        g = s.generation
        main = Verdict(outcome=g.outcome or "ungraded", correct=bool(g.correct), answer=g.extracted)
        groups.setdefault((s.folder, g.benchmark or ""), []).append((main, second))
        if main.correct != second.correct or second.outcome == UNCLEAR:
            disagreements.append(
                Disagreement(
                    folder=s.folder,
                    benchmark=g.benchmark or "",
                    problem_id=g.problem_id,
                    sample_index=g.sample_index,
                    reference=s.problem.answer,
                    main=main,
                    second=second,
                )
            )
    rows = [_agreement(f, b, pairs, skipped.get((f, b), 0)) for (f, b), pairs in sorted(groups.items())]
    everything = [pair for pairs in groups.values() for pair in pairs]
    pooled = _agreement("", "", everything, sum(skipped.values()))
    return Audit(
        folder=str(out),
        second=name,
        main_grader=versions,
        benchmarks=rows,
        pooled=pooled,
        disagreements=disagreements,
    )
