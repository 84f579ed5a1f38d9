"""Which half precisions this machine computes quickly.

On a CPU, bfloat16 and float16 matrix products are fast only with the units made for them
(AMX, AVX512-BF16, AVX512-FP16). Without them PyTorch emulates the type: it still runs, but a
bf16 matmul can be a hundred times slower than float32 (0.3 against 85 GFLOP/s measured on
an AVX2-only CPU, see docs/PERFORMANCE.md). So a half precision is a default only where it
is fast, and asking for one where it is not is an error, not a silent slowdown.
"""

from __future__ import annotations

import functools
import logging

from handful.errors import ConfigError

log = logging.getLogger(__name__)

HALF = ("bfloat16", "float16")


def _cpu_units() -> dict[str, bool]:
    import torch

    cpu = torch.cpu

    def has(name: str) -> bool:
        check = getattr(cpu, name, None)  # private probes: absent in some builds
        return bool(check()) if check is not None else False

    return {
        "amx": has("_is_amx_tile_supported"),
        "avx512_bf16": has("_is_avx512_bf16_supported"),
        "amx_fp16": has("_is_amx_fp16_supported"),
    }


def cpu_description() -> str:
    import torch

    units = [name for name, present in _cpu_units().items() if present]
    return f"{torch.backends.cpu.get_cpu_capability()}" + (f" with {', '.join(units)}" if units else ", no AMX")


def fast_on_cpu(dtype: str) -> bool:
    """Whether this CPU has units for `dtype` (float32 always)."""
    units = _cpu_units()
    if dtype == "bfloat16":
        return units["amx"] or units["avx512_bf16"]
    if dtype == "float16":
        return units["amx_fp16"]
    return True


def slow_dtype(dtype: str, device: str) -> str | None:
    """Why `dtype` on `device` would be emulated, or None when it is fine."""
    if dtype not in HALF or device != "cpu" or fast_on_cpu(dtype):
        return None
    return (
        f"this CPU ({cpu_description()}) has no {dtype} units, so PyTorch would emulate {dtype} "
        f"at a small fraction of float32's speed; use float32"
    )


@functools.cache  # a recipe's configs are read more than once; the answer and its log line come once
def generation_dtype(device: str) -> str:
    """What `engine.dtype: auto` means here: bfloat16 where the device computes it quickly,
    float32 elsewhere. On a CPU with the units bf16 generation kept 97 % and 90 % of a trained
    model's greedy outputs byte for byte at 1.8x float32's speed (docs/PERFORMANCE.md)."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        chosen = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    else:
        chosen = "float32" if slow_dtype("bfloat16", "cpu") else "bfloat16"
    log.info("engine.dtype auto: %s on %s", chosen, cpu_description() if device == "cpu" else device)
    return chosen


def training_bf16(wanted: bool | None) -> bool:
    """bf16 mixed precision for training: as asked, or where it is fast when not asked.
    Asking for it on a CPU without bf16 units is an error."""
    import torch

    if torch.cuda.is_available():
        return wanted if wanted is not None else bool(torch.cuda.is_bf16_supported())
    reason = slow_dtype("bfloat16", "cpu")
    if wanted and reason:
        raise ConfigError(f"bf16: true, but {reason} (bf16: false)")
    if wanted is None and reason:
        log.info("training in float32: %s", reason.replace("; use float32", ""))
    return wanted if wanted is not None else reason is None
