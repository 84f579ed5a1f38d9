"""Procedural tasks: seeded generators of problems with exact answers and step-by-step traces.

Reasoning Gym's datasets join them as `dyn:rg/NAME` and `dyn:rg-mix` (`tasks/gym.py`), without traces.

Used three ways: as benchmarks drawn fresh for every seed (`dyn:addition?digits=12&n=200&seed=7`),
so a score cannot come from memorised test items; as out-of-domain probes (`dyn:probes`);
and as a teacher that is always right (the `program` engine), so the whole recipe runs on a
laptop.

A problem's id names everything needed to draw it again: `TASK-dDIFFICULTY-sSEED-INDEX`.
"""

from __future__ import annotations

import random
import secrets
from urllib.parse import parse_qsl, quote

from handful.errors import ConfigError, lookup
from handful.records import Problem
from handful.tasks import algebra, arithmetic, countdown, gym, word
from handful.tasks.core import Task, Worked, conclusion

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("addition", arithmetic.addition, "digits", 6, 1, 18, "arithmetic", "long addition of integers"),
        Task(
            "subtraction",
            arithmetic.subtraction,
            "digits",
            6,
            1,
            18,
            "arithmetic",
            "long subtraction of integers, negative results included",
        ),
        Task(
            "decimal-addition",
            arithmetic.decimal_addition,
            "digits",
            6,
            2,
            18,
            "arithmetic",
            "addition of decimals with different numbers of places",
        ),
        Task(
            "decimal-subtraction",
            arithmetic.decimal_subtraction,
            "digits",
            6,
            2,
            18,
            "arithmetic",
            "subtraction of decimals with different numbers of places",
        ),
        Task(
            "multiplication",
            arithmetic.multiplication,
            "digits",
            3,
            1,
            12,
            "arithmetic",
            "long multiplication (the second factor has half the digits)",
        ),
        Task(
            "remainder",
            arithmetic.remainder,
            "digits",
            6,
            2,
            30,
            "number theory",
            "the remainder of a long number divided by 3..99",
        ),
        Task(
            "linear",
            algebra.linear,
            "digits",
            1,
            1,
            4,
            "algebra",
            "a linear equation in one unknown (coefficient digits)",
        ),
        Task(
            "system",
            algebra.system,
            "digits",
            1,
            1,
            3,
            "algebra",
            "a 2×2 linear system with an integer solution (coefficient digits)",
        ),
        Task(
            "countdown",
            countdown.countdown,
            "numbers",
            4,
            2,
            6,
            "arithmetic",
            "reach a target with + - * / using each number once",
        ),
        Task(
            "gsm-template",
            word.template,
            "steps",
            3,
            1,
            6,
            "word problems",
            "GSM8K-style word problems with fresh names and numbers",
            mirrors="gsm8k",
        ),
        Task(
            "gsm-noise",
            word.template_noise,
            "steps",
            3,
            1,
            6,
            "word problems",
            "gsm-template with an irrelevant sentence added",
            mirrors="gsm8k",
        ),
    ]
}

# The out-of-domain probe set: several skills at several difficulties, interleaved.
PROBES: list[tuple[str, int]] = [
    ("addition", 4),
    ("addition", 10),
    ("decimal-addition", 6),
    ("subtraction", 8),
    ("multiplication", 2),
    ("multiplication", 4),
    ("remainder", 6),
    ("linear", 1),
    ("system", 1),
    ("countdown", 3),
    ("gsm-template", 2),
    ("gsm-noise", 3),
]

SCHEME = "dyn:"
DEFAULT_N = 100
MAX_N = 100_000  # drawn whole without a --limit; with one, only the sampled problems are drawn


def problem(task: str, difficulty: int, seed: int, index: int) -> Problem:
    """The `index`-th problem of a task at a difficulty and seed: the same arguments give the
    same problem on any machine (string seeds hash with SHA-512, not Python's salted hash)."""
    spec = lookup("task", TASKS, task)
    if seed < 0:
        raise ConfigError(f"task {task!r}: seed must be 0 or more, got {seed}")
    if not spec.lowest <= difficulty <= spec.highest:
        raise ConfigError(
            f"task {task!r}: {spec.knob} must be between {spec.lowest} and {spec.highest}, got {difficulty}"
        )
    worked = spec.make(random.Random(f"{task}/{difficulty}/{seed}/{index}"), difficulty)
    _check(task, worked)
    boxed = worked.boxed or worked.answer
    return Problem(
        id=f"{task}-d{difficulty}-s{seed}-{index}",
        source=f"{SCHEME}{task}",
        question=worked.question,
        answer=worked.answer,
        answer_format=worked.answer_format,
        choices=worked.operands,
        domain=spec.domain,
        trace="\n".join(worked.steps) + "\n" + conclusion(boxed),
        metadata={
            "task": task,
            spec.knob: difficulty,
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            **worked.facts,
        },
    )


