"""Generation that lets finished rows leave the batch.

transformers' generate keeps every row of a batch until the longest one ends: a row that has
finished still runs through the model at every step, writing padding. On GSM8K at batch 64 that
was about a fifth of all row-steps (docs/PERFORMANCE.md). Here generate halts once a share of the
rows still running has finished; those rows leave the batch and its KV cache, and generate goes
on with the others from where it halted. The cache holds every position already computed, so
going on costs one call's setup and one copy of the cache, never a second prefill.
"""

from __future__ import annotations

import math

from transformers import StoppingCriteria, StoppingCriteriaList, StopStringCriteria

# Of the rows still running. A halt costs a copy of the cache and a new call; dropping fewer
# rows than this would not pay for it.
DROP_SHARE = 0.25


class Finished(StoppingCriteria):
    """Marks each row done at an end token or a stop string, and halts the whole call once
    `share` of its rows are done while others still run."""

    def __init__(self, stop_ids: set[int], stop_strings: list[str], tokenizer, rows: int, share: float | None, device):
        import torch

        self.stop_ids = torch.tensor(sorted(stop_ids), device=device)
        self.strings = StopStringCriteria(tokenizer, stop_strings) if stop_strings else None
        self.done = torch.zeros(rows, dtype=torch.bool, device=device)
        self.enough = max(1, math.ceil(share * rows)) if share is not None else rows
        self.halted = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        hit = torch.isin(input_ids[:, -1], self.stop_ids)
        if self.strings is not None:
            hit |= self.strings(input_ids, scores)
        self.done |= hit
        if self.enough <= int(self.done.sum()) < len(self.done):
            self.halted = True
            return torch.ones_like(self.done)
        return self.done.clone()


def generate(model, encoded: dict, kwargs: dict, *, stop_ids, stop_strings, tokenizer, cache, forcing=None):
    """Every row's new token ids, as one `model.generate(**encoded, **kwargs)` would make them.
    Without a `cache` to carry over (models that keep transformers' own), it is that one call."""
    import torch

    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    running = list(range(ids.shape[0]))  # the original row of each row in the batch
    new: list[list[int]] = [[] for _ in running]
    left = kwargs["max_new_tokens"]
    while running and left > 0:
        share = DROP_SHARE if cache is not None else None
        finished = Finished(stop_ids, stop_strings, tokenizer, len(running), share, ids.device)
        extra = {"cache": cache} if cache is not None else {}
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            stopping_criteria=StoppingCriteriaList([finished]),
            **{**kwargs, "max_new_tokens": left},
            **extra,
        )
        made = out.shape[1] - ids.shape[1]
        for i, row in enumerate(running):
            new[row] += out[i, ids.shape[1] :].tolist()
        left -= made
        if not finished.halted:
            break
        keep = [i for i, done in enumerate(finished.done.tolist()) if not done]
        index = torch.tensor(keep, device=out.device)
        cache.batch_select_indices(index)
        if forcing is not None:
            forcing.select(keep)
        running = [running[i] for i in keep]
        ids = out[index]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], made)], dim=1)[index]
    return new
