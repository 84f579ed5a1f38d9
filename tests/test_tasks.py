import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handful import tasks
from handful.benchmarks import benchmark_name, load_benchmark
from handful.errors import ConfigError, UnknownNameError
from handful.grading import GradeRequest, check
from handful.records import Problem
from handful.tasks.countdown import verify


def draw(name):
    task = tasks.TASKS[name]
    return st.builds(
        lambda d, s, i: tasks.problem(name, d, s, i),
        st.integers(task.lowest, task.highest),
        st.integers(0, 10**9),
        st.integers(0, 10**6),
    )


@pytest.mark.parametrize("name", sorted(tasks.TASKS))
@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_trace_arrives_at_the_answer_and_the_grader_agrees(name, data):
    # problem() itself refuses a trace that disagrees with the directly computed answer;
    # here the grader reads the trace as it would read a model's output.
    p = data.draw(draw(name))
    grade = check(GradeRequest(p.trace, p.answer, p.answer_format, tuple(p.choices) if p.choices else None))
    assert grade.correct, (p.question, p.trace, grade)
    assert p.trace.count("\\boxed{") == 1 and p.trace.rstrip().endswith("$.")


def test_an_independent_reading_of_each_arithmetic_answer():
    # The answer against Python's own arithmetic on the numbers in the question.
    from decimal import Decimal
    from fractions import Fraction

    for seed in range(200):
        for name, op in [
            ("addition", "+"),
            ("subtraction", "-"),
            ("decimal-addition", "+"),
            ("decimal-subtraction", "-"),
        ]:
            p = tasks.problem(name, 1 + seed % 12 + (name.startswith("decimal")), seed, 0)
            a, b = p.question.removeprefix("What is ").rstrip("?").split(f" {op} ")
            expected = Decimal(a) + Decimal(b) if op == "+" else Decimal(a) - Decimal(b)
            assert Decimal(p.answer) == expected
        p = tasks.problem("multiplication", 1 + seed % 8, seed, 0)
        a, b = p.question.removeprefix("What is ").rstrip("?").split(" × ")
        assert int(p.answer) == int(a) * int(b)
        p = tasks.problem("remainder", 2 + seed % 20, seed, 0)
        a, m = p.metadata["a"], p.metadata["m"]
        assert int(p.answer) == a % m and f"{a} is divided by {m}" in p.question
        p = tasks.problem("linear", 1 + seed % 4, seed, 0)
        f = p.metadata
        x = Fraction(p.answer)
        assert f["a"] * x + f["b"] == f["c"] * x + f["e"]


@pytest.mark.parametrize("name", ["subtraction", "decimal-subtraction"])
def test_a_borrow_is_decided_after_both_digits_are_written_and_decided_right(name):
    # Small models slip on the borrow when the second digit is not yet on the line: each column
    # writes "top - bottom:" first, then says whether top is less than bottom, and that must be true.
    column = re.compile(r"^[a-z-]+: (?:\d - 1 borrowed = -?\d, )?(-?\d) - (\d): \1 is (not )?less than \2, so ")
    seen = set()
    for seed in range(60):
        p = tasks.problem(name, 2 + seed % 5, seed, 0)
        lines = [line for line in p.trace.splitlines() if " is less than " in line or " is not less than " in line]
        assert lines, p.trace
        for line in lines:
            match = column.match(line)
            assert match, line
            top, bottom, negated = int(match[1]), int(match[2]), bool(match[3])
            assert negated == (top >= bottom), line
            assert ("borrow 1" in line) == (top < bottom), line
            seen.add(negated)
    assert seen == {True, False}


def test_the_same_seed_gives_the_same_problems_and_another_seed_others():
    a = tasks.sample("gsm-template", 20, seed=5)
    assert [p.model_dump() for p in a] == [p.model_dump() for p in tasks.sample("gsm-template", 20, seed=5)]
    b = tasks.sample("gsm-template", 20, seed=6)
    assert len({p.question for p in a} & {p.question for p in b}) == 0
    # Drawn in another interpreter (another hash salt): still the same.
    code = "from handful import tasks; print(tasks.problem('countdown', 5, 9, 3).question)"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"}
    )
    assert other.stdout.strip() == tasks.problem("countdown", 5, 9, 3).question


def test_difficulty_changes_the_problem_size():
    small, large = tasks.problem("addition", 2, 0, 0), tasks.problem("addition", 15, 0, 0)
    assert len(small.answer) <= 3 and len(large.answer) >= 15
    assert len(tasks.problem("countdown", 6, 0, 0).choices) == 6
    assert len(tasks.problem("gsm-template", 6, 0, 0).trace.splitlines()) > len(
        tasks.problem("gsm-template", 1, 0, 0).trace.splitlines()
    )


def test_a_problem_is_drawn_again_from_its_id_alone():
    for p in tasks.sample("probes", 24, seed=3):
        assert tasks.regenerate(p.id) == p
    with pytest.raises(ConfigError, match="not made by a handful task"):
        tasks.regenerate("gsm8k-17")
    with pytest.raises(ConfigError, match="between 1 and 18"):
        tasks.problem("addition", 40, 0, 0)


def test_gsm_noise_adds_an_irrelevant_sentence_only():
    for i in range(30):
        p = tasks.problem("gsm-noise", 3, 1, i)
        assert "does not change the answer" in p.trace
        assert p.metadata["family"] in ("shopping", "collection", "earnings")


