"""Countdown (TinyZero's task): reach a target from given numbers with + - × ÷, each number
used exactly once. Many expressions are right, so the answer is checked, not compared: the
verifier reads the expression with `ast` (no eval), counts the numbers used and computes the
value in exact fractions."""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from fractions import Fraction

from handful.tasks.core import Worked, number

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_SPELLED = [
    (r"\\times|×|\\cdot|·|∗", "*"),
    (r"\\div|÷", "/"),
    (r"−|–", "-"),
    (r"\\left|\\right|\\[,;!]|\$", ""),
    (r"\\\(|\\\)|\\\[|\\\]", ""),
    (r"\[", "("),
    (r"\]", ")"),
]
_FRAC = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")


class Invalid(ValueError):
    """The text is not an expression over the given numbers."""


def normalise(text: str) -> str:
    text = _FRAC.sub(r"(\1)/(\2)", text)
    for pattern, replacement in _SPELLED:
        text = re.sub(pattern, replacement, text)
    return text.replace("{", "(").replace("}", ")").strip().rstrip(".").strip()


def _value(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _value(node.left, used), _value(node.right, used)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise Invalid("divides by zero")
        return left / right
    raise Invalid("uses something other than the given numbers, + - * / and parentheses")


def evaluate(text: str) -> tuple[Fraction, list[int]]:
    """(value, numbers used) of an arithmetic expression; "expr = 24" reads the expression side."""
    sides = [s.strip() for s in normalise(text).split("=") if s.strip()]
    if not sides:
        raise Invalid("is empty")
    chosen = next((s for s in sides if re.search(r"\d\s*[-+*/]", s)), sides[0])
    try:
        tree = ast.parse(chosen, mode="eval")
    except SyntaxError:
        raise Invalid(f"is not an arithmetic expression: {chosen!r}") from None
    used: list[int] = []
    return _value(tree.body, used), used


def verify(text: str, numbers: list[str] | tuple[str, ...], target: str) -> tuple[bool, str]:
    """(correct, why not) for an answer to a Countdown problem."""
    try:
        value, used = evaluate(text)
    except Invalid as e:
        return False, f"the answer {e}"
    if Counter(used) != Counter(int(n) for n in numbers):
        return False, f"uses {sorted(used)}, not each of {sorted(int(n) for n in numbers)} exactly once"
    if value != Fraction(target):
        return False, f"equals {number(value)}, not {target}"
    return True, ""


def countdown(rng: random.Random, count: int) -> Worked:
    for _ in range(1000):
        numbers = [rng.randint(1, 99) for _ in range(count)]
        pool = [(str(n), Fraction(n)) for n in numbers]
        steps = [f"Numbers: {', '.join(map(str, numbers))}. Combine two at a time until one value is left."]
        while len(pool) > 1:
            (x, vx), (y, vy) = (pool.pop(rng.randrange(len(pool))) for _ in range(2))
            if vx < vy:
                (x, vx), (y, vy) = (y, vy), (x, vx)
            options = ["+", "*"] + (["-"] if vx > vy else []) + (["/"] if vy > 1 and (vx / vy).denominator == 1 else [])
            op = rng.choice(options)
            value = {"+": vx + vy, "-": vx - vy, "*": vx * vy, "/": vx / vy if vy else 0}[op]
            steps.append(
                f"{number(vx)} {op} {number(vy)} = {number(value)}; left: {', '.join([number(v) for _, v in pool] + [number(value)])}"
            )
            pool.append((f"({x} {op} {y})" if len(pool) else f"{x} {op} {y}", value))
        expression, target = pool[0]
        if 1 <= target <= 999 and target.denominator == 1 and int(target) not in numbers:
            break
    else:  # pragma: no cover - would need a thousand degenerate draws in a row
        raise RuntimeError("no usable Countdown target drawn")
    shown = " and ".join([", ".join(map(str, numbers[:-1])), str(numbers[-1])])
    value, _ = evaluate(expression)
    steps.append(f"So {expression} = {number(value)}, using each number exactly once.")
    return Worked(
        question=(
            f"Using the numbers {shown}, each exactly once, and the operations +, -, *, / (with parentheses as needed), "
            f"write an expression that equals {number(target)}. Give the expression as your answer."
        ),
        answer=number(target),
        steps=steps,
        traced=number(value),
        answer_format="countdown",
        boxed=expression,
        operands=[str(n) for n in numbers],
        facts={"numbers": numbers},
    )
