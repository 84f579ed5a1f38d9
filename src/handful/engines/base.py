"""What every engine shares: the request record, the Protocol, and turning a completion
into a Generation with its thinking split off and counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from handful.budget import Budget
from handful.extract import split_thinking
from handful.models import ModelSpec
from handful.records import Generation, Record, SamplingParams


class Prompt(Record):
    problem_id: str
    benchmark: str | None = None
    sample_index: int = 0
    text: str  # exactly what the model is conditioned on
    messages: list[dict[str, str]] | None = None  # the same prompt as chat turns, for chat endpoints


class Engine(Protocol):
    name: str

    def generate(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        progress: Callable[[list[Generation]], None] | None = None,
        budget: Budget | None = None,
    ) -> list[Generation]:
        """One Generation per prompt, in order; `progress` is called with each batch as it is
        done; `budget` (s1 budget forcing) controls how long the model thinks, where it applies."""
        ...

    def close(self) -> None: ...


def with_opener(text: str, spec: ModelSpec) -> str:
    """A completion as the whole response reads: when the prompt opened thinking (it ends with
    the opening delimiter), the completion starts inside the thinking, so the opener is put
    back in front; otherwise the completion is returned as it is."""
    return spec.think_open + text if spec.open_thinking else text


def thinking_split(text: str, spec: ModelSpec) -> tuple[str | None, str]:
    """(thinking, answer) of a completion; a prompt that opened thinking counts as open."""
    return split_thinking(with_opener(text, spec), spec.think_open, spec.think_close)


def thinking_token_count(token_texts: Callable[[int], str], total: int, text: str, spec: ModelSpec) -> int:
    """How many completion tokens make up the thinking text (the closing delimiter excluded).

    `token_texts(k)` decodes the first k tokens; the largest k whose text stays before the
    closing delimiter is found by bisection, so the count is exact in tokens, not estimated.
    """
    thinking, _ = thinking_split(text, spec)
    if thinking is None:
        return 0
    if spec.think_close not in text:
        return total  # never closed: everything was thinking
    end = text.index(spec.think_close)
    lo, hi = 0, total
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(token_texts(mid)) <= end:
            lo = mid
        else:
            hi = mid - 1
    return lo


def text_tokens(tokenizer, text: str) -> int:
    """Tokens of a text: the tokenizer's count, or about four characters a token without one."""
    if tokenizer is None:
        return max(1, round(len(text) / 4)) if text else 0
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def thinking_share(text: str, spec: ModelSpec) -> float:
    """The thinking's share of a completion's characters: how counts are split without a tokenizer."""
    thinking, _ = thinking_split(text, spec)
    return len(thinking) / max(1, len(text)) if thinking else 0.0


def count_tokens(tokenizer, text: str, spec: ModelSpec) -> tuple[int, int]:
    """(tokens, thinking tokens) of a completion: exact with a tokenizer; without one, the
    estimate of `text_tokens`, split by the thinking's share of the characters."""
    if tokenizer is None:
        total = text_tokens(None, text)
        return total, round(total * thinking_share(text, spec))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return len(ids), thinking_token_count(lambda k: tokenizer.decode(ids[:k]), len(ids), text, spec)


def make_generation(
    prompt: Prompt,
    text: str,
    *,
    model: str,
    engine: str,
    sampling: SamplingParams,
    spec: ModelSpec,
    prompt_tokens: int,
    completion_tokens: int,
    thinking_tokens: int,
    finish_reason: str,
    metadata: dict | None = None,
) -> Generation:
    thinking, answer = thinking_split(text, spec)
    return Generation(
        problem_id=prompt.problem_id,
        benchmark=prompt.benchmark,
        sample_index=prompt.sample_index,
        model=model,
        engine=engine,
        sampling=sampling,
        prompt=prompt.text,
        text=text,
        thinking=thinking,
        answer_text=answer,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        thinking_tokens=thinking_tokens,
        answer_tokens=completion_tokens - thinking_tokens,
        finish_reason=finish_reason,
        metadata=metadata or {},
    )
