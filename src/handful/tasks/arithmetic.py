"""Long addition, subtraction and multiplication (integers and decimals), and remainders,
worked column by column with carries and borrows: where small models lose a digit or
misplace the decimal point."""

from __future__ import annotations

import random
from decimal import Decimal

from handful.tasks.core import Worked, draw_int, number

_FRACTIONAL = ["tenths", "hundredths", "thousandths", "ten-thousandths", "hundred-thousandths", "millionths"]
_LINE_UP = {False: "Line up the digits on the right:", True: "Line up the decimal points and pad with zeros:"}
_GROUPS = ["", "thousands", "millions", "billions", "trillions", "quadrillions", "quintillions", "sextillions"]


def place(power: int) -> str:
    """The name of the column worth 10**power."""
    if power < 0:
        return _FRACTIONAL[-power - 1]
    group, within = divmod(power, 3)
    if group == 0:
        return ["ones", "tens", "hundreds"][within]
    unit = _GROUPS[group]
    return [unit, f"ten-{unit}", f"hundred-{unit}"][within]


def _places(value: Decimal) -> int:
    return max(0, -value.as_tuple().exponent)


def _aligned(a: Decimal, b: Decimal) -> tuple[list[int], list[int], int, list[str]]:
    """Digits of a and b (least significant first) on a common column grid, and the lines
    that show them lined up on the decimal point."""
    shift = max(_places(a), _places(b))
    ta, tb = (format(v, f".{shift}f") for v in (a, b))
    width = max(len(ta), len(tb))
    lines = [f"  {ta.rjust(width)}", f"  {tb.rjust(width)}"]
    da = [int(c) for c in reversed(ta.replace(".", ""))]
    db = [int(c) for c in reversed(tb.replace(".", ""))]
    size = max(len(da), len(db))
    return da + [0] * (size - len(da)), db + [0] * (size - len(db)), shift, lines


def _read(digits: list[int], shift: int) -> Decimal:
    text = "".join(str(d) for d in reversed(digits)) or "0"
    if shift:
        text = text[:-shift].rjust(1, "0") + "." + text[-shift:].rjust(shift, "0")
    return Decimal(text)


def column_sum(a: Decimal, b: Decimal) -> tuple[list[str], Decimal]:
    da, db, shift, lines = _aligned(a, b)
    steps = [_LINE_UP[bool(shift)], *lines, "Add column by column from the right, carrying:"]
    out, carry = [], 0
    for i, (x, y) in enumerate(zip(da, db)):
        total = x + y + carry
        carried = " + 1 carried" if carry else ""
        carry = total // 10
        out.append(total % 10)
        steps.append(
            f"{place(i - shift)}: {x} + {y}{carried} = {total}, write {total % 10}" + (", carry 1" if carry else "")
        )
    if carry:
        out.append(1)
        steps.append("The last carry 1 becomes the leading digit.")
    result = _read(out, shift)
    steps.append(
        f"Reading the digits, with the decimal point back in place: {number(result)}"
        if shift
        else f"Reading the digits: {number(result)}"
    )
    return steps, result


def column_difference(a: Decimal, b: Decimal) -> tuple[list[str], Decimal]:
    """a - b for a >= b >= 0, borrowing."""
    da, db, shift, lines = _aligned(a, b)
    steps = [_LINE_UP[bool(shift)], *lines, "Subtract column by column from the right, borrowing:"]
    out, borrow = [], 0
    for i, (x, y) in enumerate(zip(da, db)):
        top = x - borrow
        shown = f"{x} - 1 borrowed = {top}, " if borrow else ""
        # Both digits are written before the borrow is decided, so the decision reads them side by side.
        start = f"{place(i - shift)}: {shown}{top} - {y}: {top} is"
        if top < y:
            borrow, digit = 1, top + 10 - y
            working = f"less than {y}, so borrow 1: {top + 10} - {y} = {digit}"
        else:
            borrow, digit = 0, top - y
            working = f"not less than {y}, so {top} - {y} = {digit}"
        steps.append(f"{start} {working}, write {digit}")
        out.append(digit)
    result = _read(out, shift)
    steps.append(f"Reading the digits: {number(result)}")
    return steps, result


def _operand(rng: random.Random, digits: int, decimals: bool) -> Decimal:
    if not decimals:
        return Decimal(draw_int(rng, digits))
    fraction = rng.randint(1, min(3, max(1, digits - 1)))
    whole = max(1, digits - fraction)
    return Decimal(f"{draw_int(rng, whole)}.{rng.randint(0, 10**fraction - 1):0{fraction}d}")


