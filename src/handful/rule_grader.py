"""A second grader, independent of the main one: rules in the style of Qwen2.5-Math's evaluation
(its `extract_answer`, `strip_string` and `math_equal`), written for handful.

It shares no parsing with `grading.py`: the main grader reads answers through math-verify
(latex2sympy2_extended), this one through sympy's own LaTeX parser (the lark backend) and, for
plain-text answers, sympy's expression parser. Where two graders built on different parsers
agree, a verdict does not rest on either one's quirks; where they disagree, `handful audit`
lists the sample.

Its policy differs from the main grader's where Qwen's does, on purpose:
- the last \\boxed{} alone is the answer (adjacent boxes are not joined); then "the answer is";
  then the last number in the text, whatever the reference looks like;
- an output cut off at the token limit is read like any other (the main grader counts only an
  answer it marked as final);
- numbers match within a relative 1e-4, and a number also matches the reference's percent
  forms (x/100, x*100), as in Qwen's `math_equal`;
- intervals must have the same brackets (Qwen ignores them); a tuple or interval compares
  element by element in order, a set (\\{ \\}) or a bare list in any order.

Outcomes are the main grader's: correct, incorrect, no_answer, unparseable_gold, timeout.
Countdown answers (expressions over given numbers) are outside these rules: see `supports`.
Checks run in worker processes under the main grader's deadline machinery (`grading.Grader`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import cache, lru_cache, partial

from handful.extract import last_boxed, split_thinking
from handful.grading import DEFAULT_TIMEOUT, Grade, Grader, GradeRequest, _under_deadline

REL_TOL = 1e-4
FORMATS = ("math", "integer", "choice")

_ANSWER_IS = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)
_GROUPED_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-J])\b")
# A unit after a number: `5\text{ cm}^2`, `12 dollars`. A whole answer in \text{} is kept (a name).
_TEXT_UNIT = re.compile(r"(?<=[\d}])\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?\d\}?)?$")
_WORD_UNIT = re.compile(r"(?<=\d)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*$")
_WRAPPER = re.compile(r"\\(?:text|mbox|mathrm|textbf|mathbf|boldsymbol)\{([^{}]*)\}")
_VARIABLE = re.compile(r"^[^=<>!]{1,2}=([^=]+)$")  # `x=5`: Qwen keeps the right side (not of `x<=5`)
# Commands the lark grammar does not know, spelt as ones it does (constants come back in `_constants`).
_SPELLINGS = {
    r"\pi": r"\mathit{handfulpi}",
    r"\le": r"\leq",
    r"\ge": r"\geq",
    r"\ne": r"\neq",
    r"\div": "/",
    "<=": r"\leq",
    ">=": r"\geq",
    "!=": r"\neq",
}
# What may reach sympy's expression parser, which evaluates its input as Python: digits,
# operators and names from this list or of one letter, nothing else.
_SAFE_TEXT = re.compile(r"[0-9A-Za-z+\-*/^().\s]+")
_FUNCTIONS = ("sqrt", "pi", "exp", "log", "ln", "sin", "cos", "tan", "oo")


def supports(answer_format: str) -> bool:
    return answer_format in FORMATS


def extract(text: str) -> tuple[str | None, str]:
    """(answer, how it was found): the last \\boxed{}, else "the answer is", else the last number."""
    start = text.rfind("\\boxed")
    if start != -1:
        boxed = last_boxed(text[start:])
        if boxed is not None:
            return boxed, "boxed"
    said = _ANSWER_IS.split(text)
    if len(said) > 1:
        tail = said[-1].strip().split("\n")[0]
        inline = re.search(r"\$([^$]+)\$", tail)
        tail = inline.group(1) if inline else re.split(r"\.(?:\s|$)", tail)[0]
        if tail.strip():
            return tail.strip(), "answer_is"
    numbers = _NUMBER.findall(_THOUSANDS.sub("", text))
    if numbers:
        return numbers[-1], "last_number"
    return None, "none"


def extract_letter(text: str, letters: str) -> tuple[str | None, str]:
    """The last standalone option letter of the answer (or of the whole text)."""
    answer, method = extract(text)
    if method not in ("boxed", "answer_is"):  # a last number is no letter: the whole text is read
        answer, method = text, "letter"
    found = [x for x in _LETTER.findall(_WRAPPER.sub(r"\1", answer)) if x in letters]
    return (found[-1], method) if found else (None, "none")


def normalise(answer: str) -> str:
    s = answer.replace("\n", " ").strip()
    s = re.sub(r"\\[!,;: ]|\\q?quad(?![A-Za-z])", " ", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree", "", s)
    s = s.strip().rstrip(".").strip()
    s = _TEXT_UNIT.sub("", s).strip()
    s = _WORD_UNIT.sub("", s).strip()
    while _WRAPPER.search(s):
        s = _WRAPPER.sub(r"\1", s)
    s = re.sub(r"\\displaystyle", "", s)
    s = re.sub(r"\bdegrees?\b|\bdollars?\b", "", s).strip()
    s = re.sub(r"\s+", "", s)
    variable = _VARIABLE.match(s)
    if variable:
        s = variable.group(1)
    if _GROUPED_NUMBER.fullmatch(s):
        s = s.replace(",", "")
    s = re.sub(r"(?<![\d}])\.(\d)", r"0.\1", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    return re.sub(r"^(-?)(?:infinity|inf)$", r"\1\\infty", s).rstrip(".")


def verdict(pred: str, gold: str) -> str:
    """correct, incorrect or unparseable_gold, for two answers already normalised."""
    if _same(pred, gold):
        return "correct"
    return "incorrect" if _readable(gold) else "unparseable_gold"


def check(request: GradeRequest) -> Grade:
    """Grade one output against one reference, with no time limit of its own."""
    answer, method = _read(request)
    if answer is None:
        return Grade("no_answer", False, None, None, f"rules:{method}")
    if request.answer_format == "choice":
        ok = answer == request.gold.strip().upper()
        return Grade("correct" if ok else "incorrect", ok, answer, answer, f"rules:{method}")
    pred = normalise(answer)
    with warnings.catch_warnings():
        # sympy warns of a deprecation when a tuple meets arithmetic, on its way to failing: noise here.
        warnings.simplefilter("ignore", DeprecationWarning)
        outcome = verdict(pred, normalise(request.gold))
    return Grade(outcome, outcome == "correct", answer, pred, f"rules:{method}")


def _read(request: GradeRequest) -> tuple[str | None, str]:
    """The answer of an output: plain string work, no sympy."""
    if not supports(request.answer_format):
        raise ValueError(f"the rule grader does not read {request.answer_format} answers")
    if request.answer_format == "choice":
        letters = "ABCDEFGHIJ"[: len(request.choices)] if request.choices else "ABCDEFGHIJ"
        read = partial(extract_letter, letters=letters)
    else:
        read = extract
    # What follows the thinking first, when there is any; else, or when it has nothing, all of it.
    _, answer_part = split_thinking(request.pred, *request.thinking_delimiters)
    found = read(answer_part) if answer_part.strip() else (None, "none")
    return found if found[0] is not None else read(request.pred)


def check_with_deadline(request: GradeRequest, timeout: float) -> Grade:
    """`check` under the main grader's interval timer; only valid in a main thread (workers)."""
    _warm()
    return _under_deadline(check, request, timeout)


