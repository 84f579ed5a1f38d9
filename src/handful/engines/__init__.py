"""The engine registry. An engine is a config value, not a command: `engine.name`."""

from __future__ import annotations

from handful.config import EngineConfig
from handful.engines.base import Engine, Prompt
from handful.errors import ConfigError
from handful.models import ResolvedModel


def _hf(model: ResolvedModel, cfg: EngineConfig, tokenizer=None) -> Engine:
    from handful.engines.hf import HFEngine

    return HFEngine(
        model,
        dtype=cfg.dtype,
        device=cfg.device,
        batch_size=cfg.batch_size,
        trust_remote_code=cfg.trust_remote_code,
        tokenizer=tokenizer,
    )


def _openai(model: ResolvedModel, cfg: EngineConfig, tokenizer=None) -> Engine:
    from handful.engines.server import OpenAIEngine

    if not cfg.base_url:
        raise ConfigError("engine.base_url: the openai engine needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    endpoint = cfg.endpoint if cfg.endpoint != "auto" else ("completions" if tokenizer is not None else "chat")
    return OpenAIEngine(
        model.name,
        model.spec,
        base_url=cfg.base_url,
        served_model=cfg.served_model,
        api_key_env=cfg.api_key_env,
        endpoint=endpoint,
        tokenizer=tokenizer,
        concurrency=cfg.concurrency,
        max_retries=cfg.max_retries,
        request_timeout=cfg.request_timeout,
        timeout_retries=cfg.timeout_retries,
        requests_per_minute=cfg.requests_per_minute,
        tokens_per_minute=cfg.tokens_per_minute,
    )


def _program(model: ResolvedModel, cfg: EngineConfig, tokenizer=None) -> Engine:
    from handful.engines.program import ProgramEngine

    return ProgramEngine(model, tokenizer)


ENGINES = {"hf": _hf, "openai": _openai, "program": _program}

__all__ = ["ENGINES", "Engine", "Prompt", "load_tokenizer"]


def load_tokenizer(model: ResolvedModel, trust_remote_code: bool = False):
    """The model's tokenizer when it can be had locally, else None (a remote-only model)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from handful.hub import hub_reachable

    local = Path(model.path).is_dir()
    if not local and model.path.count("/") != 1:
        return None  # a name only a server knows: nothing to load, and no hub to ask
    try:
        return AutoTokenizer.from_pretrained(
            model.path, trust_remote_code=trust_remote_code, local_files_only=not local and not hub_reachable()
        )
    except (OSError, ValueError):
        return None
