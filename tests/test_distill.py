import asyncio
import gzip
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handful.distill import DistillConfig, chosen, distill, import_traces
from handful.engines.limits import RateLimiter
from handful.errors import ConfigError
from handful.models import resolve
from handful.prompts import render
from handful.records import Generation, Problem, read_jsonl

# The first ten rows of each Sky-T1 output file (tests/data/SOURCE.md).
SKY = Path(__file__).resolve().parent / "data" / "sky_t1"


def test_the_program_teacher_makes_a_fine_tuning_set(tiny_model, tmp_path):
    cfg = DistillConfig(
        problems="dyn:probes?n=12&seed=5", teacher={"model": str(tiny_model), "engine": {"name": "program"}, "n": 2}
    )
    summary = distill(cfg, tmp_path)
    traces = read_jsonl(tmp_path / "traces.jsonl", Generation)
    assert len(traces) == 24 and all(g.correct for g in traces) and summary["correct"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and summary["sft_records"] == 12  # shortest of two identical traces, once per problem
    spec = resolve(str(tiny_model)).spec
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        answer = row["messages"][-1]["content"]
        assert (
            answer.startswith(spec.think_open)
            and spec.think_close in answer
            and "\\boxed{" in answer.split(spec.think_close)[1]
        )
    import datasets

    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train")
    assert loaded.num_rows == 12 and loaded[0]["messages"][0]["role"] == "system"
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["truncated"] == 0 and stats["never_closed_thinking"] == 0 and stats["completion_tokens"]["max"] > 0


def test_the_student_decides_the_delimiters_and_the_prompt(tiny_model, tmp_path):
    cfg = DistillConfig(
        problems="dyn:linear?n=2&seed=1",
        teacher={"model": str(tiny_model), "engine": {"name": "program"}},
        student="gemma3-270m",
        keep="all",
    )
    distill(cfg, tmp_path)
    row = json.loads((tmp_path / "sft.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]  # gemma3-270m has no system prompt
    problem = read_jsonl(tmp_path / "problems.jsonl", Problem)[0]
    assert row["messages"][0]["content"] == problem.question


def _g(pid, i, tokens, correct):
    return Generation(problem_id=pid, sample_index=i, model="t", text="x", completion_tokens=tokens, correct=correct)


def test_rejection_sampling_and_selection():
    traces = [_g("a", 0, 30, True), _g("a", 1, 10, True), _g("a", 2, 5, False), _g("b", 0, 7, False)]
    picked, empty = chosen(traces, "correct", "shortest")
    assert [g.sample_index for g in picked["a"]] == [1] and empty == ["b"]
    picked, _ = chosen(traces, "correct", "longest")
    assert [g.sample_index for g in picked["a"]] == [0]
    picked, empty = chosen(traces, "all", "all")
    assert [g.sample_index for g in picked["a"]] == [2, 1, 0] and empty == []


def test_max_cost_stops_between_rounds_and_a_rerun_pays_only_for_the_rest(tiny_model, tmp_path):
    base = dict(
        problems="dyn:addition?digits=3&n=10&seed=1",
        teacher={"model": str(tiny_model), "engine": {"name": "program"}},
        prices={"completion": 1000.0},
        round=4,
    )
    first = distill(DistillConfig(**base, max_cost=0.001), tmp_path)
    traces = read_jsonl(tmp_path / "traces.jsonl", Generation)
    assert len(traces) == 4 and first["stopped"] and first["cost_usd"] >= 0.001
    assert all(g.metadata["cost_usd"] == pytest.approx(g.completion_tokens * 1000 / 1e6) for g in traces)
    second = distill(DistillConfig(**base, max_cost=10.0), tmp_path)
    after = read_jsonl(tmp_path / "traces.jsonl", Generation)
    assert len(after) == 10 and len({g.problem_id for g in after}) == 10 and second["stopped"] is None
    assert [g.model_dump() for g in after[:4]] == [g.model_dump() for g in traces]  # kept, not redone
    assert second["cost_usd"] == pytest.approx(sum(g.metadata["cost_usd"] for g in after), abs=1e-6)
    with pytest.raises(ConfigError, match="holds traces for"):
        distill(DistillConfig(**{**base, "problems": "dyn:addition?digits=4&n=10&seed=1"}), tmp_path)


def test_the_rate_limiter_spaces_requests_and_tokens():
    now = [0.0]

    async def sleep(seconds):
        now[0] += seconds

    limiter = RateLimiter(requests_per_minute=60, tokens_per_minute=600, clock=lambda: now[0], sleep=sleep)

    async def run():
        starts = []
        for _ in range(25):
            await limiter.acquire()
            starts.append(now[0])
            limiter.spend(30)
        return starts

    starts = asyncio.run(run())
    # 30 tokens each at 600 tokens/min: after the first ten seconds' allowance (100 tokens:
    # four requests at once), tokens bind at one request per 3 s, not requests (one per second).
    assert starts[:4] == [0.0] * 4
    gaps = [b - a for a, b in itertools.pairwise(starts[4:])]
    assert all(g == pytest.approx(3.0, abs=1e-6) for g in gaps), gaps
    now[0] = 0.0
    fast = RateLimiter(requests_per_minute=60, clock=lambda: now[0], sleep=sleep)

    async def burst():
        out = []
        for _ in range(15):
            await fast.acquire()
            out.append(now[0])
        return out

    assert asyncio.run(burst())[-1] == pytest.approx(5.0, abs=1e-6)  # 10 at once, then one a second


@pytest.mark.slow
def test_distilling_through_a_server_survives_faults_and_a_crash(smollm2_path, tmp_path):
    pytest.importorskip("llama_cpp", reason="the test server is not installed (scripts/install-test-server.sh)")
    from servers import FaultProxy, LlamaServer

    from handful.models import MODELS, _gguf_source

    folder, name = _gguf_source(MODELS["smollm2-135m"])
    upstream = LlamaServer(folder / name, tmp_path / "server.log")
    proxy = FaultProxy(upstream.url, ["500", "429", "ok", "stall", "ok", "drop"], stall=20.0)
    args = [
        sys.executable,
        "-m",
        "handful",
        "distill",
        "--problems",
        "gsm8k-train",
        "--teacher",
        "openai:smollm2-135m",
        "--base-url",
        proxy.url,
        "--n",
        "2",
        "--temperature",
        "0.7",
        "--max-tokens",
        "48",
        "--concurrency",
        "2",
        "--set",
        "teacher.engine.request_timeout=8",
        "--set",
        "teacher.engine.max_retries=30",
        "--limit",
        "8",
        "--out",
        str(tmp_path / "run"),
    ]
    try:
        run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        traces = tmp_path / "run" / "traces.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not traces.exists() or traces.read_text().count("\n") < 4):
            time.sleep(0.2)
        upstream.crash()  # mid-run: requests now fail at the gateway until it is back
        time.sleep(3)
        upstream = LlamaServer(folder / name, tmp_path / "server.log", port=upstream.port)
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        records = read_jsonl(traces, Generation)
        assert len(records) == 16 and len({g.key for g in records}) == 16, proxy.seen
        assert proxy.delivered == 16, proxy.seen  # every answer paid for is one trace: none lost, none twice
        assert "upstream down" in proxy.seen and {"500", "429", "stall", "drop"} <= set(proxy.seen)
        again = subprocess.run(args, capture_output=True, check=False, text=True, timeout=600)
        assert again.returncode == 0 and proxy.delivered == 16  # a rerun asks for nothing
        assert (tmp_path / "run" / "sft.jsonl").exists() and "traces" in stdout
    finally:
        proxy.close()
        upstream.close()


def test_sky_t1_traces_import_with_thinking_split_out_and_graded(smollm2_path, tmp_path):
    files = []
    for packed in sorted(SKY.glob("*/*.jsonl.gz")):
        plain = tmp_path / "in" / packed.parent.name / packed.name.removesuffix(".gz")
        plain.parent.mkdir(parents=True, exist_ok=True)
        plain.write_bytes(gzip.decompress(packed.read_bytes()))
        files.append(plain)
    assert len(files) == 4
    out = tmp_path / "sky"
    summaries = [
        import_traces(f, out / f.parent.name / f.stem, preset="skythought", name=f"{f.parent.name}-{f.stem}")
        for f in files
    ]
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    traces = [g for f in files for g in read_jsonl(out / f.parent.name / f.stem / "traces.jsonl", Generation)]
    assert len(traces) == len(rows) == 40
    closed = sum("<|end_of_thought|>" in r["code"][0] for r in rows)
    assert sum(g.thinking is not None and "<|end_of_thought|>" in g.text for g in traces) == closed == 23
    for g in traces:
        if "<|end_of_thought|>" in g.text:
            assert (
                "<|begin_of_thought|>" not in g.thinking
                and "end_of_solution" not in g.answer_text
                and g.thinking_tokens > 0
            )
    # Our grading of their traces against their own labels (Qwen2.5-Math's grader).
    agree = sum(bool(g.correct) == bool(r["score"][0]) for g, r in zip(traces, rows)) / len(rows)
    assert agree >= 0.9, agree
    never = sum("<|begin_of_thought|>" in r["code"][0] and "<|end_of_thought|>" not in r["code"][0] for r in rows)
    assert never == 12
    assert sum(s["never_closed_thinking"] * s["traces"] for s in summaries) == pytest.approx(never)
    row = json.loads((out / "Sky-T1-math-correct-5K-27B" / "math500" / "sft.jsonl").read_text().splitlines()[0])
    spec = resolve("smollm2-135m").spec
    assert (
        row["messages"][-1]["content"].startswith(spec.think_open)
        and "<|begin_of_thought|>" not in row["messages"][-1]["content"]
    )


def test_sft_prompt_is_the_eval_prompt(tiny_model, tmp_path):
    # The training prompt (all turns but the assistant's) renders exactly as eval renders it.
    from transformers import AutoTokenizer

    distill(
        DistillConfig(
            problems="dyn:remainder?n=3&seed=2", teacher={"model": str(tiny_model), "engine": {"name": "program"}}
        ),
        tmp_path,
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    spec = resolve(str(tiny_model)).spec
    problems = {p.id: p for p in read_jsonl(tmp_path / "problems.jsonl", Problem)}
    for line in (tmp_path / "sft.jsonl").read_text().splitlines():
        row = json.loads(line)
        rendered = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
        assert rendered == render(problems[row["problem_id"]], spec, tokenizer)


def test_an_import_without_the_mapped_fields_names_the_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"question": "1+1?", "answer": "2", "thinking": "t", "response": "r"}\n{"question": "2+2?", "thinking": "t"}\n'
    )
    with pytest.raises(ConfigError, match=r"mine.jsonl:2: no field 'answer'.*--map"):
        import_traces(path, tmp_path / "out")
    with pytest.raises(ConfigError, match="import format 'sky'"):
        import_traces(path, tmp_path / "out", preset="sky")
