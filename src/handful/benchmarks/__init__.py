"""The benchmark registry: one dict from name to loader, and one way to resolve a spec.

A spec is a registered name (`math500`), a procedural task drawn fresh
(`dyn:addition?digits=12&n=200&seed=7`, see `handful.tasks`), a user file or hub dataset with a field mapping
(`jsonl:path?question=q&answer=a`, see `userfile`), or `gpqa_diamond` with a path the user
supplies, or a JSONL file of Problem records (`problems.jsonl`). `--limit` subsets are drawn here, seeded, so that runs stay comparable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from handful import tasks
from handful.benchmarks import builtin, userfile
from handful.errors import ConfigError, lookup
from handful.records import Problem, read_jsonl, unique_ids

BENCHMARKS: dict[str, Callable[[], list[Problem]]] = {
    "math500": builtin.math500,
    "aime24": builtin.aime24,
    "aime25": builtin.aime25,
    "amc23": builtin.amc23,
    "gsm8k": builtin.gsm8k,
    "minerva": builtin.minerva,
    "olympiadbench": builtin.olympiadbench,
    "math": builtin.math_test,
}

# Loaded from a file the user gives, never shipped.
USER_SUPPLIED: dict[str, Callable[[str | Path], list[Problem]]] = {
    "gpqa_diamond": builtin.gpqa_diamond,
}

FILE_SCHEMES = ("jsonl:", "parquet:", "hf:")


class BenchmarkInfo(BaseModel):
    name: str
    count: int | None
    source: str
    license: str


def load_benchmark(
    spec: str, data: str | Path | None = None, limit: int | None = None, limit_seed: int = 0
) -> list[Problem]:
    """The problems of a spec, ids checked unique. With a `limit`, a procedural benchmark draws
    only the problems that `subset` will take, so `n` can be huge."""
    return unique_ids(_load(spec, data, limit, limit_seed), f"benchmark {spec}")


def check_scheme(spec: str, kind: str = "benchmark") -> None:
    """A spec that starts like `scheme:` names one handful knows; `csv:x.jsonl` is not a file path."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):", spec)
    if scheme and f"{scheme.group(1)}:" not in (*FILE_SCHEMES, tasks.SCHEME) and not Path(spec).exists():
        raise ConfigError(
            f"{kind} {spec!r}: unknown scheme {scheme.group(1)!r}; use jsonl:, parquet:, hf: or dyn:, or a plain path"
        )


def _load(spec: str, data: str | Path | None, limit: int | None, limit_seed: int) -> list[Problem]:
    check_scheme(spec)
    if spec.startswith(FILE_SCHEMES):
        return userfile.load_file(spec)
    if spec.startswith(tasks.SCHEME):
        count = tasks.parse_spec(spec)[1].get("n", tasks.DEFAULT_N)
        return tasks.load(spec, indices=subset_indices(count, limit, limit_seed) if limit else None)
    if spec.endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(spec, Problem)  # Problem records: `handful tasks sample`, `handful curate`
    if spec in USER_SUPPLIED:
        if data is None:
            raise ConfigError(f"benchmark {spec!r} is not shipped with handful; give its file with --data PATH")
        return USER_SUPPLIED[spec](data)
    return lookup("benchmark", {**BENCHMARKS, **USER_SUPPLIED}, spec)()


def benchmark_name(spec: str) -> str:
    """The short name results are filed under."""
    if spec.startswith(FILE_SCHEMES):
        _, target, params = userfile.parse_spec(spec)
        return params.get("name") or Path(target).stem
    if spec.startswith(tasks.SCHEME):
        return tasks.short_name(spec)
    if spec.endswith((".jsonl", ".jsonl.gz")):
        return Path(spec).name.removesuffix(".gz").removesuffix(".jsonl")
    return spec


def subset_indices(count: int, limit: int | None, seed: int = 0) -> list[int]:
    """Which of `count` problems a `limit` takes: fixed by the seed, in the benchmark's own order."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))


def subset(problems: list[Problem], limit: int | None, seed: int = 0) -> list[Problem]:
    """A fixed, seeded sample of `limit` problems, in the benchmark's own order."""
    return [problems[i] for i in subset_indices(len(problems), limit, seed)]


def list_benchmarks(data: str | Path | None = None) -> list[BenchmarkInfo]:
    infos = []
    for name, loader in BENCHMARKS.items():
        source, license_ = builtin.SOURCES[name]
        infos.append(BenchmarkInfo(name=name, count=len(loader()), source=source, license=license_))
    infos.append(
        BenchmarkInfo(
            name="gpqa_diamond",
            count=len(builtin.gpqa_diamond(data)) if data else None,
            source="user-supplied file (--data PATH); not shipped at its authors' request",
            license="CC BY 4.0 (GPQA)",
        )
    )
    infos.append(
        BenchmarkInfo(
            name="dyn:TASK",
            count=None,
            source=f"procedural, drawn fresh per seed: {', '.join(tasks.TASKS)}, probes (see `handful tasks`)",
            license="Apache-2.0 (handful)",
        )
    )
    return infos