def grade(
    requests: Sequence[GradeRequest], workers: int = 2, timeout: float = DEFAULT_TIMEOUT, progress=None
) -> list[Grade]:
    """Grade many outputs in worker processes, each check bounded by `timeout` seconds."""
    _warm()  # before the workers fork: each inherits the built parser
    with Grader(workers, timeout, check_fn=check_with_deadline) as grader:
        grades = grader.grade(requests, progress)
    # A check stopped at its deadline comes back with the main grader's extraction: this
    # grader's own goes in its place.
    return [_own_timeout(r, g) if g.outcome == "timeout" else g for r, g in zip(requests, grades)]


def _own_timeout(request: GradeRequest, grade: Grade) -> Grade:
    return replace(grade, extracted=_read(request)[0], canonical=None, method="rules:timeout")


@cache
def _warm() -> None:
    """Build sympy's LaTeX grammar outside any deadline: it is built when its module is first
    imported, which takes about half a second, no part of any one check."""
    import sympy.parsing.latex.lark
    import sympy.parsing.sympy_parser  # noqa: F401


# ---- equality ------------------------------------------------------------------------


def _same(pred: str, gold: str) -> bool:
    if pred.lower() == gold.lower():
        return True
    x, y = _number(pred), _number(gold)
    if x is not None and y is not None:
        return any(_close(x, v) for v in (y, y / 100, y * 100))
    ours, theirs = _elements(pred), _elements(gold)
    if ours is None and theirs is None:
        return _symbolic_same(pred, gold)
    return _same_elements(ours or ("list", [pred]), theirs or ("list", [gold]))


def _readable(gold: str) -> bool:
    if _number(gold) is not None:
        return True
    found = _elements(gold)
    if found is not None:
        return all(_readable(part) for part in found[1])
    return _parse(gold) is not None


def _number(s: str) -> float | None:
    return float(s) if _PLAIN_NUMBER.fullmatch(s) else None


def _close(x: complex, y: complex) -> bool:
    return x == y or abs(x - y) <= REL_TOL * max(abs(x), abs(y))


