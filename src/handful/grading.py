"""One grader for evaluation and for RL rewards: extraction, then math-verify equivalence.

Outcomes and their policy (`correct` is True only for the first):
- correct: the extracted answer is equivalent to the reference.
- incorrect: an answer was found and it is not equivalent.
- no_answer: nothing answer-like was found in the output.
- unparseable_gold: math-verify cannot read the reference; the normalised strings are then
  compared, a match counts as `correct`, a mismatch is flagged here instead of `incorrect`
  because nothing proves it wrong. Fix the reference, or read these by hand.
- timeout: the check ran past its deadline (parsing and comparison together), or sympy raised
  on the way and it could not finish (its method then says `error: ...`).

math-verify bounds its own work with SIGALRM, which only works in a process's main thread
(so it raises inside threads), and a signal only lands between bytecodes: a C extension
that holds the GIL without checking signals (gmpy2 or flint arithmetic under sympy) never
sees it. So every check runs in a worker process under its own interval timer, and the
pool kills a worker still busy a grace period past the deadline. That works from any
thread of the caller, and spreads many answers over the cores.

A deadline must never land inside an import: Python leaves a half-run package in
`sys.modules` (sympy without `sympy.assumptions`), every later import of it "succeeds",
and math-verify, which swallows the resulting errors, returns nothing parsed for every
answer after that, so each check reads `unparseable_gold`. So math-verify is imported
before the timer is armed (its import also takes close to a second, which is no part of any
one check), and a deadline that falls inside a lazy import sympy makes mid-check is
postponed until that import has finished.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from handful import notation
from handful.errors import RecordError
from handful.extract import extract_answer, is_plain_number
from handful.records import AnswerFormat, iter_lines, parse_line, write_jsonl
from handful.tasks import countdown

# Deadlines are ours (below), so math-verify's own are off and its warning about that is noise.
logging.getLogger("math_verify").setLevel(logging.ERROR)

DEFAULT_TIMEOUT = 5.0
KILL_GRACE = 2.0
BATCH = 32


# The grading rules' version, stored with every verdict: a change that can turn a verdict bumps
# it, and `handful regrade` brings stored samples up to it. 2: a cut-off output counts only an
# answer it marked as final. 3: unicode math, e-notation, units after a number, subscripted
# symbols, equal closed forms, the closing sentence's inline math, a number stated as a result.
VERSION = "3"


@dataclass(frozen=True)
class GradeRequest:
    pred: str
    gold: str
    answer_format: str = "math"
    choices: tuple[str, ...] | None = None
    thinking_delimiters: tuple[str, str] = ("<think>", "</think>")
    truncated: bool = False  # cut at the token limit: its last number is no answer
    verifier: str | None = None  # answer format "rg": the reasoning-gym entry to score against (tasks.gym.handle)


@dataclass(frozen=True)
class Grade:
    outcome: str
    correct: bool
    extracted: str | None
    canonical: str | None
    method: str
    score: float | None = None  # answer format "rg": the verifier's score in [0, 1]; only 1 is correct


class _Deadline(BaseException):
    # BaseException so that math-verify's and sympy's `except Exception` let it through.
    pass


def _normalise(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\^\{?\\circ\}?|°", "", s)
    return re.sub(r"\s+", "", s).rstrip(".").lower()


def _as_int(s: str) -> int | None:
    s = _normalise(s).replace(",", "")
    if re.fullmatch(r"[-+]?\d+(?:\.0*)?", s):
        return int(float(s)) if "." in s else int(s)
    return None


def _math_verify():
    """math-verify, imported outside any deadline. Only sys.modules caches it: an import that
    raised is not kept, so the next call tries again."""
    import math_verify

    return math_verify


def _parse(s: str):
    parse = _math_verify().parse

    # A closing full stop and TeX's thin negative space (`29,\\!322`) are typesetting, not value.
    s = s.strip().rstrip(".").replace("\\!", "")
    if not s.startswith("$") and not s.startswith("\\boxed"):
        s = f"${s}$"
    return parse(s, parsing_timeout=None)


def _values(parsed) -> list:
    # math-verify returns only the raw string when sympy could not read it.
    return [v for v in parsed if not isinstance(v, str)]


def _canonical(parsed, text: str) -> str:
    """A string that is equal for equal answers, so that votes can be counted."""
    if not parsed:
        return _normalise(text)
    value = parsed[0]
    import sympy

    if isinstance(value, sympy.Expr) and value.is_number and value.has(sympy.Float):
        # `1.5/10**3` votes with `0.0015`. math-verify leaves some products unevaluated (`7.2*(1/100)`
        # for 7.2 %): doit first, and a value that still will not evaluate keeps its own form.
        try:
            number = value.doit().evalf()
        except (TypeError, ValueError, ArithmeticError):
            number = None
        value = number if isinstance(number, sympy.Number) else value
    try:
        if isinstance(value, sympy.Number):
            rational = sympy.Rational(str(round(float(value), 9))) if isinstance(value, sympy.Float) else value
            return str(int(rational)) if rational.is_integer else str(rational)
        return str(value)
    except (TypeError, ValueError, ArithmeticError):  # printing can evaluate, and run out of precision
        return _normalise(text)


def _check_math(gold: str, pred: str, integer: bool) -> tuple[str, bool, str]:
    verify = _math_verify().verify

    gold, pred = notation.rewrite(gold), notation.rewrite(pred)
    if notation.is_number(gold):
        pred = notation.leading_number(pred) or pred
    if integer:
        g, p = _as_int(gold), _as_int(pred)
        if g is not None and p is not None:
            return ("correct" if g == p else "incorrect"), g == p, str(p)
    pred_parsed = _values(_parse(pred))
    canonical = _canonical(pred_parsed, pred)
    if _normalise(gold) == _normalise(pred):
        return "correct", True, canonical
    gold_standing, pred_standing = notation.stand_in_subscripts(gold, pred)
    gold_parsed = _values(_parse(gold_standing))
    if pred_standing != pred:
        pred_parsed = _values(_parse(pred_standing))
    if not gold_parsed:
        return "unparseable_gold", False, canonical
    if not pred_parsed:
        return "incorrect", False, canonical
    ok = verify(gold_parsed, pred_parsed, timeout_seconds=None) or _same_function(gold_parsed[0], pred_parsed[0])
    return ("correct" if ok else "incorrect"), ok, canonical


# Distinct values for each variable at each point, away from the usual poles (0, 1, -1).
_POINTS = (0.7, -1.3, 1.9, 0.45, -0.35)
_AGREEING_POINTS = 3


def _same_function(gold, pred) -> bool:
    """Whether two expressions in the same variables agree at several points: equal closed forms
    that sympy does not rewrite into each other (`sinh(at)/a` and its exponentials)."""
    import sympy

    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    if not symbols or gold.free_symbols != pred.free_symbols:
        return False
    agreeing = 0
    for x in _POINTS:
        point = {s: x + 0.29 * k for k, s in enumerate(symbols)}
        try:
            a, b = complex(gold.evalf(subs=point)), complex(pred.evalf(subs=point))
        except (TypeError, ValueError, ArithmeticError):
            continue
        if not all(map(math.isfinite, (a.real, a.imag, b.real, b.imag))):
            continue
        if abs(a - b) > 1e-9 * max(1.0, abs(a), abs(b)):
            return False
        agreeing += 1
    return agreeing >= _AGREEING_POINTS


def _extract(request: GradeRequest):
    return extract_answer(
        request.pred,
        answer_format=request.answer_format,
        choices=list(request.choices) if request.choices else None,
        last_number=request.answer_format != "countdown"
        and (request.answer_format == "integer" or is_plain_number(request.gold)),
        thinking_delimiters=request.thinking_delimiters,
        truncated=request.truncated,
    )


def check(request: GradeRequest) -> Grade:
    """Grade one output against one reference, with no time limit of its own."""
    found = _extract(request)
    if found.answer is None:
        return Grade("no_answer", False, None, None, found.method)
    if request.answer_format == "choice":
        ok = found.answer.upper() == request.gold.strip().upper()
        return Grade("correct" if ok else "incorrect", ok, found.answer, found.answer, found.method)
    if request.answer_format == "countdown":
        # Any right expression is right; votes count them as one answer, the target.
        ok, _ = countdown.verify(found.answer, request.choices or (), request.gold)
        canonical = request.gold if ok else countdown.normalise(found.answer).replace(" ", "")
        return Grade("correct" if ok else "incorrect", ok, found.answer, canonical, found.method)
    if request.answer_format == "rg":
        return _check_gym(request, found.answer, found.method)
    outcome, ok, canonical = _check_math(request.gold, found.answer, request.answer_format == "integer")
    return Grade(outcome, ok, found.answer, canonical, found.method)


def _check_gym(request: GradeRequest, answer: str, method: str) -> Grade:
    """The dataset's own verifier. Full credit is correct, part of it "partial" (the score kept),
    so that accuracy keeps one meaning across benchmarks."""
    from handful.tasks import gym

    if not request.verifier:
        raise ValueError("answer format rg needs the problem's verifier (its reasoning-gym entry)")
    value = gym.score(request.verifier, answer)
    outcome = "correct" if value >= 1.0 else "partial" if value > 0 else "incorrect"
    # Votes count answers the verifier accepts as one: the reference.
    canonical = request.gold if value >= 1.0 else answer.strip()
    return Grade(outcome, value >= 1.0, answer, canonical, f"{method}+rg", score=value)


def _timed_out(request: GradeRequest) -> Grade:
    return Grade("timeout", False, _extract(request).answer, None, "timeout")


_IMPORT_MACHINERY = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
_POSTPONE = 0.01


def _importing(frame) -> bool:
    """Whether the check is inside an import. Only the check's own frames count: a caller
    that grades while its module is being imported must still get its deadlines."""
    while frame is not None and frame.f_code is not _under_deadline.__code__:
        if frame.f_code.co_filename in _IMPORT_MACHINERY:
            return True
        frame = frame.f_back
    return False


def _raise_deadline(signum, frame):
    if _importing(frame):
        # Raising here would leave the module half-run in sys.modules for good; try again
        # just after the import.
        signal.setitimer(signal.ITIMER_REAL, _POSTPONE)
        return
    raise _Deadline()


def readable(request: GradeRequest) -> Grade:
    """Whether the reference itself can be read: `correct` if so, else `unparseable_gold`.
    Curation drops what fails (an answer no grader can check is no training signal)."""
    gold = request.gold.strip()
    if not gold:
        return Grade("unparseable_gold", False, None, None, "empty")
    if request.answer_format in ("choice", "countdown", "rg") or (
        request.answer_format == "integer" and _as_int(gold) is not None
    ):
        return Grade("correct", True, gold, gold, "format")
    values = _values(_parse(gold))
    return Grade("correct" if values else "unparseable_gold", bool(values), gold, _canonical(values, gold), "parse")


def check_with_deadline(request: GradeRequest, timeout: float) -> Grade:
    """`check` under an interval timer; only valid in a main thread (workers, the CLI)."""
    return _under_deadline(check, request, timeout)


def readable_with_deadline(request: GradeRequest, timeout: float) -> Grade:
    return _under_deadline(readable, request, timeout)


def _under_deadline(fn, request: GradeRequest, timeout: float) -> Grade:
    _math_verify()  # before the timer: see the module docstring
    previous = signal.signal(signal.SIGALRM, _raise_deadline)
    try:
        # The alarm can land after fn returned, before the timer is stopped: the outer
        # `except` catches that too, so a deadline never escapes as an exception.
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            return fn(request)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Deadline:
        return _timed_out(request)
    except Exception as e:  # noqa: BLE001 - sympy raises many kinds on what it cannot evaluate or print
        # One answer sympy chokes on must not end a whole evaluation: like a check past its
        # deadline, it is a check that could not finish, and it says why.
        found = _extract(request).answer
        return Grade("timeout", False, found, None, f"error: {type(e).__name__}")
    finally:
        signal.signal(signal.SIGALRM, previous)


def _check_batch(check_fn, requests: list[GradeRequest], timeout: float) -> list[Grade]:
    return [check_fn(r, timeout) for r in requests]


class Grader:
    """Grades many answers in parallel, each bounded by `timeout` seconds.

    `workers=0` grades in the calling thread, which must be a main thread (signals); it is
    for small jobs and for comparison, and cannot stop a check stuck inside C code.
    """

    def __init__(self, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT, check_fn=None):
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.timeout = timeout
        self.check_fn = check_fn or check_with_deadline
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            from pebble import ProcessPool

            _math_verify()  # imported once here, inherited by every forked worker

            # fork, not spawn/forkserver: those re-import the caller's main module, which breaks
            # every script without an `if __name__ == "__main__"` guard. Workers touch no
            # threads of the parent (only sympy), which is what makes fork safe here.
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPool(max_workers=self.workers, context=context)
        return self._pool

    def grade(self, requests: Sequence[GradeRequest], progress=None) -> list[Grade]:
        if self.workers == 0:
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError("Grader(workers=0) needs the main thread; use workers >= 1 from threads")
            results = []
            for request in requests:
                results.append(self.check_fn(request, self.timeout))
                if progress:
                    progress(1)
            return results
        pool = self._get_pool()
        # Batches cut the per-task cost of the pool; a batch whose worker had to be killed is
        # redone one answer at a time, so that only the culprit is marked as timed out.
        size = max(1, min(BATCH, -(-len(requests) // (self.workers * 4))))
        batches = [list(requests[i : i + size]) for i in range(0, len(requests), size)]
        futures = [
            pool.submit(_check_batch, len(b) * self.timeout + KILL_GRACE, self.check_fn, b, self.timeout)
            for b in batches
        ]
        results = []
        for batch, future in zip(batches, futures):
            try:
                results.extend(future.result())
            except FutureTimeout:
                results.extend(self._one_by_one(pool, batch))
            if progress:
                progress(len(batch))
        return results

    def _one_by_one(self, pool, batch: list[GradeRequest]) -> list[Grade]:
        futures = [pool.submit(self.check_fn, self.timeout + KILL_GRACE, r, self.timeout) for r in batch]
        results = []
        for request, future in zip(batch, futures):
            try:
                results.append(future.result())
            except FutureTimeout:
                results.append(_timed_out(request))
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GradePair(BaseModel):
    """One line of `handful grade` input; other keys are kept and passed through."""

    model_config = ConfigDict(extra="allow")
    gold: str
    pred: str
    choices: list[str] | None = None
    format: AnswerFormat | None = None


def grade_file(input_path: str | Path, output_path: str | Path | None, workers: int, timeout: float) -> list[dict]:
    from tqdm.auto import tqdm

    pairs = [(n, parse_line(raw, GradePair, f"{input_path}:{n}")) for n, raw in iter_lines(input_path)]
    if not pairs:
        raise RecordError(f"{input_path}: file is empty, expected one JSON object per line")
    requests = [
        GradeRequest(
            p.pred, p.gold, p.format or ("choice" if p.choices else "math"), tuple(p.choices) if p.choices else None
        )
        for _, p in pairs
    ]
    with (
        tqdm(desc="grading", total=len(requests), unit="answer", leave=False, dynamic_ncols=True) as bar,
        Grader(workers=workers, timeout=timeout) as grader,
    ):
        grades = grader.grade(requests, progress=bar.update)
    rows = [
        {**p.model_dump(exclude_none=True), "outcome": g.outcome, "correct": g.correct, "extracted": g.extracted}
        for (_, p), g in zip(pairs, grades)
    ]
    if output_path is not None:
        write_jsonl(output_path, rows)
    return rows
