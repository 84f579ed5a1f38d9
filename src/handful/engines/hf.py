"""The transformers engine: batched generation with left padding and the KV cache, on CPU or GPU.

Prompts are sorted by length so that a batch wastes little on padding; they are tokenized
without adding special tokens, because the rendered prompt already holds them, so the
logged prompt text is exactly what the model saw. Token counts come from the token ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from handful.budget import Budget
from handful.engines.base import Prompt, make_generation, thinking_token_count
from handful.engines.hf_rows import generate as generate_rows
from handful.engines.kv_cache import growing_cache
from handful.errors import ConfigError, EngineError
from handful.hardware import slow_dtype
from handful.models import ResolvedModel
from handful.records import Generation, SamplingParams

# int8: float32 weights loaded, then every Linear layer quantized to int8 weights with int8
# activations computed on the fly (dynamic quantization; CPU only).
DTYPES = ("float32", "bfloat16", "float16", "int8")


def load_model(path: str, dtype: str, device: str = "cpu", trust_remote_code: bool = False):
    """A causal LM in one of DTYPES, on `device`, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype == "int8" and device != "cpu":
        raise EngineError(f"engine.dtype 'int8' is dynamic quantization for the CPU; {device} needs another dtype")
    weights = torch.float32 if dtype == "int8" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=weights, trust_remote_code=trust_remote_code, use_safetensors=True
    )
    model.to(device).eval()
    if dtype == "int8":
        model = _int8(model)
    return model


def _int8(model):
    import warnings

    import torch

    with warnings.catch_warnings():
        # torch.ao's eager quantization warns that it is moving to torchao; it is still what runs here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def weight_bytes(model) -> int:
    """What the weights take in memory, quantized ones included (their int8 values and scales)."""
    import torch

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.int_repr().nbytes + 8 if value.is_quantized else value.nbytes
        if isinstance(value, (tuple, list)):
            return sum(size(v) for v in value)
        return 0

    # Tied weights (the embedding and the LM head) are one tensor, counted once.
    seen, total = set(), 0
    for value in model.state_dict(keep_vars=False).values():
        key = value.data_ptr() if isinstance(value, torch.Tensor) and not value.is_quantized else id(value)
        if key not in seen:
            seen.add(key)
            total += size(value)
    return total


def _batch_seed(seed: int, first: Prompt) -> int:
    # A batch's sampling depends on its first request, not on how many ran before it.
    digest = hashlib.sha256(f"{seed}/{first.benchmark}/{first.problem_id}/{first.sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class HFEngine:
    name = "hf"

    def __init__(
        self,
        model: ResolvedModel,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 16,
        trust_remote_code: bool = False,
        tokenizer=None,
    ):
        import torch
        from transformers import AutoTokenizer

        if dtype not in DTYPES:
            raise EngineError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        self.device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        slow = slow_dtype(dtype, self.device)
        if slow:
            raise EngineError(f"engine.dtype {dtype!r}: {slow}")
        self.model_name, self.spec, self.batch_size = model.name, model.spec, batch_size
        self.torch = torch
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model.path, trust_remote_code=trust_remote_code)
            self.model = load_model(model.path, dtype, self.device, trust_remote_code)
        except (OSError, ValueError) as e:
            raise EngineError(f"model {model.name!r} could not be loaded from {model.path}: {e}") from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Models with sliding-window layers keep transformers' own cache, which knows them.
        self.growing_cache = "sliding_attention" not in (getattr(self.model.config, "layer_types", None) or [])
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.stop_ids = {i for i in [*eos, self.tokenizer.eos_token_id] if i is not None}

    def _run_batch(self, batch: list[Prompt], sampling: SamplingParams, budget: Budget | None) -> list[Generation]:
        torch = self.torch
        encoded = self.tokenizer([p.text for p in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        width = encoded["input_ids"].shape[1]
        sample = sampling.temperature > 0
        kwargs = dict(
            max_new_tokens=sampling.max_tokens,
            do_sample=sample,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.stop_ids),
        )
        if sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
            torch.manual_seed(_batch_seed(sampling.seed, batch[0]))
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        stop = [*self.spec.stop, *sampling.stop]
        forcing = None
        if budget is not None and budget.active:
            from transformers import LogitsProcessorList

            from handful.engines.hf_budget import BudgetProcessor

            forcing = BudgetProcessor(
                budget, self.tokenizer, self.spec.think_close, len(batch), width, self.stop_ids, stop
            )
            kwargs["logits_processor"] = LogitsProcessorList([forcing])
        forcers = list(forcing.forcers) if forcing is not None else []
        with torch.inference_mode():
            rows = generate_rows(
                self.model,
                encoded,
                kwargs,
                stop_ids=self.stop_ids,
                stop_strings=stop if forcing is None else [],  # the forcer ends the answer at a stop string
                tokenizer=self.tokenizer,
                cache=growing_cache() if self.growing_cache else None,
                forcing=forcing,
            )
        results = []
        for row, prompt in enumerate(batch):
            ids = rows[row]
            ended = next((i for i, t in enumerate(ids) if t in self.stop_ids), None)
            ids = ids if ended is None else ids[:ended]
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            stopped = ended is not None or any(text.endswith(s) for s in stop)
            thinking = thinking_token_count(lambda k: self.tokenizer.decode(ids[:k]), len(ids), text, self.spec)  # noqa: B023
            generation = make_generation(
                prompt,
                text,
                model=self.model_name,
                engine=self.name,
                sampling=sampling,
                spec=self.spec,
                prompt_tokens=int(encoded["attention_mask"][row].sum()),
                completion_tokens=len(ids),
                thinking_tokens=thinking,
                finish_reason="stop" if stopped else "length",
                metadata={"token_counts": "token ids"},
            )
            if forcing is not None:
                forcer = forcers[row]
                generation = generation.model_copy(
                    update={"budget": budget, "waits": forcer.waits, "forced_cut": forcer.forced_cut}
                )
            results.append(generation)
        return results

    def generate(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        progress: Callable[[list[Generation]], None] | None = None,
        budget: Budget | None = None,
    ) -> list[Generation]:
        if budget is not None and budget.active and not self.spec.open_thinking:
            raise ConfigError("budget forcing needs prompts that open thinking: set prompt.open_thinking=true")
        lengths = [len(self.tokenizer(p.text, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        results: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            done = self._run_batch([prompts[i] for i in index], sampling, budget)
            results.update(zip(index, done))
            if progress:
                progress(done)
        return [results[i] for i in range(len(prompts))]

    def close(self) -> None:
        self.model = None
