"""An LLM judge: a model asked whether a response's final answer matches the reference, as LIMO
and s1 check answers. Any handful engine serves it: a server or hosted API (`openai`), or a
local model (`hf`).

The judge sees the problem as the model saw it, the reference answer and the end of the
response (its answer part after any thinking, else its last characters, bounded), decodes
greedily a few tokens, and must reply with one word. Its reply is read strictly: the first
line, stripped of markup and punctuation, is CORRECT or INCORRECT, or the ruling is
`judge_unclear`, which never counts as agreeing with anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from handful.config import EngineConfig
from handful.engines import ENGINES, Prompt, load_tokenizer
from handful.errors import ConfigError, lookup
from handful.extract import split_thinking
from handful.files import register_config_secrets
from handful.models import ModelSpec, resolve
from handful.prompts import messages, render, user_message
from handful.records import Problem, SamplingParams

UNCLEAR = "judge_unclear"
OUTCOMES = ("correct", "incorrect", UNCLEAR)
RESPONSE_CHARS = 2000  # the end of a response the judge reads: the final answer is there
QUESTION_CHARS = 4000
REPLY_CHARS = 200  # what a ruling keeps of the reply, to show

SYSTEM = "You check answers to math problems. You reply with one word: CORRECT or INCORRECT."
TEMPLATE = """Problem:
{problem}

Reference answer: {reference}

The end of a response to check:
{response}

Is the final answer of the response equivalent to the reference answer? Reply with exactly one word: CORRECT or INCORRECT."""
_VERDICT = re.compile(r"[\W_]*(CORRECT|INCORRECT)[\W_]*", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One response to judge: the problem it answers and its full text as the model wrote it."""

    problem: Problem
    response: str
    spec: ModelSpec  # the answering model's thinking delimiters


@dataclass(frozen=True)
class Ruling:
    outcome: str  # one of OUTCOMES
    reply: str  # the judge's reply (its start)

    @property
    def correct(self) -> bool:
        return self.outcome == "correct"


def read_reply(reply: str) -> str:
    """correct, incorrect or judge_unclear: only a first line that is the one word counts."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    found = _VERDICT.fullmatch(lines[0].strip()) if lines else None
    return found.group(1).lower() if found else UNCLEAR


def response_end(text: str, spec: ModelSpec, limit: int = RESPONSE_CHARS) -> str:
    """The part of a response that holds its final answer: after the thinking, else the end."""
    _, answer = split_thinking(text, spec.think_open, spec.think_close)
    part = answer.strip() or text.strip()
    return part if len(part) <= limit else "..." + part[-limit:]


def reference(problem: Problem) -> str:
    if problem.answer_format == "choice" and problem.choices:
        index = "ABCDEFGHIJ".find(problem.answer.strip().upper())
        if 0 <= index < len(problem.choices):
            return f"{problem.answer} ({problem.choices[index]})"
    return problem.answer


def question(case: Case) -> str:
    problem = user_message(case.problem)
    if len(problem) > QUESTION_CHARS:
        problem = problem[:QUESTION_CHARS] + "..."
    return TEMPLATE.format(
        problem=problem, reference=reference(case.problem), response=response_end(case.response, case.spec)
    )


class Judge:
    """A model that rules on responses, through the engine `engine` (openai, hf)."""

    def __init__(
        self,
        model: str,
        engine: str = "hf",
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 16,
    ):
        lookup("engine", ENGINES, engine)
        if engine == "program":
            raise ConfigError(
                "judge: the program engine writes solutions and cannot judge; use openai:MODEL or hf:MODEL"
            )
        if not model or not model.strip():
            raise ConfigError("judge: no model given; e.g. openai:qwen2.5-72b-instruct or hf:smollm2-135m")
        self.model, self.engine = model, engine
        self.settings = EngineConfig(name=engine, base_url=base_url, api_key_env=api_key_env)
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.model}"

    def rule(self, cases: list[Case], progress: Callable[[int], None] | None = None) -> list[Ruling]:
        """One ruling per case, in order."""
        if not cases:
            return []
        register_config_secrets(self.settings.model_dump())
        # The judge's own instruction replaces the model's (which asks for a boxed answer).
        model = resolve(self.model, {"system_prompt": SYSTEM, "open_thinking": False}, engine=self.engine)
        tokenizer = load_tokenizer(model, self.settings.trust_remote_code)
        prompts = []
        for i, case in enumerate(cases):
            asked = Problem(id=f"judge-{i}", source="audit", question=question(case), answer="")
            prompts.append(
                Prompt(
                    problem_id=asked.id,
                    benchmark="judge",
                    text=render(asked, model.spec, tokenizer),
                    messages=messages(asked, model.spec),
                )
            )
        engine = ENGINES[self.engine](model, self.settings, tokenizer)
        try:
            replies = engine.generate(
                prompts, self.sampling, progress=(lambda batch: progress(len(batch))) if progress else None
            )
        finally:
            engine.close()
        # A reasoning judge thinks first: its verdict is what follows the thinking.
        return [Ruling(read_reply(g.answer_text), g.answer_text.strip()[:REPLY_CHARS]) for g in replies]
