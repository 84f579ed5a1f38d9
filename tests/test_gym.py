"""Reasoning Gym's datasets as `dyn:rg/...` benchmarks: specs, seeds, the dataset's own
verifier as the grader (full credit only is correct), and clear errors for bad specs."""

import json

import pytest

from handful import tasks
from handful.errors import ConfigError
from handful.grading import Grader, GradeRequest, check_with_deadline
from handful.tasks import gym


def test_a_dataset_is_a_seeded_benchmark_like_handfuls_own():
    (spec,), drawn = tasks.with_seeds(["dyn:rg/basic_arithmetic?n=4&max_terms=3"])
    assert spec.startswith("dyn:rg/basic_arithmetic?max_terms=3&n=4&seed=") and len(drawn) == 1
    first, again = tasks.load(spec), tasks.load(spec)
    assert [p.question for p in first] == [p.question for p in again] and len(first) == 4
    assert all(p.answer_format == "rg" and p.metadata["rg"]["settings"] == {"max_terms": 3} for p in first)
    # A rerun with the same spec resumes with the seed it drew; another seed draws other problems.
    assert tasks.with_seeds(["dyn:rg/basic_arithmetic?n=4&max_terms=3"], [spec])[0] == [spec]
    other = tasks.load(spec.rsplit("=", 1)[0] + "=1")
    assert [p.question for p in other] != [p.question for p in first]
    assert tasks.short_name(spec) == "dyn:rg/basic_arithmetic?max_terms=3"
    # --limit draws only the sampled problems, the same ones as in the whole set.
    assert [p.id for p in tasks.load(spec, indices=[1, 3])] == [first[1].id, first[3].id]


def test_a_plus_in_a_setting_survives_the_seeded_spec():
    (spec,), _ = tasks.with_seeds(["dyn:rg/basic_arithmetic?operators=%2B&max_terms=2&n=3"])
    assert "operators=%2B" in spec and tasks.with_seeds([spec])[0] == [spec]
    assert all(" + " in p.question and " - " not in p.question for p in tasks.load(spec))


def test_a_mix_interleaves_datasets():
    problems = tasks.load("dyn:rg-mix?tasks=gcd,lcm,chain_sum&n=7&seed=3")
    assert [p.domain for p in problems] == ["gcd", "lcm", "chain_sum"] * 2 + ["gcd"]
    assert len({p.id for p in problems}) == 7


def _graded(problem, answer: str):
    return check_with_deadline(
        GradeRequest(f"So the answer is \\boxed{{{answer}}}.", problem.answer, "rg", verifier=gym.handle(problem)), 5.0
    )


def test_the_datasets_own_verifier_grades_and_only_full_credit_is_correct():
    problem = tasks.load("dyn:rg/basic_arithmetic?n=2&seed=5")[0]
    right = _graded(problem, problem.answer)
    assert right.correct and right.outcome == "correct" and right.score == 1.0
    part = _graded(problem, f"{problem.answer} in all")  # the reference inside a longer answer: partial credit
    assert not part.correct and part.outcome == "partial" and 0 < part.score < 1
    wrong = _graded(problem, "not a number")
    assert not wrong.correct and wrong.outcome == "incorrect" and wrong.score == 0.0
    # Votes count every fully right answer as one: the reference.
    assert right.canonical == problem.answer


def test_a_verifier_that_raises_is_an_outcome_not_a_crash():
    # prime_factorization's verifier calls int() on the answer.
    problem = tasks.load("dyn:rg/prime_factorization?n=1&seed=2")[0]
    with Grader(workers=1, timeout=5.0) as grader:
        (grade,) = grader.grade([GradeRequest("\\boxed{[[[}", problem.answer, "rg", verifier=gym.handle(problem))])
    assert grade.outcome == "timeout" and grade.method == "error: ValueError" and not grade.correct


