"""Batches of similar length, in random order.

A padded batch costs its longest sample times its size: when short and long traces are drawn
together (3-digit additions of about 170 tokens beside subtractions of up to 290), about a
quarter of every step goes to padding. Here each epoch sorts the samples by length (ties
broken at random), cuts the sorted list into batches, and shuffles the order of the batches,
so a step pays for little padding and the order of the lengths still differs from epoch to
epoch. transformers' `group_by_length` sorts within mega-batches but leaves each one's
batches longest first, which would put the same kind of sample at the same point of every
quarter of an epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from torch.utils.data import Sampler


class SimilarLengths(Sampler[int]):
    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        # The trainer sets the epoch before iterating, also when it resumes mid-epoch and skips
        # the batches already trained: the order must come from the epoch alone.
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        if not self.lengths:
            return []
        rng = random.Random(f"{self.seed}/{self.epoch}")
        ties = [rng.random() for _ in self.lengths]
        order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], ties[i]))
        cut = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # The data loader cuts this stream into batches again, so a short batch must come last
        # or every batch after it would straddle two lengths.
        short = [cut.pop()] if len(cut[-1]) < self.batch_size else []
        rng.shuffle(cut)
        return cut + short

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return len(self.lengths)