def test_probes_mix_several_skills_at_several_difficulties():
    ps = tasks.sample("probes", 48, seed=0)
    assert {p.metadata["task"] for p in ps} >= {"addition", "countdown", "gsm-template", "linear", "remainder"}
    assert {p.metadata["difficulty"] for p in ps if p.metadata["task"] == "addition"} == {4, 10}


@pytest.mark.parametrize(
    "answer,ok",
    [
        ("(95 + 72) - (94 + 35)", True),
        ("95 + 72 - 94 - 35", True),  # another right expression
        ("72 - 35 - 94 + 95", True),
        ("95 \\times 1 + 72 - 94 - 35 + 0", False),  # numbers that were not given
        ("95 + 72 - 94 - 35 = 38", True),
        ("38 = 95 + 72 - 94 - 35", True),
        ("(95 + 72) - (94 + 34)", False),
        ("95 + 72 - 94", False),  # a number left out
        ("95 + 95 - 94 - 35 - 23", False),
        ("2**5 + 6", False),
        ("__import__('os')", False),
        ("95 / (94 - 94)", False),
        ("", False),
    ],
)
def test_countdown_accepts_any_right_expression_and_nothing_else(answer, ok):
    assert verify(answer, ["95", "72", "35", "94"], "38")[0] is ok


def test_countdown_reads_latex():
    assert verify("\\frac{70}{10} \\times 51 - 313", ["70", "10", "51", "313"], "44")[0]
    assert verify("51 - 70 \\div 10", ["70", "10", "51"], "44")[0]
    grade = check(GradeRequest("so $\\boxed{51-(70/10)}$", "44", "countdown", ("10", "51", "70")))
    assert grade.correct and grade.canonical == "44"
    grade = check(GradeRequest("I think 44", "44", "countdown", ("10", "51", "70")))
    assert grade.outcome == "no_answer"  # the bare target is no expression, and no last-number fallback


def test_specs_are_parsed_strictly():
    assert len(load_benchmark("dyn:addition?digits=12&n=7&seed=1")) == 7
    assert load_benchmark("dyn:addition?difficulty=12&n=7&seed=1") == load_benchmark(
        "dyn:addition?digits=12&n=7&seed=1"
    )
    assert benchmark_name("dyn:addition?digits=12&n=7&seed=1") == "dyn:addition?digits=12"
    assert benchmark_name("dyn:countdown?seed=1") == "dyn:countdown?numbers=4"
    for bad, message in [
        ("dyn:addition?digitz=3&seed=1", "unknown parameter 'digitz'"),
        ("dyn:addition?digits=three&seed=1", "must be an integer"),
        ("dyn:addition?digits=30&seed=1", "between 1 and 18"),
        ("dyn:addition?n=0&seed=1", "at least 1"),
        ("dyn:addition?digits=3", "no seed"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_benchmark(bad)
    with pytest.raises(UnknownNameError, match="addition"):
        load_benchmark("dyn:adition?seed=1")


def test_missing_seeds_are_drawn_fresh_or_taken_from_the_previous_run():
    specs, drawn = tasks.with_seeds(["gsm8k", "dyn:addition?digits=3&n=5", "dyn:linear?seed=4"])
    assert specs[0] == "gsm8k" and specs[2] == "dyn:linear?digits=1&n=100&seed=4"
    assert specs[1] == f"dyn:addition?digits=3&n=5&seed={drawn['dyn:addition?digits=3&n=5']}"
    again, drawn_again = tasks.with_seeds(["gsm8k", "dyn:addition?digits=3&n=5", "dyn:linear?seed=4"], previous=specs)
    assert again == specs and drawn_again == {}
    # Ten fresh draws are not all the same seed.
    assert len({tasks.with_seeds(["dyn:addition"])[0][0] for _ in range(10)}) > 1


def test_problems_round_trip_through_jsonl(tmp_path):
    from handful.records import read_jsonl, write_jsonl

    ps = tasks.sample("probes", 12, seed=2)
    write_jsonl(tmp_path / "p.jsonl", ps)
    assert read_jsonl(tmp_path / "p.jsonl", Problem) == ps


def run(*args):
    return subprocess.run([sys.executable, "-m", "handful", *args], capture_output=True, check=False, text=True)


def test_cli_lists_and_samples(tmp_path):
    listed = run("tasks", "--json")
    assert listed.returncode == 0
    both = json.loads(listed.stdout)
    assert {row["name"] for row in both["handful"]} == set(tasks.TASKS) | {"probes"}
    assert "rg/basic_arithmetic" in {row["name"] for row in both["reasoning_gym"]}
    out = tmp_path / "sys.jsonl"
    done = run("tasks", "sample", "system", "--n", "5", "--seed", "3", "--difficulty", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"system-d2-s3-{i}" for i in range(5)] and all(r["trace"] for r in rows)
    printed = run("tasks", "sample", "countdown", "--n", "2")
    assert [json.loads(line)["id"] for line in printed.stdout.splitlines()] == [
        "countdown-d4-s0-0",
        "countdown-d4-s0-1",
    ]
    bad = run("tasks", "sample", "countdwn")
    assert bad.returncode == 1 and "unknown task 'countdwn'" in bad.stderr and "countdown" in bad.stderr
    bad = run("tasks", "sample", "linear", "--difficulty", "9")
    assert bad.returncode == 1 and "between 1 and 4" in bad.stderr
