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
from handful.engines.kv_cache import growing_cache
from handful.errors import ConfigError, EngineError
from handful.hardware import slow_dtype
from handful.models import ResolvedModel
from handful.records import Generation, SamplingParams

DTYPES = ("float32", "bfloat16", "float16")


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
        from transformers import AutoModelForCausalLM, AutoTokenizer

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
            self.model = AutoModelForCausalLM.from_pretrained(
                model.path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code, use_safetensors=True
            )
        except (OSError, ValueError) as e:
            raise EngineError(f"model {model.name!r} could not be loaded from {model.path}: {e}") from None
        self.model.to(self.device).eval()
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
        elif stop:
            kwargs.update(stop_strings=stop, tokenizer=self.tokenizer)
        if self.growing_cache:
            kwargs["cache"] = growing_cache()
        with torch.inference_mode():
            out = self.model.generate(**encoded, **kwargs)
        results = []
        for row, prompt in enumerate(batch):
            ids = out[row, width:].tolist()
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
                forcer = forcing.forcers[row]
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
