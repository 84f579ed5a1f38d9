"""The typed records that cross every stage boundary, and the one JSONL reader and writer.

Files are split on b"\\n" only: U+2028 and U+2029 are legal inside JSON strings and
str.splitlines() would cut a record in two at them.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from handful.errors import RecordError
from handful.files import redact, write_whole

log = logging.getLogger(__name__)

Outcome = Literal["correct", "partial", "incorrect", "no_answer", "unparseable_gold", "timeout"]
AnswerFormat = Literal["math", "integer", "choice", "countdown", "rg"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Record):
    id: str
    source: str
    question: str
    answer: str
    answer_format: AnswerFormat = "math"
    solution: str | None = None
    domain: str | None = None
    choices: list[str] | None = None  # the options (choice), or the numbers to use (countdown)
    trace: str | None = None  # step-by-step working that ends in the boxed answer (procedural tasks)
    # Provenance only (original ids, levels, urls), never behaviour.
    metadata: dict[str, Any] = Field(default_factory=dict)


class Posed(Record):
    """A problem as one benchmark of an eval run posed it: stored beside the samples, so that
    what reads the run (the report) never has to rebuild the benchmark."""

    benchmark: str
    problem: Problem


class Removal(Record):
    """A problem a curation stage took out, with why: the funnel's evidence."""

    id: str
    source: str
    stage: str
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    problem: Problem


class SamplingParams(Record):
    temperature: float = Field(default=0.0, ge=0, description="0: greedy")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, description="0: no limit")
    max_tokens: int = Field(default=1024, ge=1)
    seed: int = 0
    stop: list[str] = Field(default_factory=list)


class Budget(Record):
    min_thinking_tokens: int = Field(default=0, ge=0)
    max_thinking_tokens: int | None = Field(default=None, ge=0)
    max_waits: int = Field(default=0, ge=0, description="end-of-thinking attempts refused even after the minimum")
    continuation: str = "Wait"
    answer_prefix: str = "\n\nFinal Answer:"

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise ValueError(
                f"min_thinking_tokens ({self.min_thinking_tokens}) exceeds max_thinking_tokens ({self.max_thinking_tokens})"
            )
        return self

    def continuation_text(self, close: str) -> str:
        """The continuation as forced: on a line of its own, unless a line break would read
        as the end of thinking."""
        if not self.continuation or self.continuation[0].isspace():
            return self.continuation
        return (" " if "\n" in close else "\n") + self.continuation

    @property
    def active(self) -> bool:
        return self.min_thinking_tokens > 0 or self.max_thinking_tokens is not None or self.max_waits > 0

    def describe(self) -> str:
        """In words, for tables: "off", or the limits that are set."""
        if not self.active:
            return "off"
        parts = [f"at most {self.max_thinking_tokens} thinking tokens"] if self.max_thinking_tokens is not None else []
        if self.min_thinking_tokens:
            parts.append(f"at least {self.min_thinking_tokens}")
        if self.max_waits:
            parts.append(
                f"{self.max_waits} end{'s' if self.max_waits > 1 else ''} of thinking refused with {self.continuation!r}"
            )
        return "; ".join(parts)


class Generation(Record):
    problem_id: str
    benchmark: str | None = None
    sample_index: int = 0
    model: str
    engine: str = ""
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    budget: Budget | None = None  # the budget forcing that made it, if any
    prompt: str = ""
    text: str
    thinking: str | None = None
    answer_text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0
    finish_reason: str = "stop"
    waits: int = 0  # continuations forced by budget forcing
    forced_cut: bool = False  # thinking was ended by the budget, not by the model
    extracted: str | None = None
    canonical: str | None = None
    outcome: Outcome | None = None
    correct: bool | None = None
    grader: str | None = None  # grading.VERSION of the verdict; None: graded before versions were kept
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.benchmark or ''}/{self.problem_id}#{self.sample_index}"


R = TypeVar("R", bound=BaseModel)


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(record)"
        got = e.get("input")
        shown = "" if e["type"] == "missing" else f" (got {json.dumps(got, default=str)[:60]})"
        parts.append(f"field '{field}': {e['msg']}{shown}")
    return "; ".join(parts)


