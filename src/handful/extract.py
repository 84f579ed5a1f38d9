"""Find the final answer in a model's output: plain string work, no sympy.

Order of preference, first hit wins: the last non-empty \\boxed{}/\\fbox{} (with boxes
separated only by commas or "and" joined, repeats collapsed), "Final Answer:",
"The answer is", GSM8K "####", the last bold span, the inline math of the closing sentence,
and, only when the caller allows it (a plain-number reference and an output that was not cut
off), the last number, preferring one stated as a result. Multiple choice looks for a letter
instead. The part after the end of thinking is searched first; the thinking only when that
part has nothing.
"""

from __future__ import annotations

import re
from typing import NamedTuple

BOX_COMMANDS = ("\\boxed", "\\fbox")
_BOX_GAP = re.compile(r"^\s*(?:(?:,|;|and|or|\\text\{\s*(?:and|or|,)\s*\}|\\quad|\\,|\$\s*,?\s*\$)\s*)?$")
# No two optional runs of \s may stand side by side: that backtracks in O(n^3) on a long
# run of spaces. Hence the (?:\s*[:：])? shape.
_FINAL = re.compile(r"final\s+answer(?:\s+is)?(?:\s*[:：])?\s*(.+)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"the\s+(?:correct\s+)?answer\s+is(?:\s*[:：])?\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)")
# An empty "Final Answer:" leaves only its colon behind, which is no answer.
_ANSWER_LIKE = re.compile(r"[\w\\]")
_BOLD = re.compile(r"\*\*([^*\n]{1,80}?)\*\*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^\s*-?[\d,]*\.?\d+\s*$")
_BARE_ARGUMENT = re.compile(r"-?\d+(?:\.\d+)?|[A-Za-z]")
_DOLLARS = re.compile(r"\$\$?(.+?)\$\$?")
_INLINE_MATH = re.compile(r"\\\((.+?)\\\)|(?<![$\\])\$([^$]+?)\$(?!\$)")
_INLINE_GAP = re.compile(r"^\s*(?:,|and|or|, and|, or)?\s*$")
_NAMED = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=]+)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A number written as a modifier ("24-hour", "3-person") describes, it does not answer.
_MODIFIER = re.compile(r"-[A-Za-z]")
# A number that an operator follows is the start of an expression, not its result ("= 4 \\cdot 2").
_CONTINUED = re.compile(r"\s*(?:[-+*/^(×·]|\\(?:cdot|times|div|pm)\b)")
# Words after which a number states a result: "there are 1164", "she needs 45", "= 18", "A: 18".
_CUE = re.compile(
    r"(?:\b(?:is|are|was|were|be|equals?|gets?|needs?|makes?|earns?|has|have|had|takes?|costs?|totals?|remains?"
    r"|total\s+of)\s+|[=:]\s*)(?:\\?\$\s*|(?:about|approximately|exactly|only)\s+)?$",
    re.IGNORECASE,
)
_LETTER_PATTERNS = [
    re.compile(r"answer(?:\s+is)?(?:\s*[:：])?\s*\(?\\?(?:text\{)?([A-J])\b\)?", re.IGNORECASE),
    re.compile(r"^[ \t]*\(?([A-J])\)?(?:[.:)]|[ \t]*$)", re.MULTILINE),
    re.compile(r"\(([A-J])\)"),
]


class Extraction(NamedTuple):
    answer: str | None
    method: str


def split_thinking(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str | None, str]:
    """(thinking, answer part). Thinking ends at the first closing delimiter (a model may
    write another one later, in its answer); never closed means an empty answer part."""
    if close_tag and close_tag in text:
        head, _, tail = text.partition(close_tag)
        if open_tag and open_tag in head:
            head = head.split(open_tag, 1)[1]
        return head, tail
    if open_tag and open_tag in text:
        return text.split(open_tag, 1)[1], ""
    return None, text


