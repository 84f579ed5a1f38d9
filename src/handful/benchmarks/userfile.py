"""Benchmarks from a user's own file or a hub dataset, with a field mapping.

    jsonl:path/to/file.jsonl?question=q&answer=a
    parquet:path/to/file.parquet?question=problem&answer_boxed=solution&format=math
    hf:owner/name?split=test&question=problem&answer=answer      (needs the `hub` extra, online)

Mapping keys: question, answer (or answer_boxed: a field whose last \\boxed{} is the answer),
id, solution, domain, choices (a list field: makes it multiple choice), format
(math | integer | choice), name (shown in reports; default: the file's stem).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl

from pydantic import ValidationError

from handful.errors import ConfigError, RecordError
from handful.extract import last_boxed
from handful.hub import hub_host, hub_reachable
from handful.records import Problem, read_dicts

MAPPING_KEYS = {"question", "answer", "answer_boxed", "id", "solution", "domain", "choices", "format", "name", "split"}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """'jsonl:path?k=v&...' -> ('jsonl', 'path', {k: v})."""
    scheme, _, rest = spec.partition(":")
    target, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - MAPPING_KEYS)
    if unknown:
        raise ConfigError(
            f"benchmark {spec!r}: unknown mapping key(s) {', '.join(unknown)}; known: {', '.join(sorted(MAPPING_KEYS))}"
        )
    if not target:
        raise ConfigError(f"benchmark {spec!r}: no path after '{scheme}:'")
    return scheme, target, params


def _problem(row: dict, index: int, where: str, params: dict[str, str], name: str) -> Problem:
    def field(key: str, default: str | None = None, required: bool = False):
        column = params.get(key, default)
        if column is None:
            return None
        if column not in row:
            if required:
                raise RecordError(f"{where}: field {column!r} ({key}) is missing; the row has {', '.join(sorted(row))}")
            return None
        return row[column]

    question = field("question", "question", required=True)
    if "answer_boxed" in params:
        answer = last_boxed(str(field("answer_boxed", required=True)))
        if answer is None:
            raise RecordError(f"{where}: field {params['answer_boxed']!r} (answer_boxed) has no \\boxed{{}} answer")
    else:
        answer = field("answer", "answer", required=True)
    choices = field("choices") if "choices" in params else None
    answer_format = params.get("format", "choice" if choices else "math")
    raw_id = field("id", "id")
    try:
        return Problem(
            id=str(raw_id if raw_id is not None else index),
            source=name,
            question=str(question),
            answer=str(answer).strip(),
            answer_format=answer_format,
            solution=field("solution", "solution"),
            domain=field("domain"),
            choices=[str(c) for c in choices] if choices else None,
        )
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise RecordError(f"{where}: {bad}") from None


def _hub_reachable(spec: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return  # a copy in the local cache is asked for
    if not hub_reachable():
        raise ConfigError(
            f"benchmark {spec!r}: the hub ({hub_host()}) cannot be reached from here; download the dataset elsewhere and "
            "use jsonl: or parquet:, or set HF_HUB_OFFLINE=1 to use a copy in the local cache"
        )


def load_file(spec: str) -> list[Problem]:
    scheme, target, params = parse_spec(spec)
    name = params.get("name") or Path(target).stem
    if scheme == "jsonl":
        rows = ((f"{target}:{n}", row) for n, row in read_dicts(target))
    elif scheme == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("parquet benchmarks need pyarrow: pip install 'handful[parquet]'") from None
        if not Path(target).is_file():
            raise RecordError(f"{target}: no such file")
        try:
            table = pq.read_table(target)
        except Exception as e:  # noqa: BLE001 (pyarrow raises several kinds for a file that is not parquet)
            raise RecordError(f"{target}: not a readable parquet file ({str(e).splitlines()[0]})") from None
        rows = ((f"{target}:row {i}", row) for i, row in enumerate(table.to_pylist()))
    elif scheme == "hf":
        try:
            import datasets
        except ImportError:
            raise ConfigError("hub benchmarks need datasets: pip install 'handful[hub]'") from None
        split = params.get("split", "test")
        _hub_reachable(spec)
        try:
            dataset = datasets.load_dataset(target, split=split)
        except Exception as e:  # noqa: BLE001 (offline, unknown dataset or split: the hub's errors vary)
            raise ConfigError(
                f"benchmark {spec!r}: the hub dataset could not be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                "offline, download it elsewhere and use jsonl: or parquet:"
            ) from None
        rows = ((f"{target}[{split}]:row {i}", row) for i, row in enumerate(dataset))
    else:
        raise ConfigError(f"benchmark {spec!r}: unknown scheme {scheme!r}; use jsonl:, parquet: or hf:")
    problems = [_problem(row, i, where, params, name) for i, (where, row) in enumerate(rows)]
    if not problems:
        raise RecordError(f"{target}: no problems in it")
    seen: dict[str, str] = {}
    for p in problems:
        if p.id in seen:
            raise RecordError(f"{target}: problem id {p.id!r} appears twice; map a unique field with id=...")
        seen[p.id] = p.id
    return problems