def _load_object(raw: bytes, where: str) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RecordError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise RecordError(f"{where}: malformed JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def parse_line(raw: bytes, model: type[R], where: str) -> R:
    data = _load_object(raw, where)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RecordError(f"{where}: {_describe(e)}") from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for every non-blank line of a JSONL file (.gz allowed)."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    if path.is_dir():
        raise RecordError(f"{path}: is a directory, expected a JSONL file")
    try:
        with _open_bytes(path) as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise RecordError(f"{path}: the compressed file is damaged or cut short ({e or type(e).__name__})") from None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip():
            yield number, raw


def read_dicts(path: str | Path, *, allow_empty: bool = False) -> Iterator[tuple[int, dict]]:
    """Raw JSON objects with their line numbers, for files in someone else's schema."""
    seen = False
    for number, raw in iter_lines(path):
        seen = True
        yield number, _load_object(raw, f"{path}:{number}")
    if not seen and not allow_empty:
        raise RecordError(f"{path}: file is empty, expected one JSON object per line")


def read_jsonl(path: str | Path, model: type[R], *, allow_empty: bool = False) -> list[R]:
    records = [parse_line(raw, model, f"{path}:{n}") for n, raw in iter_lines(path)]
    if not records and not allow_empty:
        raise RecordError(f"{path}: file is empty, expected one JSON object per line")
    return records


def dump_line(record: BaseModel | dict) -> bytes:
    """One record as a line, with every known secret removed (a server may echo a key back)."""
    text = record.model_dump_json() if isinstance(record, BaseModel) else json.dumps(record, ensure_ascii=False)
    return redact(text).encode("utf-8") + b"\n"


def unique_ids(problems: list[Problem], where: object) -> list[Problem]:
    """The problems, after checking that no id appears twice: results are keyed by id, so a
    duplicate would pair a question with another's answer or silently drop one."""
    seen: set[str] = set()
    twice = sorted({p.id for p in problems if p.id in seen or seen.add(p.id)})
    if twice:
        shown = ", ".join(map(repr, twice[:5])) + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        raise RecordError(f"{where}: problem id {shown} appears more than once; ids must be unique")
    return problems


def write_jsonl(path: str | Path, records: Iterable[BaseModel | dict]) -> int:
    """Write a whole file atomically (temp file + rename); returns the count."""
    count = 0

    def lines():
        nonlocal count
        for record in records:
            count += 1
            yield dump_line(record)

    write_whole(path, lines())
    return count


class RecordStore:
    """An append-only JSONL file of records that knows which keys are done.

    Each record is flushed and fsynced as it is added, so a killed process loses at most
    the line it was writing; reopening drops such a torn last line and resumes.
    """

    def __init__(self, path: str | Path, model: type[R], key: Callable[[Any], str], *, fsync: bool = True):
        self.path, self.model, self.key_of, self.fsync = Path(path), model, key, fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list = []
        self.duplicates: list[str] = []  # keys stored more than once (by an older, unlocked writer)
        self._keys: set[str] = set()
        if self.path.exists():
            self._load()
        self._file = open(self.path, "ab")  # noqa: SIM115 (held until close(): records are appended one by one)

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # Only the last line can be torn by a kill mid-write; cut it off so it is redone.
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
            log.warning("%s: dropped a torn last line (cut off mid-write by a stopped run)", self.path)
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if raw.strip():
                record = parse_line(raw, self.model, f"{self.path}:{number}")
                key = self.key_of(record)
                if key in self._keys:  # the first copy counts; later ones are reported, never scored twice
                    self.duplicates.append(key)
                    continue
                self._keys.add(key)
                self.records.append(record)
        if self.duplicates:
            log.warning(
                "%s: %d records stored more than once (first: %s); each is counted once",
                self.path,
                len(self.duplicates),
                self.duplicates[0],
            )

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record) -> None:
        key = self.key_of(record)
        if key in self._keys:
            raise ValueError(f"{self.path}: record {key!r} is already stored")
        self._file.write(dump_line(record))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._keys.add(key)
        self.records.append(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
