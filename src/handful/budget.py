"""Budget forcing (s1): control how long a model thinks, one sequence at a time.

A `Forcer` is a small state machine that engines feed with what the model is about to do
and what it did; it answers with the tokens to force (token by token, in a decoding loop) or
the text to send back (piece by piece, over a server). It knows nothing of any engine.

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
The budget itself, `Budget`, is a record (`handful.records`): every Generation it made carries it.
"""

from __future__ import annotations

from collections.abc import Callable

from handful.records import Budget

THINKING, ANSWERING = "thinking", "answering"
_CONTINUATION, _CLOSE, _CUT = "continuation", "close", "cut"  # what a Forcer can owe


class Forcer:
    """The state of one sequence: one state machine, which engines drive in either of two ways.

    - Token by token, inside a decoding loop (`handful.engines.hf_budget`): ask `next_forced`
      at every step, call `attempt_stop` when the model would stop thinking, and `observe`
      every token produced. `encode` turns forced text into the token ids to force.
    - Piece by piece, over a server that answers with whole pieces of text
      (`Forcer.over_text`): `add_thinking` the tokens of each piece, then `cut` or
      `attempt_stop`; forced text comes back whole from `take_continuation` and `take`, to be
      sent back with the text so far. A server is sent text, so only token counts are
      needed there (`count`), never token ids.

    `attempt_stop`, `cut` and the counts (`thinking_tokens`, `waits`, `forced_cut`) are the
    same either way, so both engines force by the same rules and record the same numbers.
    """

    def __init__(
        self,
        budget: Budget,
        encode: Callable[[str], list[int]] | None,
        close: str,
        thinking: bool = True,
        *,
        count: Callable[[str], int] | None = None,
    ):
        if (encode is None) == (count is None):
            raise TypeError("a Forcer takes `encode` (token by token) or `count` (piece by piece), one of them")
        self.budget, self.encode, self.close = budget, encode, close
        self.state = THINKING if thinking else ANSWERING
        self._thinking_tokens = 0
        self.waits = 0
        self.forced_cut = False
        self.queue: list[int] = []  # token by token: the forced ids still to come
        self._owed: str | None = None  # piece by piece: what is owed, until it is taken
        self._texts = {
            _CONTINUATION: budget.continuation_text(close) if budget.continuation else "",
            _CLOSE: close,
            _CUT: close + budget.answer_prefix,
        }
        self._ids: dict[str, list[int]] = {}
        if encode is not None:
            self._ids = {
                _CONTINUATION: encode(self._texts[_CONTINUATION]) if budget.continuation else [],
                _CLOSE: encode(close),
                _CUT: encode(close + budget.answer_prefix),
            }
            self._continuation_tokens = len(self._ids[_CONTINUATION])
        else:
            self._continuation_tokens = count(self._texts[_CONTINUATION]) if budget.continuation else 0

    @classmethod
    def over_text(cls, budget: Budget, count: Callable[[str], int], close: str, thinking: bool = True) -> Forcer:
        """A Forcer driven piece by piece: `count(text)` is how many tokens a text is."""
        return cls(budget, None, close, thinking, count=count)

    @property
    def thinking_tokens(self) -> int:
        """Tokens of thinking so far, forced continuations included; the closing delimiter is not counted."""
        return self._thinking_tokens

    @property
    def forcing(self) -> bool:
        """Forced text is owed and not all written yet: the model is not free to choose."""
        return bool(self.queue) or self._owed is not None

    def _owes_a_wait(self) -> bool:
        b = self.budget
        return self._thinking_tokens < b.min_thinking_tokens or self.waits < b.max_waits

    def _fits(self, tokens: int) -> bool:
        top = self.budget.max_thinking_tokens
        return top is None or self._thinking_tokens + tokens <= top

    def _force(self, kind: str) -> None:
        if self.encode is not None:
            self.queue = list(self._ids[kind])
        else:
            self._owed = kind

    def _cut_when_full(self) -> None:
        if self.state == THINKING and not self.forcing and not self._fits(1):
            self.cut()

    def _driven(self, by_tokens: bool) -> None:
        if (self.encode is not None) != by_tokens:
            way = "token by token" if self.encode is not None else "piece by piece (Forcer.over_text)"
            raise TypeError(f"this Forcer is driven {way}")

    def cut(self) -> None:
        """End thinking here: the closing delimiter and the answer prefix come next."""
        self._force(_CUT)
        self.forced_cut = True
        self.state = ANSWERING

    def attempt_stop(self, ending: bool) -> None:
        """The model is about to close its thinking (`ending`: to end the whole sequence)."""
        if self.state != THINKING or self.forcing:
            return
        if self._owes_a_wait():
            if self._continuation_tokens and self._fits(self._continuation_tokens):
                self._force(_CONTINUATION)
                self.waits += 1
            else:
                self.cut()
        elif ending:
            self.cut()  # it would end without an answer part: make it answer
        else:
            self._force(_CLOSE)  # a natural end of thinking, written by us in full
            self.state = ANSWERING

    # ---- token by token -------------------------------------------------------------------

    def next_forced(self) -> int | None:
        """The token to force at this step, if any; then `observe` what was produced."""
        self._driven(by_tokens=True)
        self._cut_when_full()
        return self.queue[0] if self.queue else None

    def observe(self, token: int) -> None:
        """A token was produced at this step (forced or not)."""
        self._driven(by_tokens=True)
        if self.queue and token == self.queue[0]:
            self.queue.pop(0)
            if self.state == THINKING:  # a forced continuation is thinking
                self._thinking_tokens += 1
        elif self.state == THINKING:
            self._thinking_tokens += 1

    # ---- piece by piece -------------------------------------------------------------------

    def add_thinking(self, tokens: int) -> None:
        """The model wrote a piece of thinking, `tokens` tokens long (a server's whole answer to
        one request). Then say why it stopped: `cut` at a token limit, else `attempt_stop`."""
        self._driven(by_tokens=False)
        self._thinking_tokens += tokens

    def owed(self) -> str | None:
        """The forced text owed now, if any, left in place. As `next_forced` does, thinking with
        no room left for one more token is cut first, so None means: let the model think on."""
        self._driven(by_tokens=False)
        self._cut_when_full()
        return None if self._owed is None else self._texts[self._owed]

    def take(self) -> str:
        """The forced text owed, whole, as though written now ("" if nothing is owed): a
        continuation counts as thinking; the closing delimiter (and the answer prefix after a
        cut) does not."""
        self._driven(by_tokens=False)
        kind, self._owed = self._owed, None
        if kind is None:
            return ""
        if kind == _CONTINUATION:
            self._thinking_tokens += self._continuation_tokens
        return self._texts[kind]

    def take_continuation(self) -> str:
        """The continuation owed after a refused stop, taken as by `take`; "" if what is owed is
        not a continuation: the end of thinking is left for `take`, once thinking is over."""
        return self.take() if self._owed == _CONTINUATION else ""
