"""`handful distill`: reasoning traces from a teacher, graded, turned into a fine-tuning set.

The teacher is any engine: a server or hosted API (`openai`), a local model (`hf`), or the
`program` teacher for procedural tasks. Each problem gets up to n samples, each graded
against the reference answer as it arrives and appended to `traces.jsonl` with its token
counts, latency and cost; a rerun skips what is there, so no finished trace is paid for
twice. `--max-cost` stops between rounds of requests, never in the middle of one.

Then rejection sampling: `keep: correct` keeps the traces whose answer is right (s1 did not
check, and only 536 of its 1,000 Gemini traces were); `select` keeps the shortest, the
longest or all of them per problem. `sft.jsonl` holds chat records: the student's system
prompt and user message, exactly as `handful eval` would render them, and an assistant turn
of the thinking inside the *student's* delimiters followed by the answer. It loads with
`datasets.load_dataset("json", ...)` and goes straight into TRL.

Existing trace sets (s1K, LIMO, OpenThoughts-style fields, the Sky-T1 files) come in
through `import_traces`, into the same files, graded again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from handful.benchmarks import subset
from handful.config import Config, EvalConfig
from handful.engines import ENGINES
from handful.errors import ConfigError, lookup
from handful.evaluation import generate
from handful.files import RunDirectory, read_json, write_json
from handful.models import ModelSpec, model_spec, resolve
from handful.prompts import messages
from handful.records import Generation, Problem, SamplingParams, read_dicts, read_jsonl, unique_ids, write_jsonl

TRACES, SFT, STATS, PROBLEMS = "traces.jsonl", "sft.jsonl", "stats.json", "problems.jsonl"


class Prices(Config):
    """US dollars per million tokens; a hosted API's price list."""

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)

    def cost(self, g: Generation) -> float:
        return (g.prompt_tokens * self.prompt + g.completion_tokens * self.completion) / 1e6


class DistillConfig(Config):
    problems: str = Field(description="a Problem JSONL, a pool name or a dyn: spec (see handful curate --pool)")
    teacher: EvalConfig = Field(
        default_factory=EvalConfig, description="model, engine, sampling and n; benchmarks are ignored"
    )
    limit: int | None = Field(default=None, ge=1, description="a fixed, seeded subset of this many problems")
    seed: int = 0
    student: str | None = Field(
        default=None,
        description="the model whose prompt format and thinking delimiters sft.jsonl uses; default: the teacher",
    )
    keep: Literal["correct", "all"] = "correct"
    select: Literal["shortest", "longest", "all"] = "shortest"
    max_cost: float | None = Field(default=None, gt=0, description="US dollars; stop starting requests past this")
    prices: Prices = Field(default_factory=Prices)
    round: int = Field(default=32, ge=1, description="requests per round between cost checks")


def student_spec(cfg: DistillConfig) -> tuple[str, ModelSpec]:
    if cfg.student:
        return cfg.student, model_spec(cfg.student)
    return cfg.teacher.model, model_spec(cfg.teacher.model, cfg.teacher.engine.name)


def assistant_turn(g: Generation, spec: ModelSpec) -> str:
    """The teacher's thinking in the student's delimiters, then its answer."""
    if g.thinking is None:
        return g.answer_text.strip()
    return f"{spec.think_open}{g.thinking.strip()}{spec.think_close}\n\n{g.answer_text.strip()}"


def chosen(traces: list[Generation], keep: str, select: str) -> tuple[dict[str, list[Generation]], list[str]]:
    """The traces that go into sft.jsonl per problem, and the problems with none."""
    by_problem: dict[str, list[Generation]] = {}
    for g in traces:
        by_problem.setdefault(g.problem_id, []).append(g)
    picked, empty = {}, []
    for pid, gs in by_problem.items():
        good = sorted(
            (g for g in gs if keep == "all" or g.correct), key=lambda g: (g.completion_tokens, g.sample_index)
        )
        if not good:
            empty.append(pid)
            continue
        picked[pid] = good if select == "all" else [good[0] if select == "shortest" else good[-1]]
    return picked, empty


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def stats(traces: list[Generation], spec_close: str, picked: dict, unsolved: list[str], prices: Prices) -> dict:
    lengths = np.array([g.completion_tokens for g in traces] or [0])
    counts, edges = np.histogram(lengths, bins=8)
    return {
        "traces": len(traces),
        "problems": len({g.problem_id for g in traces}),
        "correct": _share([bool(g.correct) for g in traces]),
        "truncated": _share([g.finish_reason == "length" for g in traces]),
        "never_closed_thinking": _share([g.thinking is not None and spec_close not in g.text for g in traces]),
        "completion_tokens": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "mean": round(float(lengths.mean()), 1),
            "p90": float(np.percentile(lengths, 90)),
            "max": int(lengths.max()),
        },
        "histogram": {f"{int(a)}-{int(b)}": int(c) for a, b, c in zip(edges, edges[1:], counts)},
        "sft_records": sum(len(v) for v in picked.values()),
        "problems_without_a_kept_trace": unsolved,
        "cost_usd": round(sum(prices.cost(g) for g in traces), 6),
        "prompt_tokens": int(sum(g.prompt_tokens for g in traces)),
        "completion_tokens_total": int(lengths.sum()) if traces else 0,
        "prices_per_million": prices.model_dump(),
    }