def _pair(rng: random.Random, digits: int, decimals: bool) -> tuple[Decimal, Decimal]:
    # Different lengths and decimal places on purpose: alignment is the skill.
    return _operand(rng, digits, decimals), _operand(rng, rng.randint(max(1, digits - 2), digits), decimals)


def addition(rng: random.Random, digits: int, decimals: bool = False) -> Worked:
    a, b = _pair(rng, digits, decimals)
    if rng.random() < 0.5:
        a, b = b, a
    steps, result = column_sum(a, b)
    return Worked(
        question=f"What is {number(a)} + {number(b)}?",
        answer=number(a + b),
        steps=[f"Add {number(a)} and {number(b)}.", *steps],
        traced=number(result),
        answer_format="math" if decimals else "integer",
        facts={"a": number(a), "b": number(b)},
    )


def subtraction(rng: random.Random, digits: int, decimals: bool = False) -> Worked:
    a, b = _pair(rng, digits, decimals)
    if rng.random() < 0.5:
        a, b = b, a  # the smaller minus the larger half of the time: a negative answer
    steps = [f"Compute {number(a)} - {number(b)}."]
    if a < b:
        steps.append(
            f"{number(b)} is larger than {number(a)}, so the result is negative: {number(a)} - {number(b)} = -({number(b)} - {number(a)})."
        )
        worked, difference = column_difference(b, a)
        steps += worked + [f"So {number(a)} - {number(b)} = {number(-difference)}."]
        result = -difference
    else:
        worked, result = column_difference(a, b)
        steps += worked
    return Worked(
        question=f"What is {number(a)} - {number(b)}?",
        answer=number(a - b),
        steps=steps,
        traced=number(result),
        answer_format="math" if decimals else "integer",
        facts={"a": number(a), "b": number(b)},
    )


def decimal_addition(rng: random.Random, digits: int) -> Worked:
    return addition(rng, digits, decimals=True)


def decimal_subtraction(rng: random.Random, digits: int) -> Worked:
    return subtraction(rng, digits, decimals=True)


def _times_digit(a: int, m: int) -> tuple[str, int]:
    """a * m for one digit m, right to left with carries: (the working, the product)."""
    if m == 0:
        return f"{a} × 0 = 0", 0
    parts, out, carry = [], [], 0
    for x in reversed([int(c) for c in str(a)]):
        product = x * m
        total = product + carry
        shown = f"{x} × {m} = {product}" + (f", + {carry} = {total}" if carry else "")
        carry = total // 10
        out.append(total % 10)
        parts.append(shown + f", write {total % 10}" + (f" carry {carry}" if carry else ""))
    if carry:
        out.append(carry)
        parts.append(f"write the last carry {carry}")
    product = int("".join(str(d) for d in reversed(out)))
    return f"{a} × {m}: " + "; ".join(parts) + f". So {a} × {m} = {product}.", product


def multiplication(rng: random.Random, digits: int) -> Worked:
    a, b = draw_int(rng, digits), draw_int(rng, max(1, (digits + 1) // 2))
    if rng.random() < 0.5:
        a, b = b, a
    top, bottom = (a, b) if len(str(a)) >= len(str(b)) else (b, a)
    steps = [f"Multiply {top} by each digit of {bottom}, from the right, then add the partial products."]
    partials = []
    for power, m in enumerate(reversed([int(c) for c in str(bottom)])):
        line, product = _times_digit(top, m)
        shifted = product * 10**power
        partials.append(shifted)
        steps.append(line + (f" Shifted {power} place{'s' if power > 1 else ''} left: {shifted}." if power else ""))
    total = partials[0]
    for p in partials[1:]:
        steps.append(f"{total} + {p} = {total + p}")
        total += p
    steps.append(f"So {a} × {b} = {total}.")
    return Worked(
        question=f"What is {a} × {b}?", answer=str(a * b), steps=steps, traced=str(total), facts={"a": a, "b": b}
    )


def remainder(rng: random.Random, digits: int) -> Worked:
    a, m = draw_int(rng, max(digits, 2)), rng.randint(3, 99)
    steps = [f"Divide {a} by {m} digit by digit from the left, keeping only the remainder."]
    r = 0
    for c in str(a):
        value = r * 10 + int(c)
        lead = f"{r} × 10 + {c} = {value}" if r else c
        if value < m:
            steps.append(f"{lead}, which is less than {m}: remainder {value}.")
        else:
            q = value // m
            steps.append(f"{lead} = {q} × {m} + {value - q * m}: remainder {value - q * m}.")
        r = value % m
    steps.append(f"So the remainder of {a} divided by {m} is {r}.")
    return Worked(
        question=f"What is the remainder when {a} is divided by {m}?",
        answer=str(a % m),
        steps=steps,
        traced=str(r),
        facts={"a": a, "m": m},
    )