def _box_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every balanced \\boxed{...} / \\fbox{...}."""
    spans = []
    for command in BOX_COMMANDS:
        start = text.find(command)
        while start != -1:
            i = start + len(command)
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == "{":
                depth, j = 0, i
                while j < len(text):
                    if text[j] == "{":
                        depth += 1
                    elif text[j] == "}":
                        depth -= 1
                        if depth == 0:
                            spans.append((start, j + 1, text[i + 1 : j]))
                            break
                    j += 1
            elif i > start + len(command):
                # `\boxed 2`: TeX takes the next token as the argument.
                token = _BARE_ARGUMENT.match(text, i)
                if token:
                    spans.append((start, token.end(), token.group(0)))
            start = text.find(command, start + 1)
    return sorted(spans)


def last_boxed(text: str) -> str | None:
    spans = [s for s in _box_spans(text) if s[2].strip()]
    if not spans:
        return None
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if span[1] <= group[0][0] and _BOX_GAP.match(text[span[1] : group[0][0]]):
            group.insert(0, span)
        else:
            break
    contents = []
    for _, _, content in group:
        if content.strip() not in contents:
            contents.append(content.strip())
    return ", ".join(contents)


def clean(answer: str) -> str:
    """Strip what surrounds an answer: markdown, math delimiters, a trailing full stop."""
    s = answer.strip()
    boxed = last_boxed(s)
    if boxed is not None:
        return boxed
    s = s.replace("**", "").strip()
    dollars = _DOLLARS.search(s)
    if dollars:
        s = dollars.group(1)
    for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)]
    s = s.strip().rstrip(".").strip()
    # "The final answer is 5. I hope it is correct." keeps only the first sentence.
    return re.split(r"\.\s+[A-Z]", s, maxsplit=1)[0].strip()


def _find_math(part: str, last_number: bool, explicit_only: bool = False) -> Extraction:
    boxed = last_boxed(part)
    if boxed is not None:
        return Extraction(boxed, "boxed")
    for name, pattern in (("final_answer", _FINAL), ("answer_is", _ANSWER_IS), ("hashes", _HASHES)):
        if explicit_only and name == "answer_is":
            continue  # "so the answer is 5? Wait" is thinking aloud, not a final answer
        hits = pattern.findall(part)
        answer = clean(hits[-1]) if hits else ""
        if _ANSWER_LIKE.search(answer):
            return Extraction(answer, name)
    if explicit_only:
        return Extraction(None, "none")
    bold = [b for b in _BOLD.findall(part) if any(c.isdigit() for c in b) and not b.rstrip().endswith(":")]
    if bold:
        return Extraction(clean(bold[-1]), "bold")
    inline = _last_sentence_math(part)
    if inline is not None:
        return Extraction(inline, "inline")
    if last_number:
        number = _last_number(part)
        if number is not None:
            return Extraction(number, "last_number")
    return Extraction(None, "none")


def _sentences(part: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(part.strip()) if s.strip()]


def _last_sentence_math(part: str) -> str | None:
    """The inline math that closes the last sentence ("... is \\(t = 2\\)."), several joined by
    "and" or commas read as one list; a `name =` in front of each is dropped. Math followed by
    more words is the subject, not the answer ("the degree of \\(f(x)\\) is 3")."""
    sentences = _sentences(part)
    if not sentences:
        return None
    spans = list(_INLINE_MATH.finditer(sentences[-1]))
    if not spans or sentences[-1][spans[-1].end() :].strip(" .!*"):
        return None
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not _INLINE_GAP.match(sentences[-1][span.end() : group[0].start()]):
            break
        group.insert(0, span)
    answers = []
    for m in group:
        math = (m.group(1) or m.group(2)).strip()
        named = _NAMED.match(math)
        answers.append(named.group(1).strip() if named else math)
    return ", ".join(a for a in answers if a) or None


def _last_number(part: str) -> str | None:
    """The last number of the last sentence that has one, preferring one stated as a result
    over one in a trailing clause ("There are 1164 times ... on a 24-hour clock")."""
    for sentence in reversed(_sentences(part)):
        numbers = [m for m in _NUMBER.finditer(sentence) if not _MODIFIER.match(sentence, m.end())]
        if numbers:
            stated = [
                m for m in numbers if _CUE.search(sentence[: m.start()]) and not _CONTINUED.match(sentence, m.end())
            ]
            return (stated or numbers)[-1].group(0).replace(",", "").rstrip(".")
    return None


def _find_letter(part: str, choices: list[str] | None, explicit_only: bool = False) -> Extraction:
    letters = "ABCDEFGHIJ"[: len(choices)] if choices else "ABCDEFGHIJ"
    boxed = last_boxed(part)
    if boxed is not None:
        inner = re.sub(r"\\text\{([^}]*)\}", r"\1", boxed).strip().strip("()").strip()
        if len(inner) >= 1 and inner[0] in letters and (len(inner) == 1 or not inner[1].isalnum()):
            return Extraction(inner[0], "boxed")
        for letter, choice in zip(letters, choices or []):
            if clean(inner) == clean(choice):
                return Extraction(letter, "boxed_choice_text")
    for pattern in _LETTER_PATTERNS[:1] if explicit_only else _LETTER_PATTERNS:
        hits = [h.upper() for h in pattern.findall(part) if h.upper() in letters]
        if hits:
            return Extraction(hits[-1], "letter")
    return Extraction(None, "none")


def extract_answer(
    text: str,
    *,
    answer_format: str = "math",
    choices: list[str] | None = None,
    last_number: bool = False,
    thinking_delimiters: tuple[str, str] = ("<think>", "</think>"),
    truncated: bool = False,
) -> Extraction:
    """The final answer. A `truncated` output (cut at the token limit) never finished: only an
    answer it marked as final counts (a box, "Final Answer:", "####", "the answer is (B)"), and
    only after its thinking; its thinking, bold text and last number are not searched."""
    thinking, answer_part = split_thinking(text, *thinking_delimiters)
    parts = [(answer_part, "")] + ([(thinking, "@thinking")] if thinking and not truncated else [])
    for part, where in parts:
        if answer_format == "choice":
            found = _find_letter(part, choices, explicit_only=truncated)
        else:
            found = _find_math(part, last_number and not truncated, explicit_only=truncated)
        if found.answer is not None:
            return Extraction(found.answer, found.method + where)
    return Extraction(None, "none")


def is_plain_number(s: str) -> bool:
    return bool(_PLAIN_NUMBER.match(s))