def write_outputs(
    out: Path, traces: list[Generation], problems: dict[str, Problem], cfg: DistillConfig, teacher_close: str
) -> dict:
    name, spec = student_spec(cfg)
    picked, unsolved = chosen(traces, cfg.keep, cfg.select)
    rows = []
    for pid, gs in picked.items():
        for g in gs:
            rows.append(
                {
                    "messages": [
                        *messages(problems[pid], spec),
                        {"role": "assistant", "content": assistant_turn(g, spec)},
                    ],
                    "problem_id": pid,
                    "sample_index": g.sample_index,
                    "correct": bool(g.correct),
                    "teacher": g.model,
                }
            )
    write_jsonl(out / SFT, rows)
    summary = {
        **stats(traces, teacher_close, picked, unsolved, cfg.prices),
        "student": name,
        "keep": cfg.keep,
        "select": cfg.select,
    }
    write_json(out / STATS, summary)
    return summary


def distill(cfg: DistillConfig, out: str | Path) -> dict:
    with RunDirectory(out) as folder:
        return _distill(cfg, folder)


def _distill(cfg: DistillConfig, out: Path) -> dict:
    from handful.curation.pools import load_pool

    source, asked = out / PROBLEMS, out / "distill.json"
    chosen_by = {"problems": cfg.problems, "limit": cfg.limit, "seed": cfg.seed}
    if asked.exists() and read_json(asked, "distill settings file") != chosen_by:
        raise ConfigError(f"{out} holds traces for {read_json(asked)}, not {chosen_by}; use another --out")
    if not source.exists():  # frozen on the first run, so a rerun asks for exactly the same
        # The teacher, the student and the problems are checked before anything is written.
        lookup("engine", ENGINES, cfg.teacher.engine.name)
        resolve(cfg.teacher.model, cfg.teacher.prompt.overrides(), engine=cfg.teacher.engine.name)
        student_spec(cfg)
        chosen = subset(unique_ids(load_pool(cfg.problems), f"problems {cfg.problems}"), cfg.limit, cfg.seed)
        write_jsonl(source, chosen)
        write_json(asked, chosen_by)
    problems = {p.id: p for p in read_jsonl(source, Problem)}
    teacher = cfg.teacher.model_copy(update={"benchmarks": [str(source)], "limit": None})
    # The cap counts every trace's tokens at the prices given now; the cost each trace records in
    # its metadata is provenance (what it cost at the prices of its day) and is never read back.
    stored = read_jsonl(out / TRACES, Generation, allow_empty=True) if (out / TRACES).exists() else []
    spent = [sum(cfg.prices.cost(g) for g in stored)]

    def annotate(g: Generation) -> Generation:
        cost = cfg.prices.cost(g)
        spent[0] += cost
        return g.model_copy(update={"metadata": {**g.metadata, "cost_usd": round(cost, 8)}})

    def over_budget() -> bool:
        return cfg.max_cost is not None and spent[0] >= cfg.max_cost

    teacher, _, traces = generate(
        teacher,
        out,
        TRACES,
        label="distill",
        annotate=annotate,
        should_stop=over_budget,
        chunk=cfg.round,
    )
    teacher_spec = model_spec(teacher.model, teacher.engine.name).model_copy(update=teacher.prompt.overrides())
    summary = write_outputs(out, traces, problems, cfg, teacher_spec.think_close)
    missing = len(problems) * teacher.n - len(traces)
    summary["stopped"] = (
        f"max cost ${cfg.max_cost} reached with {missing} samples to go; rerun with a higher --max-cost to continue"
        if missing
        else None
    )
    return summary


