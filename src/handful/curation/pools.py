"""Problem pools to curate from: the shipped ones by name, procedural tasks (`dyn:...`),
a JSONL file of Problem records, and any JSONL/parquet/hub source with a field mapping
(`jsonl:file?question=q&answer=a`).

The shipped pools are gzip copies of public files; `data/NAME/SOURCE.md` says where each
came from and under which license. Omni-MATH-Rule is itself a benchmark: curating from
it contaminates any Omni-MATH evaluation.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from handful.benchmarks import FILE_SCHEMES, check_scheme, load_benchmark, userfile
from handful.benchmarks.builtin import gsm8k_problems
from handful.errors import ConfigError, lookup
from handful.extract import last_boxed
from handful.records import Problem, read_dicts

DATA = Path(__file__).parent / "data"


def math_train() -> list[Problem]:
    # The answer is the last \boxed{} of the solution; one without leaves the answer empty
    # for validation to report, rather than failing the whole pool.
    return [
        Problem(
            id=f"math-train-{r['source_file'].removeprefix('train/').removesuffix('.json').replace('/', '-')}",
            source="math-train",
            question=r["problem"],
            answer=last_boxed(r["solution"]) or "",
            solution=r["solution"],
            domain=r["type"],
            metadata={"level": r["level"], "source_file": r["source_file"]},
        )
        for _, r in read_dicts(DATA / "math_train" / "pool.jsonl.gz")
    ]


def aime() -> list[Problem]:
    with gzip.open(DATA / "aime" / "pool.json.gz", "rt", encoding="utf-8") as f:
        rows = json.load(f)
    return [
        Problem(
            id=f"aime-{r['year']}-{r['aime_number']}-{r['problem_number']}",
            source="aime",
            question=r["problem"],
            answer=str(int(r["answer"])),
            answer_format="integer",
            solution=r["solution"],
            metadata={"year": r["year"], "difficulty": r["difficulty"]},
        )
        for r in rows
    ]


def omni_math() -> list[Problem]:
    problems = []
    for number, r in read_dicts(DATA / "omni_math_rule" / "pool.jsonl.gz"):
        # "Mathematics -> Algebra -> Inequalities": the second level is the domain.
        domains = [d.split(" -> ") for d in r["domain"]]
        problems.append(
            Problem(
                id=f"omni-{number - 1}",
                source="omni-math",
                question=r["problem"],
                answer=r["answer"],
                solution=r["solution"],
                domain=domains[0][1] if domains and len(domains[0]) > 1 else None,
                metadata={"difficulty": r["difficulty"], "competition": r["source"], "domains": r["domain"]},
            )
        )
    return problems


def gsm8k_train() -> list[Problem]:
    return gsm8k_problems(read_dicts(DATA / "gsm8k_train" / "pool.jsonl.gz"), "gsm8k-train")


POOLS: dict[str, Callable[[], list[Problem]]] = {
    "math-train": math_train,
    "aime": aime,
    "omni-math": omni_math,
    "gsm8k-train": gsm8k_train,
}

# name: (source, license), in full in data/NAME/SOURCE.md
SOURCES: dict[str, tuple[str, str]] = {
    "math-train": (
        "MATH train split (Hendrycks et al. 2021), via aiwaves-cn/agents@e8c4e3c",
        "MIT (MATH); Apache-2.0 (repository)",
    ),
    "aime": (
        "AIME 1983-2023 from DeepScaleR's training data (agentica-project), AoPS wiki",
        "MIT (repository); problems (c) MAA",
    ),
    "omni-math": ("Omni-MATH-Rule (Gao et al. 2024), rule-gradable subset of Omni-MATH", "Apache-2.0 (Omni-MATH)"),
    "gsm8k-train": ("openai/grade-school-math@3101c7d grade_school_math/data/train.jsonl (Cobbe et al. 2021)", "MIT"),
}


def pool_source(spec: str) -> tuple[str, str]:
    """(source, license) of a pool spec, for the manifest."""
    from handful import tasks

    if spec in SOURCES:
        return SOURCES[spec]
    if spec.startswith(tasks.SCHEME):
        return (
            f"procedural generator {tasks.parse_spec(spec)[0]} (handful.tasks), drawn from the spec's seed",
            "Apache-2.0 (handful)",
        )
    return f"user file {spec}", "as given by its owner"


def load_pool(spec: str) -> list[Problem]:
    from handful import tasks

    check_scheme(spec, "pool")
    if spec.startswith(FILE_SCHEMES):
        return userfile.load_file(spec)
    if spec.startswith(tasks.SCHEME):
        name, params = tasks.parse_spec(spec)
        n = params.get("n", tasks.DEFAULT_N)
        if n > tasks.MAX_N:
            raise ConfigError(f"pool {spec!r}: n={n} is more than {tasks.MAX_N} problems to draw; lower n")
        return tasks.load(tasks.canonical_spec(name, {**params, "seed": params.get("seed", 0)}))
    if spec.endswith((".jsonl", ".jsonl.gz")):
        return load_benchmark(spec)  # Problem records, e.g. from `handful tasks sample`
    return lookup("pool", POOLS, spec)()