def _check(task: str, worked: Worked) -> None:
    # A mismatch is a bug in a generator, never bad input: the problem must not be emitted.
    if worked.traced != worked.answer:
        raise AssertionError(f"task {task}: the trace arrives at {worked.traced!r} but the answer is {worked.answer!r}")
    if worked.answer_format == "countdown":
        ok, why = countdown.verify(worked.boxed or "", worked.operands or [], worked.answer)
        if not ok:
            raise AssertionError(f"task {task}: the traced expression {why}")


def regenerate(problem_id: str) -> Problem:
    """The problem an id names, drawn again (the program teacher works from ids alone)."""
    if problem_id.startswith("rg-"):
        raise ConfigError(
            f"problem {problem_id!r} comes from reasoning-gym, which writes no worked trace: the program teacher "
            "works on handful's own tasks (handful tasks); use a model as the teacher"
        )
    try:
        task, d, s, index = problem_id.rsplit("-", 3)
        if not (d.startswith("d") and s.startswith("s")):
            raise ValueError
        return problem(task, int(d[1:]), int(s[1:]), int(index))
    except (ValueError, KeyError):
        raise ConfigError(
            f"problem id {problem_id!r} was not made by a handful task (expected TASK-dDIFFICULTY-sSEED-INDEX)"
        ) from None


def sample(
    task: str, n: int, seed: int = 0, difficulty: int | None = None, indices: list[int] | None = None
) -> list[Problem]:
    """Problems 0..n-1 of a task (or only those at `indices`)."""
    chosen = range(n) if indices is None else indices
    if task == "probes":
        return [problem(PROBES[i % len(PROBES)][0], PROBES[i % len(PROBES)][1], seed, i) for i in chosen]
    spec = lookup("task", {**TASKS, "probes": None}, task)
    return [problem(task, spec.default if difficulty is None else difficulty, seed, i) for i in chosen]


def _gym(name: str) -> bool:
    return name.startswith(gym.PREFIX) or name == gym.MIX