# ---- importing existing trace sets --------------------------------------------------

# Field mappings for known layouts: question, reference answer, and the trace as either
# thinking + response or one text with thinking delimiters inside.
PRESETS: dict[str, dict[str, str]] = {
    "skythought": {
        "question": "question",
        "answer": "gt",
        "text": "code",
        "open": "<|begin_of_thought|>",
        "close": "<|end_of_thought|>",
    },
    "s1k": {"question": "question", "answer": "solution", "thinking": "thinking_trajectories", "response": "attempt"},
    "limo": {"question": "question", "answer": "answer", "text": "solution", "open": "<think>", "close": "</think>"},
    "fields": {"question": "question", "answer": "answer", "thinking": "thinking", "response": "response"},
}
_SOLUTION_TAGS = re.compile(r"<\|(?:begin|end)_of_solution\|>")


def _first(value):
    return value[0] if isinstance(value, list) and value else value


def import_traces(path: str | Path, out: str | Path, **options) -> dict:
    """Traces someone else made, as traces.jsonl and sft.jsonl, graded here."""
    with RunDirectory(out) as folder:
        return _import_traces(path, folder, **options)


def _import_traces(
    path: str | Path,
    out: Path,
    *,
    preset: str = "fields",
    mapping: dict[str, str] | None = None,
    student: str = "smollm2-135m",
    keep: str = "correct",
    select: str = "shortest",
    name: str | None = None,
) -> dict:
    from handful.engines import Prompt, load_tokenizer
    from handful.engines.base import count_tokens, make_generation
    from handful.evaluation import grade_generations
    from handful.grading import Grader

    if preset not in PRESETS:
        raise ConfigError(f"import format {preset!r}: use one of {', '.join(PRESETS)}")
    fields = {**PRESETS[preset], **(mapping or {})}
    model = resolve(student)
    spec = model.spec
    tokenizer = load_tokenizer(model)
    label = name or Path(path).stem
    problems, generations = {}, []
    open_tag, close_tag = fields.get("open", spec.think_open), fields.get("close", spec.think_close)
    # The trace keeps its own delimiters while it is split; the student's go on in sft.jsonl.
    source_spec = spec.model_copy(update={"think_open": open_tag, "think_close": close_tag, "open_thinking": False})
    for number, row in read_dicts(path):
        where = f"{path}:{number}"
        missing = [fields[k] for k in ("question", "answer") if fields[k] not in row]
        if missing:
            raise ConfigError(
                f"{where}: no field {', '.join(map(repr, missing))}; the row has {', '.join(sorted(row))} (map fields with --map KEY=FIELD)"
            )
        pid = str(row.get(fields.get("id", "id"), row.get("idx", number - 1)))
        problem = Problem(
            id=f"{label}-{pid}",
            source=label,
            question=str(row[fields["question"]]),
            answer=str(_first(row[fields["answer"]])).strip(),
        )
        if "text" in fields:
            text = _SOLUTION_TAGS.sub("", str(_first(row.get(fields["text"], ""))))
        else:
            thinking = _first(row.get(fields["thinking"], ""))
            text = f"{open_tag}{thinking}{close_tag}{_first(row.get(fields['response'], ''))}"
        total, thinking_count = count_tokens(tokenizer, text, source_spec)
        prompt = Prompt(problem_id=problem.id, benchmark=label, text="")
        g = make_generation(
            prompt,
            text,
            model=f"imported:{label}",
            engine="import",
            sampling=SamplingParams(),
            spec=source_spec,
            prompt_tokens=0,
            completion_tokens=total,
            thinking_tokens=thinking_count,
            finish_reason="stop" if (close_tag in text or open_tag not in text) else "length",
        )
        if problem.id in problems:
            raise ConfigError(
                f"{where}: problem id {pid!r} appears twice in {path}; map a unique field with --map id=FIELD"
            )
        problems[problem.id] = problem
        generations.append(g)
    with Grader(2) as grader:
        graded = grade_generations(grader, generations, {(label, p.id): p for p in problems.values()}, source_spec)
    write_jsonl(out / PROBLEMS, problems.values())
    write_jsonl(out / TRACES, graded)
    cfg = DistillConfig(problems=str(out / PROBLEMS), student=student, keep=keep, select=select)
    return write_outputs(out, graded, problems, cfg, close_tag)
