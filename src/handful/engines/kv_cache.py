"""A KV cache that grows by doubling instead of concatenating at every step.

transformers' DynamicLayer does `torch.cat([keys, new], dim=-2)` per token, copying the
whole cache each step: quadratic in the length of the generation, and on a CPU the largest
single cost of decoding at batch 64 (more than the matrix products by the time the cache
holds a few hundred positions). This layer writes each new position into a buffer with
spare room and hands out views of the filled part, so a step copies only what is new.
Anything that replaces `keys` from outside (beam reordering, cropping) is noticed and the
buffer is rebuilt from it.
"""

from __future__ import annotations

from transformers.cache_utils import Cache, DynamicLayer


class GrowingLayer(DynamicLayer):
    MIN_CAPACITY = 256

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._view = None
        if self.keys is not self._view:
            self._rebuild(self.keys, self.values, key_states)
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if length + new > self._k.shape[-2]:
            self._rebuild(self.keys, self.values, key_states, capacity=2 * (length + new))
        self._k[..., length : length + new, :] = key_states
        self._v[..., length : length + new, :] = value_states
        self.keys = self._view = self._k[..., : length + new, :]
        self.values = self._v[..., : length + new, :]
        return self.keys, self.values

    def _rebuild(self, keys, values, like, capacity: int | None = None) -> None:
        length = keys.shape[-2] if keys.dim() == 4 else 0
        capacity = capacity or max(self.MIN_CAPACITY, 2 * length)
        shape = (*like.shape[:2], capacity, like.shape[-1])
        self._k, self._v = like.new_empty(shape), like.new_empty(shape)
        if length:
            self._k[..., :length, :] = keys
            self._v[..., :length, :] = values
        self.keys = self._view = self._k[..., :length, :]
        self.values = self._v[..., :length, :]


def growing_cache() -> Cache:
    return Cache(layer_class_to_replicate=GrowingLayer)
