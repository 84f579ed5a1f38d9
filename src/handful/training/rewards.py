"""Rewards for RL with verifiable answers, built on the same grader as evaluation, and the
monitors that catch reward hacking while it happens.

- accuracy: 1 when the graded answer is correct, else 0; with `require_closed_thinking`
  (DeepScaleR) the answer must come after the end of thinking, so an answer hidden in an
  unfinished thought earns nothing;
- format: 1 when thinking is closed (if the model thinks) and a \\boxed{} answer follows;
- overlong: DAPO's soft penalty, 0 up to `limit - buffer` tokens, falling linearly to -1
  at the limit.

Monitors (logged, never rewarded): the share of completions with the format but not the
answer, and the share that repeat themselves (one token 4-gram making up a fifth of the text).
"""

from __future__ import annotations

from collections import Counter

from handful.engines.base import with_opener
from handful.grading import GradeRequest, check_with_deadline
from handful.models import ModelSpec


def _text(completion) -> str:
    # Conversational prompts give [{"role": "assistant", "content": ...}]; plain ones a string.
    return completion[0]["content"] if isinstance(completion, list) else completion


def repeats(ids: list[int], n: int = 4, share: float = 0.2) -> bool:
    grams = Counter(tuple(ids[i : i + n]) for i in range(len(ids) - n + 1))
    return bool(grams) and max(grams.values()) * n >= share * len(ids) and len(ids) >= 8 * n


class Rewards:
    """One callable for TRL: the weighted sum of the rewards, each also logged apart."""

    __name__ = "reward"

    def __init__(
        self,
        spec: ModelSpec,
        weights: dict[str, float],
        limit: int,
        buffer: int,
        *,
        require_closed_thinking: bool = False,
        timeout: float = 5.0,
    ):
        unknown = sorted(set(weights) - {"accuracy", "format", "overlong"})
        if unknown:
            from handful.errors import ConfigError

            raise ConfigError(f"rewards: unknown reward(s) {', '.join(unknown)}; known: accuracy, format, overlong")
        self.spec, self.weights, self.limit, self.buffer = spec, weights, limit, buffer
        self.require_closed_thinking, self.timeout = require_closed_thinking, timeout

    def parts(
        self, text: str, tokens: int, gold: str, answer_format: str, choices, verifier: str | None = None
    ) -> dict[str, float]:
        full = with_opener(text, self.spec)
        closed = self.spec.think_close in full
        grade = check_with_deadline(
            GradeRequest(
                full,
                gold,
                answer_format,
                tuple(choices) if choices else None,
                (self.spec.think_open, self.spec.think_close),
                verifier=verifier or None,
            ),
            self.timeout,
        )
        after_thinking = not grade.method.endswith("@thinking")
        thinks = self.spec.think_open in full
        accurate = (
            grade.correct
            and (after_thinking or not self.require_closed_thinking)
            and (closed or not (thinks and self.require_closed_thinking))
        )
        answer_part = full.split(self.spec.think_close, 1)[1] if closed else ("" if thinks else full)
        formatted = "\\boxed{" in answer_part
        soft_start = self.limit - self.buffer
        overlong = (
            0.0
            if tokens <= soft_start
            else (-1.0 if tokens >= self.limit else (soft_start - tokens) / max(self.buffer, 1))
        )
        return {"accuracy": float(accurate), "format": float(formatted), "overlong": overlong}

    def __call__(
        self,
        prompts=None,
        completions=None,
        completion_ids=None,
        answer=None,
        answer_format=None,
        choices=None,
        verifier=None,
        log_metric=None,
        **_,
    ):
        rows = [
            self.parts(_text(c), len(ids), gold, fmt or "math", ch, v)
            for c, ids, gold, fmt, ch, v in zip(
                completions,
                completion_ids,
                answer,
                answer_format or ["math"] * len(completions),
                choices or [None] * len(completions),
                verifier or [None] * len(completions),
            )
        ]
        if log_metric is not None and rows:
            for name in ("accuracy", "format", "overlong"):
                log_metric(f"rewards_parts/{name}", sum(r[name] for r in rows) / len(rows))
            log_metric(
                "monitor/format_without_accuracy", sum(r["format"] and not r["accuracy"] for r in rows) / len(rows)
            )
            log_metric("monitor/repetition", sum(repeats(list(ids)) for ids in completion_ids) / len(rows))
        return [sum(self.weights.get(name, 0.0) * value for name, value in r.items()) for r in rows]