def _split_top(s: str) -> list[str]:
    """`s` cut at the commas outside any bracket or brace."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return [*parts, s[start:]]


def _enclosed(s: str, open_: str) -> bool:
    """Whether the bracket that opens `s` is the one that closes it."""
    depth = 0
    inner = s[len(open_) : -1 if open_ != "\\{" else -2]
    for c in inner:
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0:
            return False
    return depth == 0


def _elements(s: str) -> tuple[str, list[str]] | None:
    """(kind, parts) of a tuple, interval, set or bare list; None for a single expression. The
    kind is the pair of brackets, "set" or "list"."""
    for open_ in ("\\{", "(", "["):
        if not s.startswith(open_):
            continue
        close = "\\}" if open_ == "\\{" else s[-1]
        if (open_ == "\\{" and not s.endswith("\\}")) or (open_ != "\\{" and close not in ")]"):
            break
        if not _enclosed(s, open_):
            break
        inner = s[len(open_) : -len(close)]
        parts = _split_top(inner)
        if open_ == "\\{":
            return "set", parts
        return (open_ + close, parts) if len(parts) > 1 else None
    parts = _split_top(s)
    return ("list", parts) if len(parts) > 1 else None


def _same_elements(ours: tuple[str, list[str]], theirs: tuple[str, list[str]]) -> bool:
    (kind, pred), (gold_kind, gold) = ours, theirs
    if len(pred) != len(gold):
        return False
    if kind != gold_kind and "list" not in (kind, gold_kind):
        return False  # (1, 2] is not [1, 2]
    if "(" in kind + gold_kind or "[" in kind + gold_kind:
        return all(_same(p, g) for p, g in zip(pred, gold))
    left = list(gold)  # a set, or a list of solutions: any order
    for p in pred:
        match = next((i for i, g in enumerate(left) if _same(p, g)), None)
        if match is None:
            return False
        left.pop(match)
    return True


def _symbolic_same(pred: str, gold: str) -> bool:
    import sympy

    a, b = _parse(pred), _parse(gold)
    if a is None or b is None:
        return False
    if a == b:
        return True
    equations = isinstance(a, sympy.Equality), isinstance(b, sympy.Equality)
    if any(equations):
        if not all(equations):
            return False
        a, b = a.lhs - a.rhs, b.lhs - b.rhs  # x+y=1 is y+x-1=0 is 1-x-y=0
        return _zero(lambda: a - b) or _zero(lambda: a + b)
    if isinstance(a, sympy.core.relational.Relational) or isinstance(b, sympy.core.relational.Relational):
        return False  # inequalities other than the same one written alike are not compared
    return _zero(lambda: a - b) or _numerically_close(a, b)


def _zero(difference) -> bool:
    import sympy

    try:
        return sympy.simplify(difference()) == 0
    except Exception:  # noqa: BLE001 (sympy raises many kinds on what it cannot subtract or simplify)
        return False


def _numerically_close(a, b) -> bool:
    import sympy

    if a.free_symbols or b.free_symbols:
        return False
    try:
        return _close(complex(sympy.N(a)), complex(sympy.N(b)))
    except Exception:  # noqa: BLE001 (not a number after all: a set, a matrix, nan)
        return False


@lru_cache(maxsize=1024)
def _parse(s: str):
    """A sympy expression for an answer, or None. Plain text goes to sympy's expression parser
    first (`sqrt(2)/2`, `2*pi`), LaTeX only to the LaTeX parser."""
    readers = (_from_latex,) if "\\" in s else (_from_text, _from_latex)
    return next((v for v in (_quietly(read, s) for read in readers) if v is not None), None)


def _quietly(read, s: str):
    try:
        return read(s)
    except Exception:  # noqa: BLE001 (lark and sympy raise many kinds on text they cannot read)
        return None


def _constants() -> dict:
    import sympy

    return {sympy.Symbol("handfulpi"): sympy.pi, sympy.Symbol("e"): sympy.E, sympy.Symbol("i"): sympy.I}


def _from_latex(s: str):
    import sympy
    from lark import Tree
    from sympy.parsing.latex import parse_latex

    for command, spelling in _SPELLINGS.items():
        s = re.sub(re.escape(command) + r"(?![A-Za-z])", lambda _, spelling=spelling: spelling, s)
    value = parse_latex(s, backend="lark")
    if isinstance(value, Tree) and value.data == "_ambig":  # readings that differ only in grouping
        value = value.children[0]
    return value.subs(_constants()) if isinstance(value, sympy.Basic) else None


def _from_text(s: str):
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication,
        parse_expr,
        standard_transformations,
    )

    names = set(re.findall(r"[A-Za-z]+", s))
    unsafe = re.search(r"(?<!\d)\.|\.(?!\d)", s) or any(len(n) > 1 and n not in _FUNCTIONS for n in names)
    if not _SAFE_TEXT.fullmatch(s) or unsafe:
        return None
    known = {
        "sqrt": sympy.sqrt,
        "pi": sympy.pi,
        "exp": sympy.exp,
        "log": sympy.log,
        "ln": sympy.log,
        "sin": sympy.sin,
        "cos": sympy.cos,
        "tan": sympy.tan,
        "oo": sympy.oo,
    }
    local = {n: known[n] if n in known else sympy.Symbol(n) for n in names}
    value = parse_expr(
        s, local_dict=local, transformations=(*standard_transformations, implicit_multiplication, convert_xor)
    )
    return value.subs(_constants()) if isinstance(value, sympy.Basic) else None
