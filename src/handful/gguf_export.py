"""A checkpoint as a GGUF file for llama.cpp, in a chosen quantization.

The metadata (architecture, hyperparameters, tokenizer, chat template) comes from a template
GGUF of the same architecture: the GGUF the model, or the model it was fine-tuned from,
shipped as. The weights come from the safetensors checkpoint itself, named as llama.cpp names
them (gguf-py's tensor map) and, for the query and key projections, permuted into the rotary
layout llama.cpp expects. One-dimensional tensors (norms) stay float32, as llama.cpp's own
converter keeps them; every matrix is written in the chosen type with gguf-py's quantizers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from handful.errors import ConfigError

log = logging.getLogger(__name__)

# Types gguf-py quantizes whose blocks (32 values) divide the rows of small models; the
# k-quants need rows of 256, which SmolLM2's 576 are not.
QTYPES = ("F32", "F16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
COARSE = ("Q5_1", "Q5_0", "Q4_1", "Q4_0")


def _field(reader, name: str):
    field = reader.fields.get(name)
    if field is None:
        raise ConfigError(f"{reader.data.filename}: no {name} in this GGUF")
    return field.contents()


def _rotary_layout(weights, heads: int):
    """Query/key rows as llama.cpp's rotary embedding pairs them (HF interleaves halves)."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _checkpoint(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{folder}: no safetensors weights to write as GGUF")
    weights = {}
    for f in files:
        weights.update({k: v.float().numpy() for k, v in load_file(f).items()})
    return weights


def write_gguf(checkpoint: str | Path, template: str | Path, target: str | Path, qtype: str) -> Path:
    """Write `checkpoint`'s weights in `qtype` with `template`'s metadata to `target`."""
    import gguf
    import numpy as np

    if qtype not in QTYPES:
        raise ConfigError(f"GGUF type {qtype!r}: use one of {', '.join(QTYPES)}")
    checkpoint, target = Path(checkpoint), Path(target)
    reader = gguf.GGUFReader(template)
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ConfigError(f"{template}: a {arch} GGUF; only llama-architecture models are written here")
    heads, kv_heads = _field(reader, "llama.attention.head_count"), _field(reader, "llama.attention.head_count_kv")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, _field(reader, "llama.block_count"))
    weights = {}
    for name, value in _checkpoint(checkpoint).items():
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            continue
        if name.endswith("q_proj.weight"):
            value = _rotary_layout(value, heads)
        elif name.endswith("k_proj.weight"):
            value = _rotary_layout(value, kv_heads)
        weights[mapped] = value
    missing = [t.name for t in reader.tensors if t.name not in weights]
    if missing:
        raise ConfigError(f"{checkpoint}: no weights for {', '.join(missing[:5])} of {template}'s layout")
    kind = gguf.GGMLQuantizationType[qtype]
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", "general.file_type"):
            continue  # written by the writer, or set below
        kind_of = field.types[0]
        sub = field.types[-1] if kind_of == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind_of, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType["ALL_F32" if qtype == "F32" else f"MOSTLY_{qtype}"])
    tied = "output.weight" not in weights
    for t in reader.tensors:
        value = np.ascontiguousarray(weights[t.name], dtype=np.float32)
        # A tied embedding is also the output layer: like llama.cpp's quantizer, keep it at 8 bits.
        own = gguf.GGMLQuantizationType.Q8_0 if tied and t.name == "token_embd.weight" and qtype in COARSE else kind
        if value.ndim == 1 or qtype == "F32":
            writer.add_tensor(t.name, value)
        elif qtype == "F16":
            writer.add_tensor(t.name, value.astype(np.float16))
        else:
            writer.add_tensor(t.name, gguf.quants.quantize(value, own), raw_dtype=own)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(target)  # whole, or not there
    log.info("wrote %s (%s, %.0f MiB)", target, qtype, target.stat().st_size / 2**20)
    return target
