import json
from pathlib import Path

import pytest

import handful
from handful.benchmarks import BENCHMARKS, benchmark_name, list_benchmarks, load_benchmark, subset
from handful.errors import ConfigError, RecordError, UnknownNameError
from handful.grading import GradeRequest, check

COUNTS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "gsm8k": 1319,
    "minerva": 272,
    "olympiadbench": 675,
    "math": 4500,
}


def test_registry_counts():
    assert {i.name: i.count for i in list_benchmarks() if i.name in COUNTS} == COUNTS


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_problem_is_well_formed_and_its_own_answer_grades_correct(name):
    problems = load_benchmark(name)
    assert len({p.id for p in problems}) == len(problems)
    for p in problems[:40]:
        assert p.question.strip() and p.answer.strip()
        assert check(GradeRequest(f"\\boxed{{{p.answer}}}", p.answer, p.answer_format)).correct, p


def test_normalisation_of_answers():
    aime = {p.metadata["url"].rsplit("/", 1)[-1]: p for p in load_benchmark("aime24")}
    assert all(p.answer == str(int(p.answer)) for p in aime.values())  # "025" -> "25"
    assert any(p.answer == "33" for p in aime.values())  # stored as "033"
    assert load_benchmark("amc23")[0].answer == "27"
    gsm = load_benchmark("gsm8k")
    assert all("," not in p.answer and "<<" not in p.answer for p in gsm)
    assert gsm[0].answer == "18" and "####" not in gsm[0].solution
    olympiad = load_benchmark("olympiadbench")
    assert not any(p.answer.startswith("$") for p in olympiad)
    assert load_benchmark("minerva")[0].answer == "1.6"


def test_math_excludes_math500():
    in_500 = {" ".join(p.question.split()) for p in load_benchmark("math500")}
    assert not any(" ".join(p.question.split()) in in_500 for p in load_benchmark("math"))


def test_aime25_uses_the_clean_latex_copy():
    assert not any("\f" in p.question or "\t" in p.question for p in load_benchmark("aime25"))


def test_gpqa_is_never_shipped():
    package = Path(handful.__file__).parent
    assert not [f for f in package.rglob("*") if "gpqa" in f.name.lower()]
    with pytest.raises(ConfigError, match="--data PATH"):
        load_benchmark("gpqa_diamond")


def test_gpqa_from_a_user_file(gpqa_like_file):
    problems = load_benchmark("gpqa_diamond", data=gpqa_like_file)
    assert [(p.id, p.answer, p.answer_format) for p in problems] == [
        ("gpqa-0", "D", "choice"),
        ("gpqa-1", "A", "choice"),
        ("gpqa-2", "C", "choice"),
    ]
    first, _, third = problems
    assert first.choices == ["5 m", "10 m", "40 m", "20 m"]
    assert first.question.endswith("\n\nA. 5 m\nB. 10 m\nC. 40 m\nD. 20 m")
    assert "\u2028How far" in first.question  # read by lines, not fooled by U+2028
    assert third.choices == ["6", "12", "8", "4"] and "\nC. 8" in third.question  # options given as a string


def test_unknown_name_lists_closest_first():
    with pytest.raises(UnknownNameError) as err:
        load_benchmark("math5000")
    assert str(err.value).startswith("unknown benchmark 'math5000'; known: math500")


def test_user_jsonl_with_mapping(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(
        json.dumps({"q": "1+1?", "a": 2, "key": "x1"}) + "\n" + json.dumps({"q": "2+2?", "a": 4, "key": "x2"}) + "\n"
    )
    problems = load_benchmark(f"jsonl:{f}?question=q&answer=a&id=key&format=integer")
    assert [(p.id, p.answer, p.answer_format, p.source) for p in problems] == [
        ("x1", "2", "integer", "mine"),
        ("x2", "4", "integer", "mine"),
    ]
    assert benchmark_name(f"jsonl:{f}?question=q&answer=a&name=tiny") == "tiny"


def test_user_jsonl_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text(json.dumps({"q": "1+1?", "a": 2}) + "\n" + json.dumps({"q": "2+2?"}) + "\n")
    with pytest.raises(RecordError, match=r"mine.jsonl:2: field 'a' \(answer\) is missing"):
        load_benchmark(f"jsonl:{f}?question=q&answer=a")
    with pytest.raises(ConfigError, match="unknown mapping key"):
        load_benchmark(f"jsonl:{f}?questoin=q")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RecordError, match="empty.jsonl: file is empty"):
        load_benchmark(f"jsonl:{tmp_path / 'empty.jsonl'}")
    f.write_text(
        json.dumps({"question": "a", "answer": 1, "id": 1})
        + "\n"
        + json.dumps({"question": "b", "answer": 1, "id": 1})
        + "\n"
    )
    with pytest.raises(RecordError, match="appears twice"):
        load_benchmark(f"jsonl:{f}")


def test_user_jsonl_boxed_answers(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps({"problem": "p", "solution": "so \\boxed{\\frac{1}{2}}"}) + "\n")
    assert load_benchmark(f"jsonl:{f}?question=problem&answer_boxed=solution")[0].answer == "\\frac{1}{2}"


def test_parquet_source(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": ["x?", "y?"], "answer": ["1", "2"]}), tmp_path / "b.parquet")
    problems = load_benchmark(f"parquet:{tmp_path / 'b.parquet'}?question=problem")
    assert [p.answer for p in problems] == ["1", "2"]


def test_subset_is_seeded_and_stable():
    problems = load_benchmark("gsm8k")
    a, b, c = subset(problems, 20, seed=0), subset(problems, 20, seed=0), subset(problems, 20, seed=1)
    assert [p.id for p in a] == [p.id for p in b] != [p.id for p in c]
    assert len(a) == 20 and subset(problems, None) == problems  # no limit: every problem, in order


def test_every_shipped_dataset_has_its_source(tmp_path):
    data = Path(handful.__file__).parent / "benchmarks" / "data"
    for name in BENCHMARKS:
        assert (data / name / "SOURCE.md").exists()
