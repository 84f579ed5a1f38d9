"""Budget forcing (s1): control how long a model thinks, one sequence at a time.

A `Forcer` is a small state machine that engines feed with what the model is about to do
and what it did; it answers with the tokens to force. It knows nothing of any engine.

- Before `min_thinking_tokens`, and for the first `max_waits` times in any case, an attempt
  to stop thinking (the end-of-thinking delimiter, or the end of the whole sequence) is
  refused: the `continuation` ("Wait") is forced instead, and the model thinks on.
- At `max_thinking_tokens` the end-of-thinking delimiter and the `answer_prefix` are forced,
  and the model must answer.
- There is one budget for all rounds: forced continuation tokens are thinking tokens, and a
  continuation that would not fit in what is left of the budget is not forced (the cut
  comes instead), so thinking never exceeds the maximum.
- An attempt to end the whole sequence while thinking, once no continuation is owed, is
  answered with the cut too, so that every sample ends with an answer part.
Thinking tokens are the tokens of the thinking text; the closing delimiter is not counted.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, model_validator

from handful.records import Record


class Budget(Record):
    min_thinking_tokens: int = Field(default=0, ge=0)
    max_thinking_tokens: int | None = Field(default=None, ge=0)
    max_waits: int = Field(default=0, ge=0, description="end-of-thinking attempts refused even after the minimum")
    continuation: str = "Wait"
    answer_prefix: str = "\n\nFinal Answer:"

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_thinking_tokens is not None and self.min_thinking_tokens > self.max_thinking_tokens:
            raise ValueError(
                f"min_thinking_tokens ({self.min_thinking_tokens}) exceeds max_thinking_tokens ({self.max_thinking_tokens})"
            )
        return self

    def continuation_text(self, close: str) -> str:
        """The continuation as forced: on a line of its own, unless a line break would read
        as the end of thinking."""
        if not self.continuation or self.continuation[0].isspace():
            return self.continuation
        return (" " if "\n" in close else "\n") + self.continuation

    @property
    def active(self) -> bool:
        return self.min_thinking_tokens > 0 or self.max_thinking_tokens is not None or self.max_waits > 0


THINKING, ANSWERING = "thinking", "answering"


class Forcer:
    """The state of one sequence. `encode` turns forced text into token ids."""

    def __init__(self, budget: Budget, encode: Callable[[str], list[int]], close: str, thinking: bool = True):
        self.budget, self.encode, self.close = budget, encode, close
        self.state = THINKING if thinking else ANSWERING
        self.thinking_tokens = 0
        self.waits = 0
        self.forced_cut = False
        self.queue: list[int] = []
        self._continuation = encode(budget.continuation_text(close)) if budget.continuation else []
        self._cut = encode(close + budget.answer_prefix)
        self._close = encode(close)

    def _owes_a_wait(self) -> bool:
        b = self.budget
        return self.thinking_tokens < b.min_thinking_tokens or self.waits < b.max_waits

    def _fits(self, tokens: int) -> bool:
        top = self.budget.max_thinking_tokens
        return top is None or self.thinking_tokens + tokens <= top

    def cut(self) -> None:
        """End thinking here: the closing delimiter and the answer prefix come next."""
        self.queue = list(self._cut)
        self.forced_cut = True
        self.state = ANSWERING

    def next_forced(self) -> int | None:
        """The token to force at this step, if any; then `observe` what was produced."""
        if self.state == THINKING and not self.queue and not self._fits(1):
            self.cut()
        return self.queue[0] if self.queue else None

    def attempt_stop(self, ending: bool) -> None:
        """The model is about to close its thinking (`ending`: to end the whole sequence)."""
        if self.state != THINKING or self.queue:
            return
        if self._owes_a_wait():
            if self._continuation and self._fits(len(self._continuation)):
                self.queue = list(self._continuation)
                self.waits += 1
            else:
                self.cut()
        elif ending:
            self.cut()  # it would end without an answer part: make it answer
        else:
            self.queue = list(self._close)  # a natural end of thinking, written by us in full
            self.state = ANSWERING

    def observe(self, token: int) -> None:
        """A token was produced at this step (forced or not)."""
        if self.queue and token == self.queue[0]:
            self.queue.pop(0)
            if self.state == THINKING:  # a forced continuation is thinking
                self.thinking_tokens += 1
        elif self.state == THINKING:
            self.thinking_tokens += 1
