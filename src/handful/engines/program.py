"""The program teacher: answers problems from `handful.tasks` with their exact traces, in the
student's thinking format, so distillation and fine-tuning can use it like any model.

It works from the prompt alone: a task problem's id says how to draw it again, and the
drawn question must appear in the prompt, so a problem from another version of a generator
(or not from one at all) is refused instead of answered with someone else's trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from handful import tasks
from handful.budget import Budget
from handful.engines.base import Prompt, count_tokens, make_generation, text_tokens
from handful.errors import EngineError, HandfulError
from handful.models import ModelSpec, ResolvedModel
from handful.records import Generation, SamplingParams

log = logging.getLogger(__name__)


def response(trace: str, spec: ModelSpec) -> str:
    """The trace as the student should write it: the working inside the thinking delimiters,
    then the concluding line as the answer."""
    working, _, last = trace.rpartition("\n")
    opened = "" if spec.open_thinking else spec.think_open
    return f"{opened}{working}{spec.think_close}\n\n{last}"


class ProgramEngine:
    name = "program"

    def __init__(self, model: ResolvedModel, tokenizer=None):
        self.spec, self.tokenizer = model.spec, tokenizer
        self._warned_budget = False

    def generate(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        progress: Callable[[list[Generation]], None] | None = None,
        budget: Budget | None = None,
    ) -> list[Generation]:
        """The exact trace of each problem. A `budget` is accepted, as by every engine, and does
        not apply: budget forcing steers a model that samples its thinking token by token, while
        a trace is written whole by the task's program, and cutting it or padding it with
        continuations would only make it wrong. It is said once in the log, not refused, so a
        config with a budget runs the same with this teacher."""
        if budget is not None and budget.active and not self._warned_budget:
            log.warning("the program teacher writes exact traces: the thinking budget does not apply to them")
            self._warned_budget = True
        done = []
        for prompt in prompts:
            try:
                problem = tasks.regenerate(prompt.problem_id)
            except HandfulError as e:
                raise EngineError(f"the program teacher only answers handful task problems: {e}") from None
            if problem.question not in prompt.text:
                raise EngineError(
                    f"problem {prompt.problem_id}: its prompt does not hold the question this id draws; it was made by another version of the task"
                )
            text = response(problem.trace or "", self.spec)
            total, thinking = count_tokens(self.tokenizer, text, self.spec)
            generation = make_generation(
                prompt,
                text,
                model="program",
                engine=self.name,
                sampling=sampling,
                spec=self.spec,
                prompt_tokens=text_tokens(self.tokenizer, prompt.text),
                completion_tokens=total,
                thinking_tokens=thinking,
                finish_reason="stop",
            )
            done.append(generation)
            if progress:
                progress([generation])
        return done

    def close(self) -> None:
        pass
