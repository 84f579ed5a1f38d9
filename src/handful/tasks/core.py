"""What every procedural task shares: the worked problem a generator returns, the task
record, and the number formatting both the question and the trace use.

A generator is a pure function of (rng, difficulty). It computes the answer directly (Python
integers, `Decimal`, `Fraction`) and, separately, works the problem step by step the way a
careful person would; `traced` is what that working arrives at. The two must agree, or the
problem is never emitted: the trace is a teacher that is always right.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction


@dataclass(frozen=True)
class Worked:
    question: str
    answer: str  # computed directly, never read off the trace
    steps: list[str]  # the working, one line each
    traced: str  # what the working arrives at
    answer_format: str = "integer"
    boxed: str | None = None  # what the conclusion boxes, when it is not the answer (Countdown: the expression)
    operands: list[str] | None = None  # Countdown: the numbers to use
    facts: dict = field(default_factory=dict)  # the drawn values, kept as provenance


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[[random.Random, int], Worked]
    knob: str  # what difficulty means, e.g. "digits"
    default: int
    lowest: int
    highest: int
    domain: str
    about: str
    mirrors: str | None = None  # a static benchmark this task is a fresh copy of (memorisation probe)


def conclusion(boxed: str) -> str:
    return f"The answer is $\\boxed{{{boxed}}}$."


def number(value: int | Decimal | Fraction) -> str:
    """Plain decimal text: no exponent, no trailing zeros after the point, no "-0"."""
    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        return (
            f"\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
            if value > 0
            else f"-\\frac{{{-value.numerator}}}{{{value.denominator}}}"
        )
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def draw_int(rng: random.Random, digits: int) -> int:
    """A number with exactly `digits` digits (1 digit includes 0)."""
    if digits == 1:
        return rng.randint(0, 9)
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def signed(value: int) -> str:
    """A term after the first: "+ 3" or "- 3"."""
    return f"- {-value}" if value < 0 else f"+ {value}"


def paren(value: int | Fraction) -> str:
    """A factor in a product: negatives in parentheses."""
    text = number(value)
    return f"({text})" if value < 0 else text
