"""Reasoning Gym's generators as handful tasks: `dyn:rg/NAME?n=..&seed=..&SETTING=..` and
mixes of them, `dyn:rg-mix?tasks=a,b,c&n=..&seed=..` (optional: pip install 'handful[gym]').

reasoning-gym (Apache-2.0) has ~100 seeded generators, each with its settings and its own
verifier, `score_answer(answer, entry) -> float in [0, 1]`. handful poses their questions with
its own prompt, extracts the final answer as for any problem, and hands it to the dataset's
verifier (answer format "rg"). Only full credit (1.0) counts as correct: a partial score is
recorded as the outcome "partial" with the score beside it, so accuracy means the same thing
as for every other benchmark. These problems carry no step-by-step trace: handful's own
generators (`handful tasks`) remain the ones SFT and the program teacher work from.

A problem's metadata names everything needed to draw its entry again (dataset, settings, seed,
size, index), so a verifier can be rebuilt in a grader worker from the problem alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import typing
from typing import Any

from handful.errors import ConfigError
from handful.records import Problem

PREFIX, MIX = "rg/", "rg-mix"
FORMAT = "rg"
INSTALL = "pip install 'handful[gym]'"
# Settings every dataset has, which the spec sets through n and seed.
_OWN = ("seed", "size")


def available() -> bool:
    return importlib.util.find_spec("reasoning_gym") is not None


@functools.cache
def _registry() -> dict[str, tuple[type, type]]:
    if not available():
        raise ConfigError(f"reasoning-gym datasets (dyn:rg/...) need the reasoning-gym package: {INSTALL}")
    from reasoning_gym.factory import DATASETS

    return dict(DATASETS)


def names() -> list[str]:
    return sorted(_registry())


def dataset_name(name: str, spec: str) -> str:
    """`name` if reasoning-gym has it, else an error naming the nearest names."""
    if name in _registry():
        return name
    near = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else "; `handful tasks` lists them"
    raise ConfigError(f"benchmark {spec!r}: reasoning-gym has no dataset {name!r}{hint}")


def settings(name: str) -> list[dict]:
    """A dataset's settings (all but seed and size): name, type and default."""
    _, config = _registry()[name]
    found = []
    for f in dataclasses.fields(config):
        if f.name in _OWN:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        found.append({"name": f.name, "type": _type_text(f.type), "default": _plain(default)})
    return found


def _plain(value):
    """A default as JSON data: nested options as mappings, anything else as its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return str(value)


def _type_text(kind) -> str:
    return kind if isinstance(kind, str) else getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _hints(name: str) -> dict[str, Any]:
    _, config = _registry()[name]
    return typing.get_type_hints(config)


def _coerce(kind, raw: str):
    """`raw` (text from a spec) as a value of the setting's type, or ValueError."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Union or (origin is not None and type(None) in args):
        inner = [a for a in args if a is not type(None)]
        if raw.lower() in ("none", "null", ""):
            return None
        return _coerce(inner[0], raw)
    if origin is typing.Literal:
        if raw not in [str(a) for a in args]:
            raise ValueError(f"one of {', '.join(map(str, args))}")
        return next(a for a in args if str(a) == raw)
    if origin in (list, tuple) or kind in (list, tuple):
        item = args[0] if args else str
        values = [_coerce(item, part) for part in raw.split(",") if part != ""]
        return tuple(values) if origin is tuple or kind is tuple else values
    if kind is bool:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ValueError("true or false")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is str:
        return raw
    raise ValueError(f"a {_type_text(kind)}, which a spec cannot give")


def parse_settings(name: str, given: dict[str, str], spec: str) -> dict[str, Any]:
    """The settings a spec names, typed; an unknown or ill-typed one is an error that lists the valid ones."""
    hints = _hints(name)
    valid = [s["name"] for s in settings(name)]
    typed = {}
    for key, raw in given.items():
        if key not in valid:
            raise ConfigError(
                f"benchmark {spec!r}: {name} has no setting {key!r}; its settings: {', '.join(valid) or 'none'}"
            )
        try:
            typed[key] = _coerce(hints[key], raw)
        except ValueError as e:
            shown = str(e) if str(e) and not str(e).startswith("invalid literal") else _type_text(hints[key])
            raise ConfigError(f"benchmark {spec!r}: setting {key}={raw!r} must be {shown}") from None
    return typed


def _make(name: str, settings_: dict[str, Any], seed: int, size: int, spec: str):
    registry = _registry()
    dataset, config = registry[name]
    try:
        cfg = config(**settings_, seed=seed, size=size)
        if hasattr(cfg, "validate"):
            cfg.validate()
        return dataset(config=cfg)
    except (AssertionError, ValueError, TypeError) as e:
        raise ConfigError(f"benchmark {spec!r}: reasoning-gym refused these settings: {e}") from None


def problems(name: str, settings_: dict[str, Any], n: int, seed: int, spec: str) -> list[Problem]:
    """`n` entries of a dataset as handful problems."""
    data = _make(name, settings_, seed, n, spec)
    found = []
    for index in range(n):
        entry = data[index]
        rg = {"dataset": name, "settings": _jsonable(settings_), "seed": seed, "size": n, "index": index}
        found.append(
            Problem(
                id=f"rg-{name}-s{seed}-{index}",
                source=f"dyn:{PREFIX}{name}",
                question=entry["question"],
                answer=str(entry["answer"]),
                answer_format=FORMAT,
                domain=name,
                metadata={"rg": rg},
            )
        )
    return found


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def handle(problem: Problem) -> str | None:
    """What a grader needs to rebuild the problem's verifier, as text (None: not a gym problem)."""
    rg = problem.metadata.get("rg")
    return json.dumps(rg, sort_keys=True) if rg else None


@functools.lru_cache(maxsize=64)
def _dataset(name: str, settings_json: str, seed: int, size: int):
    hints = _hints(name)
    values = {
        k: tuple(v) if isinstance(v, list) and typing.get_origin(hints[k]) is tuple else v
        for k, v in json.loads(settings_json).items()
    }
    return _make(name, values, seed, size, f"dyn:{PREFIX}{name}")


def score(verifier: str, answer: str) -> float:
    """The dataset's own verdict on an answer, in [0, 1]."""
    rg = json.loads(verifier)
    data = _dataset(rg["dataset"], json.dumps(rg["settings"], sort_keys=True), rg["seed"], rg["size"])
    value = data.score_answer(answer, data[rg["index"]])
    return float(value or 0.0)


def listing() -> list[dict]:
    """Every dataset with its settings and defaults, for `handful tasks`."""
    return [{"name": f"rg/{name}", "settings": settings(name)} for name in names()]