@pytest.mark.parametrize(
    "spec,message",
    [
        ("dyn:rg/basic_arithmetc?seed=1", "did you mean basic_arithmetic"),
        ("dyn:rg/basic_arithmetic?max_term=3&seed=1", "no setting 'max_term'; its settings: min_terms, max_terms"),
        ("dyn:rg/basic_arithmetic?max_terms=x&seed=1", "max_terms='x' must be int"),
        ("dyn:rg/basic_arithmetic?format_style=fancy&seed=1", "must be one of simple, natural"),
        ("dyn:rg/basic_arithmetic?allow_negation=maybe&seed=1", "must be true or false"),
        (
            "dyn:rg/basic_arithmetic?min_terms=5&max_terms=2&seed=1",
            "refused these settings: max_terms must be >= min_terms",
        ),
        ("dyn:rg/basic_arithmetic?n=0&seed=1", "n must be at least 1"),
        ("dyn:rg-mix?tasks=gcd,lcmm&seed=1", "did you mean lcm"),
        ("dyn:rg-mix?n=3&seed=1", "a mix takes tasks="),
    ],
)
def test_bad_specs_are_named_errors(spec, message):
    with pytest.raises(ConfigError, match="benchmark") as found:
        tasks.load(spec)
    assert message in str(found.value)


def test_every_dataset_is_listed_with_its_settings():
    listed = {row["name"]: row["settings"] for row in gym.listing()}
    assert len(listed) >= 100 and "rg/basic_arithmetic" in listed
    assert {"name": "max_terms", "type": "int", "default": 6} in listed["rg/basic_arithmetic"]
    assert all(s["name"] not in ("seed", "size") for settings in listed.values() for s in settings)
    json.dumps(listed)  # plain data, for --json


def test_grpo_rewards_a_gym_problem_with_its_verifier():
    from handful.models import ModelSpec
    from handful.training.config import GRPOConfig
    from handful.training.grpo import dataset_rows
    from handful.training.rewards import Rewards

    spec = ModelSpec()
    rows = dataset_rows(GRPOConfig(problems="dyn:rg/basic_arithmetic?n=3&seed=4"), spec)
    assert all(json.loads(r["verifier"])["dataset"] == "basic_arithmetic" for r in rows)
    reward = Rewards(spec, {"accuracy": 1.0, "format": 0.0, "overlong": 0.0}, limit=100, buffer=10)
    completions = [f"<think>ok</think> \\boxed{{{r['answer']}}}" for r in rows] + ["<think>ok</think> \\boxed{0.5}"]
    rows.append(rows[0])
    got = reward(
        completions=completions,
        completion_ids=[[1] * 5] * len(rows),
        answer=[r["answer"] for r in rows],
        answer_format=[r["answer_format"] for r in rows],
        choices=[r["choices"] for r in rows],
        verifier=[r["verifier"] for r in rows],
    )
    assert got[:3] == [1.0, 1.0, 1.0] and got[3] == (1.0 if rows[0]["answer"] == "0.5" else 0.0)


def test_eval_on_a_gym_mix_records_scores_and_partial_credit(tiny_model, tmp_path):
    from handful.config import EvalConfig
    from handful.evaluation import evaluate
    from handful.records import Generation, read_jsonl

    cfg = EvalConfig(
        model=str(tiny_model),
        benchmarks=["dyn:rg-mix?tasks=gcd,basic_arithmetic&n=4"],
        sampling={"max_tokens": 8},
    )
    scores = evaluate(cfg, tmp_path)
    (name,) = scores.benchmarks
    assert name == "dyn:rg-mix?tasks=gcd,basic_arithmetic" and scores.benchmarks[name].n_problems == 4
    samples = read_jsonl(tmp_path / "samples.jsonl", Generation)
    assert all(g.outcome in ("correct", "partial", "incorrect", "no_answer", "timeout") for g in samples)
    run = json.loads((tmp_path / "run.json").read_text())
    assert "&seed=" in run["config"]["benchmarks"][0]  # drawn, kept for the rerun


def test_the_program_teacher_refuses_gym_problems_by_name():
    with pytest.raises(ConfigError, match="reasoning-gym, which writes no worked trace"):
        tasks.regenerate(tasks.load("dyn:rg/gcd?n=1&seed=1")[0].id)
