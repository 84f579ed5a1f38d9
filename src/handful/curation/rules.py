"""Validation and quality rules: plain functions a user can read, switch off and extend.

A rule takes a Problem and returns None (keep) or the reason to drop it. The built-in rules
are s1's string filters made explicit; `extra` rules in a recipe are regular expressions
that drop a problem whose question matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from handful.curation.text import tokens
from handful.records import Problem

Rule = Callable[[Problem], str | None]

_FIGURE = re.compile(
    r"\b(?:see|shown in|in|from|use) the (?:figure|diagram|picture|image|graph|table) (?:below|above|shown)\b|"
    r"\bfigure\s+\d|<img\b|!\[[^\]]*\]\(|\.(?:png|jpe?g|gif|svg)\b",
    re.IGNORECASE,
)
_ASCII_ART_LINE = re.compile(r"^[\s|_\-+*/\\.=#<>^v]{6,}$")
_NUMBERED = re.compile(r"^\s*\(?([1-9])[.)]\s", re.MULTILINE)
_LETTER = re.compile(r"[^\W\d_]")


def cleanup(problem: Problem) -> Problem:
    """Line endings, surrounding space and non-breaking spaces: nothing that changes meaning."""
    question = problem.question.replace("\r\n", "\n").replace("\u00a0", " ").strip()
    return problem if question == problem.question else problem.model_copy(update={"question": question})


def missing_figure(problem: Problem, keep_asy: bool = True) -> str | None:
    text = problem.question
    if "[asy]" in text:
        return None if keep_asy else "has an [asy] figure (keep_asy is off)"
    found = _FIGURE.search(text)
    return f"refers to a figure that is not in the text ({found.group(0)!r})" if found else None


def ascii_art(problem: Problem) -> str | None:
    lines = [line for line in problem.question.splitlines() if _ASCII_ART_LINE.match(line)]
    return f"{len(lines)} lines of ASCII-art diagram" if len(lines) >= 2 else None


def broken_numbering(problem: Problem) -> str | None:
    numbers = [int(n) for n in _NUMBERED.findall(problem.question)]
    if len(numbers) >= 2 and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return f"numbered parts out of order or missing: {numbers}"
    return None


def truncated(problem: Problem) -> str | None:
    text = problem.question.rstrip()
    unescaped = re.sub(r"\\\$", "", text)
    if unescaped.count("$") % 2:
        return "unbalanced $ (text cut off inside math)"
    braces = text.replace("\\{", "").replace("\\}", "")
    if braces.count("{") != braces.count("}"):
        return "unbalanced braces (text cut off)"
    if re.search(r"(?:,|\b(?:the|of|and|a|an|to|is))$", text, re.IGNORECASE):
        return "ends mid-sentence"
    return None


def too_short(problem: Problem, min_words: int = 4) -> str | None:
    # Tokens, math included: "Compute $\\sqrt{(31)(30)(29)(28)+1}$." is two words but a whole problem.
    count = len(tokens(problem.question))
    return f"only {count} tokens" if count < min_words else None


def too_long(problem: Problem, max_chars: int = 6000) -> str | None:
    return f"{len(problem.question)} characters (> {max_chars})" if len(problem.question) > max_chars else None


def not_english(problem: Problem, min_ascii: float = 0.9) -> str | None:
    # Letters outside math; LaTeX commands are ASCII and would hide other languages.
    prose = re.sub(r"\$[^$]*\$|\\[a-zA-Z]+", " ", problem.question)
    letters = _LETTER.findall(prose)
    if len(letters) < 20:
        return None
    share = sum(c.isascii() for c in letters) / len(letters)
    return f"{share:.0%} of letters are Latin ASCII (another language?)" if share < min_ascii else None


def pattern_rule(name: str, pattern: str) -> Rule:
    compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)

    def rule(problem: Problem) -> str | None:
        found = compiled.search(problem.question)
        return f"{name}: matches {found.group(0)[:40]!r}" if found else None

    return rule
