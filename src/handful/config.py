"""Configuration: pydantic models loaded from YAML recipes, then dotted CLI overrides.

Order: yaml.safe_load, then `key.sub=value` overrides (values parsed as YAML scalars), then
model validation, so overrides take the same checks as the file. Every bad field is reported
at once, by its dotted name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from handful.budget import Budget
from handful.errors import ConfigError
from handful.records import SamplingParams

M = TypeVar("M", bound=BaseModel)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GradeConfig(Config):
    workers: int = Field(default=2, ge=0, description="grading processes; 0 grades in the main thread")
    timeout: float = Field(default=5.0, gt=0, description="seconds per answer, parsing and comparison together")


class EngineConfig(Config):
    name: Literal["hf", "openai", "program"] = "hf"
    # hf
    dtype: Literal["float32", "bfloat16", "float16", "int8", "auto"] = Field(
        default="auto",
        description="auto: bfloat16 where the device computes it quickly, else float32 (decided when the config is "
        "read, so records name the dtype that ran); int8: Linear layers dynamically quantized, on the CPU",
    )
    device: str = "cpu"
    batch_size: int = Field(default=16, ge=1)
    trust_remote_code: bool = False
    # openai
    base_url: str | None = None
    served_model: str | None = Field(default=None, description="the model's name on the server; default: --model")
    api_key_env: str | None = Field(default=None, description="NAME of the environment variable holding the key")
    endpoint: Literal["auto", "completions", "chat"] = "auto"
    concurrency: int = Field(default=8, ge=1)
    max_retries: int = Field(default=8, ge=0)
    request_timeout: float = Field(
        default=900.0, gt=0, description="seconds to wait for one answer (long reasoning takes minutes)"
    )
    timeout_retries: int = Field(
        default=1, ge=0, description="retries after a request got no answer in time; a stalled server is rarely back"
    )
    requests_per_minute: float | None = Field(default=None, gt=0, description="client-side limit for hosted APIs")
    tokens_per_minute: float | None = Field(default=None, gt=0, description="client-side limit for hosted APIs")

    @model_validator(mode="after")
    def _decide_auto_dtype(self):
        if self.dtype == "auto" and self.name == "hf":  # the other engines choose their own arithmetic
            from handful.hardware import generation_dtype

            self.dtype = generation_dtype(self.device)
        return self


class PromptConfig(Config):
    """Overrides of the model's own prompt settings (see models.ModelSpec)."""

    system_prompt: str | None = None
    open_thinking: bool | None = None
    think_open: str | None = None
    think_close: str | None = None

    def overrides(self) -> dict:
        return self.model_dump(exclude_none=True)


class EvalConfig(Config):
    model: str = "smollm2-135m"
    benchmarks: list[str] = Field(default_factory=lambda: ["gsm8k"], min_length=1)
    data: str | None = Field(default=None, description="file for benchmarks handful does not ship (gpqa_diamond)")
    limit: int | None = Field(default=None, ge=1)
    limit_seed: int = Field(default=0, description="which subset --limit takes; apart from the sampling seed")
    n: int = Field(default=1, ge=1, description="samples per problem")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    budget: Budget = Field(default_factory=Budget, description="budget forcing; any limit makes prompts open thinking")
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    grade: GradeConfig = Field(default_factory=GradeConfig)

    def fingerprint(self) -> dict:
        """The settings that decide what the samples are; a run directory keeps to one."""
        return {
            "model": self.model,
            "benchmarks": self.benchmarks,
            "data": self.data,
            "limit": self.limit,
            "limit_seed": self.limit_seed,
            "n": self.n,
            "sampling": self.sampling.model_dump(),
            "budget": self.budget.model_dump(),
            "prompt": self.prompt.model_dump(),
            "engine": {k: getattr(self.engine, k) for k in ("name", "dtype", "served_model", "endpoint")},
        }


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
        try:
            node[leaf] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as e:
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({getattr(e, 'problem', None) or e}); quote it"
            ) from None
    return data


def read_yaml(path: str | Path) -> dict:
    """A YAML file of settings as a mapping; every way it can be wrong named with the file."""
    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML file")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{at}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_config(
    model: type[M], path: str | Path | None = None, overrides: Iterable[str] = (), data: dict | None = None
) -> M:
    """Settings from a YAML file (or `data` already read from it), then dotted overrides."""
    where = str(path) if path else "options"
    if data is not None:
        data = dict(data)
    elif path is not None:
        data = read_yaml(path)
    else:
        data = {}
    data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"])
            hint = " (unknown setting: check its spelling)" if err["type"] == "extra_forbidden" else ""
            problems.append(f"{field}: {err['msg']}{hint}" if field else f"{err['msg']}{hint}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
