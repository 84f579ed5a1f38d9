"""Budget forcing inside transformers' generate: a logits processor that forces tokens.

One `Forcer` per row of the batch. Rows hit their limits at different steps; the batch, its
KV cache and everything already generated stay as they are: a forced token is simply the
only token the row may take at that step, so nothing is prefilled again.

While a row thinks, the first token of the closing delimiter, every token whose text holds
the whole delimiter, and the end-of-sequence tokens are never left to chance: when one of
them is the model's most likely next token, the row "wants to stop" and its Forcer decides
(a continuation, the closing delimiter, or the cut); otherwise they are masked, so that
sampling cannot slip one through either. A delimiter of one character, such as a line break,
sits inside many tokens (" \n", ".\n", "\n\n"), and any of them would close the thinking
unseen. The delimiter is always written by the Forcer, in full, which keeps the count of
thinking tokens exact.
"""

from __future__ import annotations

import functools

from transformers import LogitsProcessor

from handful.budget import ANSWERING, THINKING, Budget, Forcer


@functools.lru_cache(maxsize=8)
def closing_tokens(tokenizer, close: str) -> frozenset[int]:
    """Every token id whose text holds `close` (a scan of the vocabulary, once per tokenizer)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, text in enumerate(texts) if close in text)


class BudgetProcessor(LogitsProcessor):
    def __init__(
        self,
        budget: Budget,
        tokenizer,
        close: str,
        rows: int,
        prompt_width: int,
        stop_ids: set[int],
        stop_strings: list[str],
    ):
        def encode(text: str) -> list[int]:
            return tokenizer(text, add_special_tokens=False)["input_ids"]

        self.forcers = [Forcer(budget, encode, close) for _ in range(rows)]
        self.closing = sorted(closing_tokens(tokenizer, close) | {encode(close)[0]})
        self.stop_ids = sorted(stop_ids)
        self.stop_strings, self.tokenizer = stop_strings, tokenizer
        self.width = prompt_width
        self.ended = [False] * rows

    def select(self, rows: list[int]) -> None:
        """Keeps the state of these rows only, when the others leave the batch (`hf_rows.py`);
        the Forcer objects themselves are kept, so a caller holding them still reads them."""
        self.forcers = [self.forcers[i] for i in rows]
        self.ended = [self.ended[i] for i in rows]

    def _hit_stop_string(self, ids) -> bool:
        # Stop strings end the answer, never the thinking: checked here instead of by generate.
        tail = self.tokenizer.decode(ids[-16:].tolist())
        return any(tail.endswith(s) for s in self.stop_strings)

    def __call__(self, input_ids, scores):
        generated = input_ids.shape[1] - self.width
        tops = scores.argmax(dim=-1).tolist()
        blocked = [*self.closing, *self.stop_ids]
        for row, forcer in enumerate(self.forcers):
            if generated > 0 and not self.ended[row]:
                last = int(input_ids[row, -1])
                if last in self.stop_ids:
                    self.ended[row] = True
                else:
                    forcer.observe(last)
            if self.ended[row]:
                continue
            if forcer.state == THINKING and not forcer.forcing and tops[row] in blocked:
                forcer.attempt_stop(ending=tops[row] in self.stop_ids)
            forced = forcer.next_forced()
            if (
                forced is None
                and forcer.state == ANSWERING
                and self.stop_strings
                and generated > 0
                and self._hit_stop_string(input_ids[row])
            ):
                forced = self.stop_ids[0]
            if forced is not None:
                scores[row, :] = float("-inf")
                scores[row, forced] = 0.0
            elif forcer.state == THINKING:
                scores[row, blocked] = float("-inf")
        return scores