def _parse_gym(spec: str, name: str, query: str) -> tuple[str, dict]:
    """`dyn:rg/DATASET?n=..&seed=..&SETTING=..` or `dyn:rg-mix?tasks=a,b&n=..&seed=..`: n and seed
    as integers, the settings as given (checked against the dataset here)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise ConfigError(f"benchmark {spec!r}: parameters must be written KEY=VALUE joined by '&'") from None
    params: dict = {}
    given: dict[str, str] = {}
    for key, value in pairs:
        if key in ("n", "size", "seed"):
            try:
                params["n" if key == "size" else key] = int(value)
            except ValueError:
                raise ConfigError(f"benchmark {spec!r}: {key} must be an integer, got {value!r}") from None
        else:
            given[key] = value
    if params.get("n", 1) < 1 or params.get("seed", 0) < 0:
        raise ConfigError(f"benchmark {spec!r}: n must be at least 1 and seed 0 or more")
    if name == gym.MIX:
        unknown = sorted(set(given) - {"tasks"})
        if unknown or not given.get("tasks"):
            raise ConfigError(f"benchmark {spec!r}: a mix takes tasks=a,b,c (reasoning-gym datasets), n and seed")
        for task in given["tasks"].split(","):
            gym.dataset_name(task, spec)
    else:
        gym.parse_settings(gym.dataset_name(name[len(gym.PREFIX) :], spec), given, spec)
    return name, {**given, **params}


def _setting(key: str, value: str) -> str:
    # Written back as a query reads it: a '+' would come back as a space.
    return f"{key}={quote(str(value), safe=',.-_:')}"


def _gym_settings(params: dict) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in ("n", "seed")}


def _load_gym(spec: str, name: str, params: dict, indices: list[int] | None) -> list[Problem]:
    n, seed = params.get("n", DEFAULT_N), params["seed"]
    if name == gym.MIX:
        # Interleaved, as dyn:probes: problem i is the (i // k)-th of task i % k, each task with its defaults.
        chosen = params["tasks"].split(",")
        each = -(-n // len(chosen))
        drawn = {task: gym.problems(task, {}, each, seed, spec) for task in chosen}
        found = [drawn[chosen[i % len(chosen)]][i // len(chosen)] for i in range(n)]
    else:
        dataset = name[len(gym.PREFIX) :]
        found = gym.problems(dataset, gym.parse_settings(dataset, _gym_settings(params), spec), n, seed, spec)
    return found if indices is None else [found[i] for i in indices]


def parse_spec(spec: str) -> tuple[str, dict[str, int]]:
    """`dyn:NAME?knob=V&n=N&seed=S` -> (NAME, {"difficulty", "n", "seed"} as given)."""
    body = spec[len(SCHEME) :]
    name, _, query = body.partition("?")
    if _gym(name):
        return _parse_gym(spec, name, query)
    task = None if name == "probes" else lookup("task", {**TASKS, "probes": None}, name)
    allowed = {"n", "seed", "difficulty"} | ({task.knob} if task else set())
    if task is None:
        allowed.discard("difficulty")
    params: dict[str, int] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise ConfigError(
            f"benchmark {spec!r}: parameters must be written KEY=VALUE joined by '&', e.g. n=50&seed=1"
        ) from None
    for key, value in pairs:
        if key not in allowed:
            raise ConfigError(
                f"benchmark {spec!r}: unknown parameter {key!r}; {name} takes {', '.join(sorted(allowed))}"
            )
        try:
            params["difficulty" if task and key == task.knob else key] = int(value)
        except ValueError:
            raise ConfigError(f"benchmark {spec!r}: parameter {key!r} must be an integer, got {value!r}") from None
    if params.get("n", 1) < 1:
        raise ConfigError(f"benchmark {spec!r}: n must be at least 1")
    if params.get("seed", 0) < 0:
        raise ConfigError(f"benchmark {spec!r}: seed must be 0 or more")
    if task and "difficulty" in params and not task.lowest <= params["difficulty"] <= task.highest:
        raise ConfigError(f"benchmark {spec!r}: {task.knob} must be between {task.lowest} and {task.highest}")
    return name, params


def canonical_spec(name: str, params: dict[str, int], with_seed: bool = True) -> str:
    task = TASKS.get(name)
    parts = [_setting(k, v) for k, v in sorted(_gym_settings(params).items())] if _gym(name) else []
    if task:
        parts.append(f"{task.knob}={params.get('difficulty', task.default)}")
    parts.append(f"n={params.get('n', DEFAULT_N)}")
    if with_seed and "seed" in params:
        parts.append(f"seed={params['seed']}")
    return f"{SCHEME}{name}?{'&'.join(parts)}"


def load(spec: str, indices: list[int] | None = None) -> list[Problem]:
    """The problems of a spec; with `indices` (a --limit's sample), only those."""
    name, params = parse_spec(spec)
    if "seed" not in params:
        raise ConfigError(f"benchmark {spec!r} has no seed; add &seed=N (handful eval draws a fresh one for you)")
    n = params.get("n", DEFAULT_N)
    if _gym(name):
        return _load_gym(spec, name, params, indices)
    if indices is None and n > MAX_N:
        raise ConfigError(
            f"benchmark {spec!r}: n={n} is more than {MAX_N} problems to draw; lower n or add --limit to take a sample"
        )
    return sample(name, n, params["seed"], params.get("difficulty"), indices=indices)


def short_name(spec: str) -> str:
    """The name results are filed under: the task and its difficulty, not n or the seed, so
    that runs over fresh seeds compare side by side."""
    name, params = parse_spec(spec)
    task = TASKS.get(name)
    if _gym(name):
        settings = "&".join(_setting(k, v) for k, v in sorted(_gym_settings(params).items()))
        return f"{SCHEME}{name}" + (f"?{settings}" if settings else "")
    return f"{SCHEME}{name}" + (f"?{task.knob}={params.get('difficulty', task.default)}" if task else "")


def with_seeds(specs: list[str], previous: list[str] | None = None) -> tuple[list[str], dict[str, int]]:
    """Every `dyn:` spec with a seed: the one given, else the one a previous run with the same
    spec drew (so a rerun resumes), else a fresh one. Returns (specs, the seeds drawn now)."""
    earlier = {}
    for old in previous or []:
        if old.startswith(SCHEME):
            name, params = parse_spec(old)
            if "seed" in params:
                earlier[canonical_spec(name, params, with_seed=False)] = params["seed"]
    out, drawn = [], {}
    for spec in specs:
        if not spec.startswith(SCHEME):
            out.append(spec)
            continue
        name, params = parse_spec(spec)
        if "seed" not in params:
            key = canonical_spec(name, params, with_seed=False)
            params["seed"] = earlier.get(key)
            if params["seed"] is None:
                params["seed"] = drawn[key] = secrets.randbelow(10**6)
        out.append(canonical_spec(name, params))
    return out, drawn
