"""Configuration: pydantic models loaded from YAML recipes, then dotted CLI overrides.

Order: yaml.safe_load, then `key.sub=value` overrides (values parsed as YAML scalars), then
model validation, so overrides take the same checks as the file. Every bad field is reported
at once, by its dotted name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handful.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GradeConfig(Config):
    workers: int = Field(default=2, ge=0, description="grading processes; 0 grades in the main thread")
    timeout: float = Field(default=5.0, gt=0, description="seconds per answer, parsing and comparison together")


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw) if raw else ""
    return data


def load_config(model: type[M], path: str | Path | None = None, overrides: Iterable[str] = ()) -> M:
    where = str(path) if path else "options"
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{at}: not valid YAML: {getattr(e, 'problem', e)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"])
            hint = " (unknown setting: check its spelling)" if err["type"] == "extra_forbidden" else ""
            problems.append(f"{field}: {err['msg']}{hint}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
