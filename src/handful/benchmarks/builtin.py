"""Loaders for the benchmarks shipped in `data/`, each normalised to `Problem`.

Every file is a gzip of a byte-identical copy of a public file; `data/NAME/SOURCE.md`
says where it came from and under which license.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from handful.errors import RecordError
from handful.extract import last_boxed
from handful.records import Problem, read_dicts

DATA = Path(__file__).parent / "data"


def _rows(name: str):
    return read_dicts(DATA / name / "test.jsonl.gz")


def _solution_answer(solution: str, where: str) -> str:
    answer = last_boxed(solution)
    if answer is None:
        raise ValueError(f"{where}: solution has no \\boxed{{}} answer")
    return answer


def _space(text: str) -> str:
    return " ".join(text.split())


def math500() -> list[Problem]:
    return [
        Problem(
            id=r["unique_id"],
            source="math500",
            question=r["problem"],
            answer=r["answer"],
            solution=r["solution"],
            domain=r["subject"],
            metadata={"level": int(r["level"]), "unique_id": r["unique_id"]},
        )
        for _, r in _rows("math500")
    ]


def aime24() -> list[Problem]:
    return [
        Problem(
            id=f"aime24-{r['id']}",
            source="aime24",
            question=r["problem"],
            answer=str(int(r["answer"])),
            answer_format="integer",
            solution=r["solution"],
            metadata={"url": r["url"]},
        )
        for _, r in _rows("aime24")
    ]


def aime25() -> list[Problem]:
    return [
        Problem(
            id=f"aime25-{r['id']}",
            source="aime25",
            question=r["problem"],
            answer=str(int(r["answer"])),
            answer_format="integer",
            metadata={"source_file": r["source_file"]},
        )
        for _, r in _rows("aime25")
    ]


def amc23() -> list[Problem]:
    # AMC answers are stored as floats (27.0); all are whole numbers, graded as integers.
    return [
        Problem(
            id=f"amc23-{r['id']}",
            source="amc23",
            question=r["problem"],
            answer=str(int(float(r["answer"]))),
            answer_format="integer",
            metadata={"url": r["url"]},
        )
        for _, r in _rows("amc23")
    ]


def gsm8k_problems(rows, source: str) -> list[Problem]:
    """GSM8K records (test or train): the answer after `####`, its thousands commas dropped."""
    problems = []
    for number, r in rows:
        solution, _, answer = r["answer"].rpartition("####")
        problems.append(
            Problem(
                id=f"{source}-{number - 1}",
                source=source,
                question=r["question"],
                answer=answer.strip().replace(",", ""),
                answer_format="integer",
                solution=solution.strip(),
            )
        )
    return problems


def gsm8k() -> list[Problem]:
    return gsm8k_problems(_rows("gsm8k"), "gsm8k")


def minerva() -> list[Problem]:
    return [
        Problem(
            id=f"minerva-{r['idx']}",
            source="minerva",
            question=r["problem"],
            answer=_solution_answer(r["solution"], f"minerva:{r['idx']}"),
            solution=r["solution"],
            domain=r["type"],
        )
        for _, r in _rows("minerva")
    ]


def _olympiad_list(value) -> list:
    # The copy stores lists as Python reprs in some fields and JSON lists in others.
    return value if isinstance(value, list) else ast.literal_eval(value)


def olympiadbench() -> list[Problem]:
    problems = []
    for _, r in _rows("olympiadbench"):
        answer = _olympiad_list(r["final_answer"])[0].strip().rstrip(".").strip()
        answer = re.sub(r"^\$(.*)\$$", r"\1", answer, flags=re.DOTALL)
        question = r["question"] if r.get("context") in (None, "None") else f"{r['context']}\n\n{r['question']}"
        problems.append(
            Problem(
                id=f"olympiadbench-{r['id']}",
                source="olympiadbench",
                question=question,
                answer=answer,
                solution="\n\n".join(_olympiad_list(r["solution"])),
                domain=r["subfield"],
                metadata={"answer_type": r["answer_type"], "unit": r["unit"], "multiple": r["is_multiple_answer"]},
            )
        )
    return problems


def math_test() -> list[Problem]:
    """The MATH test problems that are not in MATH-500 (MATH-500 is a subset of MATH test)."""
    in_500 = {_space(p.question) for p in math500()}
    problems = []
    for _, r in _rows("math"):
        if _space(r["problem"]) in in_500:
            continue
        problems.append(
            Problem(
                id=f"math-{r['idx']}",
                source="math",
                question=r["problem"],
                answer=_solution_answer(r["solution"], f"math:{r['idx']}"),
                solution=r["solution"],
                domain=r["type"],
                metadata={"level": r["level"]},
            )
        )
    return problems


def gpqa_diamond(path: str | Path) -> list[Problem]:
    """GPQA-Diamond from a file the user holds: never shipped, at its authors' request."""
    problems = []
    for number, r in read_dicts(path):
        where = f"{path}:{number}"
        missing = [k for k in ("options", "answer") if k not in r] + (
            [] if "question" in r or "ori_question" in r else ["question"]
        )
        if missing:
            raise RecordError(
                f"{where}: no field {', '.join(map(repr, missing))} (GPQA-Diamond rows have question, options, answer); "
                f"the row has {', '.join(sorted(r))}"
            )
        try:
            options = r["options"] if isinstance(r["options"], list) else ast.literal_eval(r["options"])
        except (ValueError, SyntaxError):
            raise RecordError(f"{where}: field 'options' is not a list of answers") from None
        if not isinstance(options, list) or not 2 <= len(options) <= 4 or not isinstance(r["answer"], str):
            raise RecordError(f"{where}: field 'options' must list 2 to 4 answers and 'answer' must be a letter")
        letters = "ABCD"[: len(options)]
        question = r.get("ori_question") or r["question"]
        listed = "\n".join(f"{letter}. {option}" for letter, option in zip(letters, options))
        problems.append(
            Problem(
                id=f"gpqa-{r.get('id', number - 1)}",
                source="gpqa_diamond",
                question=f"{question}\n\n{listed}",
                answer=r["answer"].strip().upper(),
                answer_format="choice",
                choices=[str(o) for o in options],
            )
        )
    return problems


# (where the shipped file comes from, its license); data/NAME/SOURCE.md has the details.
SOURCES: dict[str, tuple[str, str]] = {
    "math500": ("ZubinGou/math-evaluation-harness@db77bc6 data/math_oai/test.jsonl (= openai/prm800k)", "MIT"),
    "aime24": ("QwenLM/Qwen2.5-Math@a45202b evaluation/data/aime24/test.jsonl", "MIT; problems (c) MAA"),
    "aime25": ("derived from eth-sri/matharena@81f103e data/aime/aime_2025_{I,II}", "MIT; problems (c) MAA"),
    "amc23": ("QwenLM/Qwen2.5-Math@a45202b evaluation/data/amc23/test.jsonl", "MIT; problems (c) MAA"),
    "gsm8k": ("openai/grade-school-math@3101c7d grade_school_math/data/test.jsonl", "MIT"),
    "minerva": (
        "QwenLM/Qwen2.5-Math@a45202b evaluation/data/minerva_math/test.jsonl",
        "MIT; MIT OCW problems CC BY-NC-SA",
    ),
    "olympiadbench": ("QwenLM/Qwen2.5-Math@a45202b evaluation/data/olympiadbench/test.jsonl", "MIT"),
    "math": ("ZubinGou/math-evaluation-harness@db77bc6 data/math/test.jsonl", "MIT"),
}
