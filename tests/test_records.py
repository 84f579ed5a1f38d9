import gzip
import json
import logging

import pytest

from handful.errors import RecordError
from handful.records import Generation, Problem, RecordStore, read_dicts, read_jsonl, write_jsonl


def _problem(i: int) -> Problem:
    return Problem(id=f"p{i}", source="t", question=f"What is {i}+{i}?", answer=str(2 * i))


def test_roundtrip_plain_and_gzip(tmp_path):
    problems = [_problem(i) for i in range(5)]
    write_jsonl(tmp_path / "a.jsonl", problems)
    assert read_jsonl(tmp_path / "a.jsonl", Problem) == problems
    with gzip.open(tmp_path / "a.jsonl.gz", "wb") as f:
        f.write((tmp_path / "a.jsonl").read_bytes())
    assert read_jsonl(tmp_path / "a.jsonl.gz", Problem) == problems


def test_line_separator_inside_a_record_is_not_a_line_break(tmp_path):
    p = Problem(id="x", source="t", question="first\u2028second\u2029third", answer="1")
    write_jsonl(tmp_path / "a.jsonl", [p, _problem(1)])
    back = read_jsonl(tmp_path / "a.jsonl", Problem)
    assert len(back) == 2 and back[0].question == "first\u2028second\u2029third"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "source": "s", "question": "q"', "bad.jsonl:2: malformed JSON"),
        ('{"id": "a", "source": "s", "question": "q"}', "bad.jsonl:2: field 'answer': Field required"),
        (
            '{"id": "a", "source": "s", "question": ["q"], "answer": "1"}',
            "bad.jsonl:2: field 'question': Input should be a valid string",
        ),
        (
            '{"id": "a", "source": "s", "question": "q", "answer": "1", "colour": 1}',
            "bad.jsonl:2: field 'colour': Extra inputs are not permitted",
        ),
        ("[1, 2]", "bad.jsonl:2: expected a JSON object, got list"),
        (
            '{"id": "a", "source": "s", "question": "q", "answer": "1", "answer_format": "essay"}',
            "field 'answer_format'",
        ),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(_problem(0).model_dump_json() + "\n" + line + "\n")
    with pytest.raises(RecordError) as err:
        read_jsonl(path, Problem)
    assert message in str(err.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(RecordError, match="empty.jsonl: file is empty"):
        read_jsonl(tmp_path / "empty.jsonl", Problem)
    assert read_jsonl(tmp_path / "empty.jsonl", Problem, allow_empty=True) == []
    with pytest.raises(RecordError, match="nope.jsonl: no such file"):
        list(read_dicts(tmp_path / "nope.jsonl"))


def test_not_utf8_is_named(tmp_path):
    (tmp_path / "latin.jsonl").write_bytes(b'{"a": "caf\xe9"}\n')
    with pytest.raises(RecordError, match="latin.jsonl:1: not UTF-8"):
        list(read_dicts(tmp_path / "latin.jsonl"))


def _gen(pid: str, i: int) -> Generation:
    return Generation(problem_id=pid, sample_index=i, model="m", text=f"\\boxed{{{i}}}")


def test_store_appends_and_knows_what_is_done(tmp_path):
    path = tmp_path / "s.jsonl"
    with RecordStore(path, Generation, key=lambda g: g.key) as store:
        store.add(_gen("a", 0))
        store.add(_gen("a", 1))
        with pytest.raises(ValueError, match="already stored"):
            store.add(_gen("a", 1))
    with RecordStore(path, Generation, key=lambda g: g.key) as store:
        assert "/a#0" in store and "/a#1" in store and len(store) == 2
        store.add(_gen("b", 0))
    assert [g.problem_id for g in read_jsonl(path, Generation)] == ["a", "a", "b"]


def test_store_drops_a_torn_last_line_and_resumes(tmp_path, caplog):
    path = tmp_path / "s.jsonl"
    whole = _gen("a", 0).model_dump_json() + "\n"
    path.write_text(whole + _gen("a", 1).model_dump_json()[:25])
    with (
        caplog.at_level(logging.WARNING, logger="handful.records"),
        RecordStore(path, Generation, key=lambda g: g.key) as store,
    ):
        assert path.read_text() == whole  # the torn line is gone from the file
        assert "torn last line" in caplog.text
        assert "/a#0" in store and "/a#1" not in store and len(store) == 1
        store.add(_gen("a", 1))
    assert len(read_jsonl(path, Generation)) == 2


def test_store_refuses_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(_gen("a", 0).model_dump_json() + "\n{oops\n" + _gen("a", 1).model_dump_json() + "\n")
    with pytest.raises(RecordError, match="s.jsonl:2: malformed JSON"):
        RecordStore(path, Generation, key=lambda g: g.key)
    assert "{oops" in path.read_text()  # nothing was thrown away


def test_dicts_keep_foreign_schemas(tmp_path):
    (tmp_path / "f.jsonl").write_text(json.dumps({"q": "x", "a": 1}) + "\n")
    assert list(read_dicts(tmp_path / "f.jsonl")) == [(1, {"q": "x", "a": 1})]
