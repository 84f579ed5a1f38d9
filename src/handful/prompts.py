"""The one place a Problem becomes prompt text, so evaluation and training agree token for token."""

from __future__ import annotations

from handful.models import ModelSpec
from handful.records import Problem

CHOICE_INSTRUCTION = "Answer with the letter of the correct option, within \\boxed{}."
PLAIN_INSTRUCTION = "Reason step by step, and put your final answer within \\boxed{}."


def user_message(problem: Problem) -> str:
    if problem.answer_format == "choice":
        return f"{problem.question}\n\n{CHOICE_INSTRUCTION}"
    return problem.question


def messages(problem: Problem, spec: ModelSpec) -> list[dict[str, str]]:
    chat = [{"role": "user", "content": user_message(problem)}]
    if spec.system_prompt is not None:
        chat.insert(0, {"role": "system", "content": spec.system_prompt})
    return chat


def render(problem: Problem, spec: ModelSpec, tokenizer=None) -> str:
    """The exact text the model is conditioned on, up to where its response begins."""
    if spec.prompt_format == "plain" or tokenizer is None or not getattr(tokenizer, "chat_template", None):
        instruction = spec.system_prompt or PLAIN_INSTRUCTION
        text = f"{_bos(tokenizer)}Problem: {user_message(problem)}\n\n{instruction}\n\nSolution:"
        return text + (f" {spec.think_open}" if spec.open_thinking else "")
    text = tokenizer.apply_chat_template(messages(problem, spec), tokenize=False, add_generation_prompt=True)
    return text + (spec.think_open if spec.open_thinking else "")


def _bos(tokenizer) -> str:
    """The BOS token as text, where the tokenizer would add it: prompts are tokenized without
    special tokens, so that the logged text is exactly what the model saw."""
    if tokenizer is None or tokenizer.bos_token is None:
        return ""
    ids = tokenizer("x")["input_ids"]
    return tokenizer.bos_token if ids and ids[0] == tokenizer.bos_token_id else ""
