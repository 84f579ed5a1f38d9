"""Linear equations in one unknown, and 2×2 systems, solved by moving terms and by elimination.

The solution is drawn first and the equations are built around it (the answer); the
working then solves the equations from scratch with exact fractions (the trace)."""

from __future__ import annotations

import random
from fractions import Fraction

from handful.tasks.core import Worked, number, paren, signed


def _coefficient(rng: random.Random, digits: int) -> int:
    value = rng.randint(1, 10**digits - 1)
    return -value if rng.random() < 0.3 else value


def term(coefficient: int, variable: str) -> str:
    if coefficient == 1:
        return variable
    if coefficient == -1:
        return f"-{variable}"
    return f"{coefficient}{variable}"


def side(coefficient: int, variable: str, constant: int) -> str:
    """ "3x + 5", "-x - 2", "7"."""
    if coefficient == 0:
        return str(constant)
    return term(coefficient, variable) + (f" {signed(constant)}" if constant else "")


def pair(a: int, b: int) -> str:
    """ "3x - y", "-2x + 5y"."""
    return term(a, "x") + (f" + {term(b, 'y')}" if b > 0 else f" - {term(-b, 'y')}")


def linear(rng: random.Random, digits: int) -> Worked:
    x = rng.randint(-(10**digits), 10**digits)
    a = _coefficient(rng, digits)
    c = _coefficient(rng, digits)
    while c == a:
        c = _coefficient(rng, digits)
    b = rng.randint(-(10**digits), 10**digits)
    e = (a - c) * x + b
    equation = f"{side(a, 'x', b)} = {side(c, 'x', e)}"
    k = a - c
    steps = [
        f"Solve {equation}.",
        f"Subtract {term(c, 'x')} from both sides: ({a} - {paren(c)})x {signed(b)} = {e}, that is {side(k, 'x', b)} = {e}."
        if b
        else f"Subtract {term(c, 'x')} from both sides: ({a} - {paren(c)})x = {e}, that is {term(k, 'x')} = {e}.",
    ]
    rhs = e - b
    if b:
        steps.append(
            f"{'Subtract' if b > 0 else 'Add'} {abs(b)} {'from' if b > 0 else 'to'} both sides: {term(k, 'x')} = {e} {signed(-b)} = {rhs}."
        )
    solution = Fraction(rhs, k)
    steps.append(f"Divide both sides by {k}: x = {rhs} / {paren(k)} = {number(solution)}.")
    left, right = a * solution + b, c * solution + e
    steps.append(
        f"Check: the left side is {a} × {paren(solution)} {signed(b)} = {number(left)} and the right side is {c} × {paren(solution)} {signed(e)} = {number(right)}; they agree."
    )
    return Worked(
        question=f"Solve for x: {equation}",
        answer=str(x),
        steps=steps,
        traced=number(solution),
        facts={"a": a, "b": b, "c": c, "e": e},
    )


def system(rng: random.Random, digits: int) -> Worked:
    x, y = (rng.randint(-(10**digits), 10**digits) for _ in range(2))
    while True:
        a1, b1, a2, b2 = (_coefficient(rng, digits) for _ in range(4))
        if a1 * b2 - a2 * b1 != 0:
            break
    c1, c2 = a1 * x + b1 * y, a2 * x + b2 * y
    first, second = f"{pair(a1, b1)} = {c1}", f"{pair(a2, b2)} = {c2}"
    steps = [
        "Eliminate x: multiply the first equation by the second's x coefficient and the second by the first's, then subtract.",
        f"({first}) × {paren(a2)}: {a1 * a2}x {signed(b1 * a2)}y = {c1 * a2}",
        f"({second}) × {paren(a1)}: {a1 * a2}x {signed(b2 * a1)}y = {c2 * a1}",
    ]
    k, r = b1 * a2 - b2 * a1, c1 * a2 - c2 * a1
    y_found = Fraction(r, k)
    steps.append(
        f"Subtracting: ({b1 * a2} - {paren(b2 * a1)})y = {c1 * a2} - {paren(c2 * a1)}, so {k}y = {r} and y = {number(y_found)}."
    )
    x_found = (c1 - b1 * y_found) / a1
    steps.append(
        f"Put y = {number(y_found)} into the first equation: {a1}x = {c1} - {paren(b1)} × {paren(y_found)} = {number(c1 - b1 * y_found)}, so x = {number(x_found)}."
    )
    steps.append(
        f"Check the second equation: {a2} × {paren(x_found)} {signed(b2)} × {paren(y_found)} = {number(a2 * x_found + b2 * y_found)}, which is {c2}."
    )
    return Worked(
        question=f"Solve the system of equations\n{first}\n{second}\nGive the answer as an ordered pair (x, y).",
        answer=f"({x}, {y})",
        steps=steps,
        traced=f"({number(x_found)}, {number(y_found)})",
        answer_format="math",
        facts={"a1": a1, "b1": b1, "c1": c1, "a2": a2, "b2": b2, "c2": c2},
    )
