"""Half precisions are used where this machine computes them quickly, and asking for one where
it would be emulated is a clear error that names the setting, raised before any model loads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from handful.cli import app
from handful.errors import ConfigError, EngineError
from handful.hardware import fast_on_cpu, slow_dtype, training_bf16

RUNNER = CliRunner()
BF16_FAST = fast_on_cpu("bfloat16")


def _eval(model, dtype: str, out, *extra: str):
    args = ["eval", "--model", str(model), "--benchmark", "dyn:addition?n=2", "--dtype", dtype, "--out", str(out)]
    return RUNNER.invoke(app, [*args, *extra])


def test_float32_is_always_fine():
    assert slow_dtype("float32", "cpu") is None and fast_on_cpu("float32")
    assert slow_dtype("bfloat16", "cuda") is None  # GPUs are checked by their own tools


def test_the_probe_agrees_with_a_measured_matmul():
    """bf16 counts as fast exactly when a bf16 matmul is not far slower than float32 here."""
    import time

    import torch

    def rate(dtype):
        a = torch.randn(512, 512, dtype=dtype)
        a @ a
        start = time.perf_counter()
        for _ in range(3):
            a @ a
        return 3 / (time.perf_counter() - start)

    ratio = rate(torch.bfloat16) / rate(torch.float32)
    assert (ratio > 0.5) == BF16_FAST, ratio


def test_bf16_is_used_where_fast_and_refused_where_emulated(tiny_model, tmp_path):
    """One test for both kinds of CPU, so that it runs (and can fail) on either."""
    from handful.engines.hf import HFEngine
    from handful.models import resolve

    if BF16_FAST:
        assert training_bf16(None) is True and training_bf16(False) is False
        assert HFEngine(resolve(str(tiny_model)), dtype="bfloat16").model.dtype.is_floating_point
        return
    with pytest.raises(EngineError, match="engine.dtype 'bfloat16'.*no bfloat16 units.*use float32"):
        HFEngine(resolve(str(tiny_model)), dtype="bfloat16")
    with pytest.raises(ConfigError, match="bf16: true"):
        training_bf16(True)
    assert training_bf16(None) is False and training_bf16(False) is False
    result = _eval(tiny_model, "bfloat16", tmp_path / "e")
    assert result.exit_code == 1 and "engine.dtype 'bfloat16'" in result.output


def test_an_unknown_dtype_names_the_choices(tmp_path):
    result = _eval("smollm2-135m", "float8", tmp_path / "e")
    assert result.exit_code == 1 and "engine.dtype" in result.output and "'float32'" in result.output


def test_auto_dtype_is_bf16_where_fast_and_the_record_names_what_ran(tiny_model, tmp_path):
    import json

    from handful.config import EngineConfig

    result = _eval(tiny_model, "auto", tmp_path / "e", "--max-tokens", "4")
    assert result.exit_code == 0, result.output
    ran = json.loads((tmp_path / "e" / "run.json").read_text())
    assert ran["config"]["engine"]["dtype"] == ran["fingerprint"]["engine"]["dtype"]
    assert ran["config"]["engine"]["dtype"] == ("bfloat16" if BF16_FAST else "float32")
    assert EngineConfig().dtype == ran["config"]["engine"]["dtype"]  # auto is the default
    assert EngineConfig(name="openai").dtype == "auto"  # a server chooses its own arithmetic
