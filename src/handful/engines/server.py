"""The engine for any OpenAI-compatible server: vLLM `serve`, SGLang, llama.cpp's server, hosted APIs.

`/v1/completions` takes the rendered prompt as raw text (the same text the `hf` engine
sees); `/v1/chat/completions` takes chat turns, for servers whose model has no local
tokenizer. Requests run concurrently up to a bound. One retry policy covers every transient
failure (429 and 5xx answers, time-outs, dropped connections, garbled JSON): exponential
backoff with jitter, or the server's Retry-After when it gives one. The API key is read
from an environment variable whose *name* is configured, so the key itself is never in a
config, a manifest or a log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable

from handful.budget import Budget, Forcer
from handful.engines.base import Prompt, count_tokens, make_generation, text_tokens, thinking_share
from handful.engines.limits import RateLimiter
from handful.errors import ConfigError, EngineError
from handful.models import ModelSpec
from handful.records import Generation, SamplingParams

RETRY_STATUS = {408, 409, 429}
log = logging.getLogger(__name__)


def _retry_after(error) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class NotACompletion(Exception):
    """A 200 answer without the completion it should hold: retrying the same request will not help."""


def _choice(response):
    choices = getattr(response, "choices", None)
    if not choices:
        raise NotACompletion(f"the server answered without a completion (no choices in {str(response)[:120]!r})")
    return choices[0]


def _transient(error: Exception) -> bool:
    import openai

    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRY_STATUS or error.status_code >= 500
    # Time-outs, refused or dropped connections, and bodies that are not the JSON promised.
    return isinstance(error, (openai.APIConnectionError, openai.APIResponseValidationError, ValueError))


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        model_name: str,
        spec: ModelSpec,
        *,
        base_url: str,
        served_model: str | None = None,
        api_key_env: str | None = None,
        endpoint: str = "completions",
        tokenizer=None,
        concurrency: int = 8,
        max_retries: int = 8,
        request_timeout: float = 900.0,
        timeout_retries: int = 1,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ):
        if endpoint not in ("completions", "chat"):
            raise ConfigError(f"engine.endpoint {endpoint!r}: use 'completions' or 'chat'")
        api_key = "none"
        if api_key_env:
            api_key = os.environ.get(api_key_env, "")
            if not api_key:
                raise ConfigError(f"engine.api_key_env: the environment variable {api_key_env} is not set")
        self.model_name, self.spec, self.endpoint, self.tokenizer = model_name, spec, endpoint, tokenizer
        self.served_model = served_model or model_name
        self.base_url, self.api_key = base_url, api_key
        self.concurrency, self.max_retries, self.request_timeout = concurrency, max_retries, request_timeout
        self.timeout_retries = timeout_retries
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute)

    def _params(self, sampling: SamplingParams, prompt: Prompt) -> dict:
        params = dict(
            model=self.served_model,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
        )
        stop = [*self.spec.stop, *sampling.stop]
        if stop:
            params["stop"] = stop[:4]  # the OpenAI API takes at most four
        if sampling.temperature > 0:
            params["seed"] = sampling.seed * 1_000_003 + prompt.sample_index
        if sampling.top_k:
            params["extra_body"] = {"top_k": sampling.top_k}
        return params

    async def _request(self, client, prompt: Prompt, sampling: SamplingParams, text: str | None = None, **override):
        params = {**self._params(sampling, prompt), **override}
        await self.limiter.acquire()
        if self.endpoint == "completions":
            response = await client.completions.create(prompt=prompt.text if text is None else text, **params)
            self.limiter.spend(getattr(response.usage, "total_tokens", 0) or 0)
            choice = _choice(response)
            return choice.text or "", choice.finish_reason, response.usage
        response = await client.chat.completions.create(messages=prompt.messages, **params)
        self.limiter.spend(getattr(response.usage, "total_tokens", 0) or 0)
        choice = _choice(response)
        message = choice.message
        if message is None:
            raise NotACompletion("the server answered with a choice that holds no message")
        text = message.content or ""
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        if reasoning:  # reasoning models that return their thinking in a separate field
            text = f"{self.spec.think_open}{reasoning}{self.spec.think_close}{text}"
        return text, choice.finish_reason, response.usage

    async def _with_retries(
        self, client, prompt: Prompt, sampling: SamplingParams, text: str | None = None, **override
    ):
        import openai

        stalls = 0
        for attempt in range(self.max_retries + 1):
            try:
                return (*(await self._request(client, prompt, sampling, text, **override)), attempt)
            except Exception as error:  # noqa: BLE001 (classified right below)
                if not _transient(error):
                    raise EngineError(f"{self.base_url}: request for {prompt.problem_id} failed: {error}") from None
                stalled = isinstance(error, openai.APITimeoutError)
                stalls += stalled
                if stalled:
                    error = f"no answer within {self.request_timeout:g} s (engine.request_timeout)"
                    log.warning("%s: %s for %s (attempt %d)", self.base_url, error, prompt.problem_id, attempt + 1)
                # A server that stalls once is often stuck: time-outs are retried fewer times than errors.
                if attempt == self.max_retries or stalls > self.timeout_retries:
                    raise EngineError(
                        f"{self.base_url}: giving up on {prompt.problem_id} after {attempt + 1} attempts: {error}"
                    ) from None
                wait = _retry_after(error)
                if wait is None:
                    wait = min(self.backoff_cap, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(wait)

    def _tokens(self, text: str, usage=None) -> int:
        """Tokens of a piece of text: the tokenizer's count, as the record will state it.
        The server's count is the fallback only: it includes a matched stop string that the
        text leaves out."""
        counted = getattr(usage, "completion_tokens", None) if usage is not None else None
        if self.tokenizer is None and counted is not None:
            return counted
        return text_tokens(self.tokenizer, text)

    async def _with_budget(self, client, prompt: Prompt, sampling: SamplingParams, budget: Budget):
        """s1's budget forcing as continuation requests, decided by the same Forcer as in the
        `hf` engine, one piece of text at a time: the text so far is sent back each round, so
        servers with prefix caching (vLLM, SGLang, llama.cpp) reuse the prompt."""
        top = (
            sampling.max_tokens
            if budget.max_thinking_tokens is None
            else min(budget.max_thinking_tokens, sampling.max_tokens)
        )
        # Thinking cannot outgrow the sample's token limit, as in the hf engine.
        bounded = budget.model_copy(update={"max_thinking_tokens": top})
        # Driven piece by piece: each round's text is counted, and forced text is sent back whole.
        forcer = Forcer.over_text(bounded, self._tokens, self.spec.think_close)
        text, retries = "", 0
        while forcer.owed() is None:
            piece, finish, usage, tries = await self._with_retries(
                client,
                prompt,
                sampling,
                prompt.text + text,
                max_tokens=top - forcer.thinking_tokens,
                stop=[self.spec.think_close],
            )
            retries += tries
            text += piece
            forcer.add_thinking(self._tokens(piece, usage))
            if finish == "length":
                forcer.cut()
            else:
                forcer.attempt_stop(ending=False)  # a server does not say whether it met the delimiter or the end
            text += forcer.take_continuation()  # "" unless a stop was refused
        text += forcer.take()  # the closing delimiter, and after a cut the answer prefix
        used = forcer.thinking_tokens + self._tokens(self.spec.think_close)
        answer, finish, usage, tries = await self._with_retries(
            client, prompt, sampling, prompt.text + text, max_tokens=max(1, sampling.max_tokens - used)
        )
        total = used + self._tokens(answer, usage)
        return text + answer, finish, forcer.thinking_tokens, total, forcer.waits, forcer.forced_cut, retries + tries

    def _count(self, text: str, usage) -> tuple[int, int, int, str]:
        """(prompt, completion, thinking) tokens, and where the numbers came from."""
        completion = getattr(usage, "completion_tokens", None) if usage else None
        prompt_tokens = getattr(usage, "prompt_tokens", None) if usage else None
        if self.tokenizer is not None:
            total, thinking = count_tokens(self.tokenizer, text, self.spec)
            if completion is None:
                return prompt_tokens or 0, total, thinking, "tokenizer"
            return (
                prompt_tokens or 0,
                completion,
                min(thinking, completion),
                "server usage; thinking split by tokenizer",
            )
        completion = completion or 0
        return (
            prompt_tokens or 0,
            completion,
            round(completion * thinking_share(text, self.spec)),
            "server usage; thinking split by characters",
        )

    async def _generate_all(
        self, prompts: list[Prompt], sampling: SamplingParams, progress, budget: Budget | None
    ) -> list[Generation]:
        import openai

        if self.endpoint == "chat" and any(p.messages is None for p in prompts):
            raise ConfigError("engine.endpoint 'chat' needs prompts as chat turns")
        if budget is not None and (self.endpoint != "completions" or not self.spec.open_thinking):
            raise ConfigError(
                "budget forcing over a server needs the completions endpoint and prompts that open thinking"
            )
        gate = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.request_timeout
        ) as client:

            async def one(prompt: Prompt) -> Generation:
                forcing = {}
                async with gate:
                    began = time.monotonic()
                    if budget is None:
                        text, finish, usage, retries = await self._with_retries(client, prompt, sampling)
                    else:
                        text, finish, thinking, total, waits, cut, retries = await self._with_budget(
                            client, prompt, sampling, budget
                        )
                        usage = None
                        forcing = {"budget": budget, "waits": waits, "forced_cut": cut}
                latency = round(time.monotonic() - began, 3)
                prompt_tokens, completion, thinking_count, source = self._count(text, usage)
                if forcing:  # several requests: the tokenizer's counts over the whole text, or those the budget kept
                    source = "tokenizer" if self.tokenizer is not None else "characters / 4"
                    prompt_tokens = self._tokens(prompt.text)
                    if self.tokenizer is None:
                        completion, thinking_count = total, thinking
                generation = make_generation(
                    prompt,
                    text,
                    model=self.model_name,
                    engine=self.name,
                    sampling=sampling,
                    spec=self.spec,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion,
                    thinking_tokens=thinking_count,
                    finish_reason=finish or "stop",
                    metadata={
                        "token_counts": source,
                        "retries": retries,
                        "endpoint": self.endpoint,
                        "latency_s": latency,
                    },
                )
                if forcing:
                    generation = generation.model_copy(update=forcing)
                if progress:
                    progress([generation])
                return generation

            tasks = [asyncio.create_task(one(p)) for p in prompts]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    def generate(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        progress: Callable[[list[Generation]], None] | None = None,
        budget: Budget | None = None,
    ) -> list[Generation]:
        return asyncio.run(self._generate_all(prompts, sampling, progress, budget))

    def close(self) -> None:
        pass
