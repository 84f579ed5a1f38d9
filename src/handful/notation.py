"""Rewrite the ways models and references write math that math-verify does not read into the
LaTeX it does: plain string work, applied to both sides of a comparison before parsing.

- Unicode math (x², √3, π, ×, −, ½) becomes its LaTeX command.
- E-notation (`1.5e-3`) becomes `1.5\\times10^{-3}`.
- Words after a number (`1680 distinct`, `12 cm`, `1.54 Å`) are units or prose, not factors:
  against a plain-number reference only the number is compared.
- Subscripted symbols (`E_{1}`) collide with constants when parsed (E is Euler's number) and
  `E_1`/`E_{1}` spell one symbol two ways, so each one gets the same stand-in on both sides.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

_SYMBOLS = {
    "π": "\\pi ",
    "×": "\\times ",
    "·": "\\cdot ",
    "⋅": "\\cdot ",
    "÷": "\\div ",
    "−": "-",
    "–": "-",
    "∞": "\\infty ",
    "≤": "\\le ",
    "≥": "\\ge ",
    "≠": "\\ne ",
    "±": "\\pm ",
    "∓": "\\mp ",
    "°": "^\\circ ",
    "θ": "\\theta ",
    "α": "\\alpha ",
    "β": "\\beta ",
    "∪": "\\cup ",
    "∩": "\\cap ",
    "Å": "",
}
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_ROOT = re.compile(r"√\s*(\([^()]*\)|\{[^{}]*\}|\d+(?:\.\d+)?|[A-Za-z])")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
# `1.5 x 10^-3`, `1.5*10^(-3)`: plain-text powers of ten.
_TIMES_TEN = re.compile(r"(\d)\s*(?:[xX*]|\\times|\\cdot)\s*10\s*\^\s*\(?\s*([-+]?\d+)\s*\)?")
_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_WORDS)}
_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*(?:\\times|\\cdot)\s*10\^\{?-?\d+\}?)?"
_PLAIN_NUMBER = re.compile(rf"^\s*{_NUMBER}\s*$")
# A number, then what reads as words: two or more letters, or a non-ASCII letter, possibly in \text{}.
_NUMBER_THEN_WORDS = re.compile(
    rf"^\s*({_NUMBER})\s*(?:\\[ ,;:!]|~)*\s*(?:\\(?:text|mathrm|textrm|mbox|operatorname)\s*\{{)?\s*"
    r"(?P<word>[A-Za-z]{2,}|[^\W\d_A-Za-z])"
)
# Words after a number that make it part of a larger answer, not a unit: `2 and 3`, `3 sin x`.
_NOT_UNITS = {
    *("sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "mod", "arcsin", "arccos"),
    *("and", "or", "if", "when", "for", "but", "then", "to", "except", "unless", "otherwise", "with", "is", "are"),
    *("plus", "minus", "times", "over", "divided"),
}
_SUBSCRIPTED = re.compile(r"(?<![\\A-Za-z])([A-Za-z])_(?:\{\s*([A-Za-z0-9]+)\s*\}|([A-Za-z0-9]))")
_STAND_INS = ("\\xi", "\\zeta", "\\eta", "\\kappa", "\\mu", "\\nu", "\\chi", "\\psi", "\\omega", "\\upsilon")


def _vulgar_fraction(ch: str) -> str | None:
    if not unicodedata.name(ch, "").startswith("VULGAR FRACTION"):
        return None
    value = Fraction(unicodedata.numeric(ch)).limit_denominator(100)
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def rewrite(s: str) -> str:
    """The same answer in the LaTeX math-verify reads (unicode symbols, e-notation)."""
    if s.isascii():
        return _powers_of_ten(s)
    s = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", s)
    s = _ROOT.sub(lambda m: "\\sqrt{" + m.group(1).strip("(){}") + "}", s)
    out = []
    for ch in s:
        fraction = _vulgar_fraction(ch) if not ch.isascii() else None
        out.append(fraction if fraction is not None else _SYMBOLS.get(ch, ch))
    return _powers_of_ten("".join(out)).strip()


def _powers_of_ten(s: str) -> str:
    s = _E_NOTATION.sub(r"\1\\times10^{\2}", s)
    return _TIMES_TEN.sub(r"\1\\times10^{\2}", s)


def is_number(s: str) -> bool:
    return bool(_PLAIN_NUMBER.match(s.strip().strip("$")))


def leading_number(s: str) -> str | None:
    """The number of `1680 distinct`, `12 \\text{ cm}` or `five`; None when what follows the number
    could be math (`2x`, `3 \\sin x`, `5 + y`)."""
    words = s.strip().rstrip(".").lower().split()
    if words and words[0] in _NUMBER_WORDS and (len(words) == 1 or words[1] not in _NOT_UNITS):
        return _NUMBER_WORDS[words[0]]  # "three", "three boxes"
    m = _NUMBER_THEN_WORDS.match(s)
    if not m or m.group("word").lower() in _NOT_UNITS:
        return None
    return m.group(1)


def stand_in_subscripts(gold: str, pred: str) -> tuple[str, str]:
    """Give each subscripted symbol one stand-in on both sides (`E_{1}` and `E_1` alike)."""
    found = sorted({a + "_" + (b or c) for a, b, c in _SUBSCRIPTED.findall(gold + " " + pred)})
    if not found:
        return gold, pred
    free = [s for s in _STAND_INS if s not in gold and s not in pred]
    if len(free) < len(found):
        return gold, pred
    names = dict(zip(found, free))

    def swap(text: str) -> str:
        return _SUBSCRIPTED.sub(lambda m: names[m.group(1) + "_" + (m.group(2) or m.group(3))] + " ", text)

    return swap(gold), swap(pred)
