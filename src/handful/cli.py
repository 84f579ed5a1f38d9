"""The `handful` command: a thin layer over library functions. Heavy imports stay inside
the commands so that `--help` is instant."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from handful import __version__
from handful.errors import ConfigError, HandfulError
from handful.files import os_error_message
from handful.stages import STAGES
from handful.terminal import visible

app = typer.Typer(
    help="Curate, distill, train, scale and evaluate reasoning from a handful of examples.", no_args_is_help=True
)
# Markup is off: user and model text is printed as it is written; our own styles are Text objects.
console = Console(markup=False, highlight=False)
err_console = Console(stderr=True, markup=False, highlight=False)


def plain(text: object, style: str | None = None) -> Text:
    """User or model text as rich Text: control characters shown, never read as markup."""
    return Text(visible(text), style=style or "")


def _fail(message: object) -> NoReturn:
    err_console.print(Text("error: ", style="bold red") + plain(message), highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.callback()
def _main() -> None:
    """Curate, distill, train, scale and evaluate reasoning from a handful of examples."""
    # The library logs; here its records reach stderr as plain lines, control characters shown:
    # handful's own from INFO up ("fresh problems: ...", a curation stage's counts), other
    # libraries' from WARNING up, every warning prefixed "warning: ".
    logging.getLogger("handful").setLevel(logging.INFO)
    root = logging.getLogger()
    if any(h.name == "handful-cli" for h in root.handlers):
        return  # a second command in the same process (tests): one handler is enough

    handler = _Lines()
    handler.name = "handful-cli"
    handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == "handful" or r.name.startswith("handful."))
    handler.addFilter(_visible_log)
    root.addHandler(handler)


class _Lines(logging.Handler):
    """Log records as plain lines on the stderr of the moment (a test runner swaps it), above any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            text = self.format(record)
            tqdm.write(f"warning: {text}" if record.levelno >= logging.WARNING else text, file=sys.stderr)
        except Exception:  # noqa: BLE001 (as logging's own handlers: a failed write is reported, not raised)
            self.handleError(record)


def _visible_log(record) -> bool:
    record.msg, record.args = visible(record.getMessage()), None
    return True


def _out_path(value: str) -> Path:
    """--out: an empty value would quietly mean the current directory."""
    if not value.strip():
        raise typer.BadParameter("is empty; give a path (a directory is created if needed)")
    return Path(value)


@contextmanager
def _guard(interrupted: str | None = None):
    """The one place where what a user can fix becomes one line (never a traceback), and where
    Ctrl-C says what was kept and how to resume."""
    try:
        yield
    except HandfulError as e:
        _fail(e)
    except OSError as e:  # the file system: a full disk, a read-only folder, a directory where a file should be
        _fail(os_error_message(e))
    except KeyboardInterrupt:
        err_console.print(plain(f"interrupted: {interrupted or 'nothing was running'}"), soft_wrap=True)
        raise typer.Exit(130) from None


@app.command()
def version() -> None:
    """Print handful's version."""
    console.print(visible(__version__))


@app.command()
def benchmarks(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    data: Annotated[Path | None, typer.Option(help="GPQA-Diamond file, to count it too.")] = None,
) -> None:
    """List the registered benchmarks with their counts, sources and licenses."""
    from handful.benchmarks import list_benchmarks

    with _guard():
        infos = list_benchmarks(data)
    if as_json:
        sys.stdout.write(json.dumps([i.model_dump() for i in infos], indent=2) + "\n")
        return
    table = Table("name", "count", "source", "license")
    for i in infos:
        table.add_row(visible(i.name), "-" if i.count is None else str(i.count), i.source, i.license)
    console.print(table)


tasks_app = typer.Typer(
    help="Procedural task generators: fresh benchmarks (dyn:NAME) and exact traces.", invoke_without_command=True
)
app.add_typer(tasks_app, name="tasks")


@tasks_app.callback()
def tasks_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """List the generators, what their difficulty knob means and its range."""
    if ctx.invoked_subcommand is not None:
        return
    from handful.tasks import PROBES, TASKS

    rows = [
        {
            "name": t.name,
            "knob": t.knob,
            "default": t.default,
            "range": [t.lowest, t.highest],
            "domain": t.domain,
            "about": t.about,
        }
        for t in TASKS.values()
    ]
    rows.append(
        {
            "name": "probes",
            "knob": None,
            "default": None,
            "range": None,
            "domain": "mixed",
            "about": "out-of-domain probes: " + ", ".join(f"{n} {d}" for n, d in PROBES),
        }
    )
    from handful.tasks import gym

    found = gym.listing() if gym.available() else []
    if as_json:
        sys.stdout.write(json.dumps({"handful": rows, "reasoning_gym": found}, indent=2) + "\n")
        return
    table = Table("name", "difficulty knob", "default", "range", "about")
    for r in rows:
        table.add_row(
            visible(r["name"]),
            r["knob"] or "-",
            str(r["default"] or "-"),
            f"{r['range'][0]}..{r['range'][1]}" if r["range"] else "-",
            r["about"],
        )
    console.print(table)
    console.print(
        visible(
            "As a benchmark: --benchmark 'dyn:NAME?KNOB=V&n=N&seed=S' (no seed: a fresh one, printed). As a teacher: --engine program."
        )
    )
    if not found:
        console.print(visible(f"Reasoning Gym's datasets (dyn:rg/NAME) are listed here once installed: {gym.INSTALL}"))
        return
    gyms = Table("reasoning-gym dataset", "settings (default)")
    for r in found:
        gyms.add_row(
            visible(r["name"]), visible(", ".join(f"{s['name']}={json.dumps(s['default'])}" for s in r["settings"]))
        )
    console.print(gyms)
    console.print(
        visible(
            "As a benchmark, pool or GRPO prompts: 'dyn:rg/NAME?n=N&seed=S&SETTING=V' or "
            "'dyn:rg-mix?tasks=A,B,C&n=N' (each with its defaults); lists are comma-separated, a '+' is written %2B. "
            "Graded by the dataset's own verifier: full credit is correct, part of it 'partial'. No traces: the "
            "program teacher and SFT work from handful's own tasks above."
        )
    )


@tasks_app.command("sample")
def tasks_sample(
    name: Annotated[str, typer.Argument(help="A generator (see `handful tasks`) or `probes`.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many problems.")] = 10,
    seed: Annotated[int, typer.Option(help="The same seed gives the same problems.")] = 0,
    difficulty: Annotated[
        int | None, typer.Option(help="The generator's knob (digits, steps, numbers); default: its default.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", parser=_out_path, help="JSONL file to write; default: standard output.")
    ] = None,
) -> None:
    """Draw problems, each with its answer and step-by-step trace, as JSONL Problem records."""
    from handful.records import write_jsonl
    from handful.tasks import sample

    with _guard():
        problems = sample(name, n, seed, difficulty)
    if out is None:
        for p in problems:
            sys.stdout.write(p.model_dump_json(exclude_none=True) + "\n")
        return
    write_jsonl(out, problems)
    err_console.print(visible(f"{len(problems)} problems from {name} (seed {seed}) in {out}"))


@app.command()
def grade(
    input: Annotated[Path, typer.Option("--input", "-i", help='JSONL, one {"gold": ..., "pred": ...} per line.')],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write each line plus outcome, correct, extracted.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Grading processes (0: in this process).")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds per answer.")] = 5.0,
) -> None:
    """Grade predictions against reference answers and print a summary."""
    from handful.config import GradeConfig, load_config
    from handful.grading import grade_file

    with _guard():
        cfg = load_config(GradeConfig, overrides=[f"workers={workers}", f"timeout={timeout}"])
        rows = grade_file(input, output, cfg.workers, cfg.timeout)
    counts = Counter(r["outcome"] for r in rows)
    table = Table("outcome", "count", "share")
    for outcome in ("correct", "partial", "incorrect", "no_answer", "unparseable_gold", "timeout"):
        table.add_row(visible(outcome), str(counts[outcome]), f"{counts[outcome] / len(rows):.1%}")
    console.print(table)
    console.print(visible(f"accuracy {counts['correct'] / len(rows):.4f} over {len(rows)} answers"))


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the known model aliases and whether each is available here."""
    from handful.models import list_models

    rows = list_models()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("name", "available", "description", "install", "license")
    for m in rows:
        table.add_row(
            visible(m["name"]), "yes" if m["available"] else "no", m["description"], m["install"], m["license"]
        )
    console.print(table)
    console.print(visible("Also: any local checkpoint folder (config.json + safetensors), or a hub id when online."))


def _options(**given) -> list[str]:
    """Dotted overrides for the options the user actually gave."""
    return [
        f"{key}={json.dumps(value) if isinstance(value, list) else value}"
        for key, value in given.items()
        if value is not None
    ]


# Options shared by `eval` and `scale`, declared once, and where each lands in EvalConfig.
Model = Annotated[str | None, typer.Option(help="Alias (see `handful models`), checkpoint folder or hub id.")]
Benchmark = Annotated[str | None, typer.Option(help="Comma-separated benchmark specs (see `handful benchmarks`).")]
Limit = Annotated[int | None, typer.Option(help="A fixed, seeded subset of N problems per benchmark.")]
Temperature = Annotated[float | None, typer.Option()]
MaxTokens = Annotated[int | None, typer.Option()]
EngineName = Annotated[
    str | None, typer.Option("--engine", help="hf | openai | program (exact traces for `dyn:` tasks)")
]
BaseUrl = Annotated[str | None, typer.Option(help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")]
Sets = Annotated[
    list[str] | None, typer.Option("--set", help="Any setting as dotted key=value, e.g. engine.batch_size=32")
]
EVAL_KEYS = {
    "model": "model",
    "benchmark": "benchmarks",
    "data": "data",
    "limit": "limit",
    "n": "n",
    "engine": "engine.name",
    "base_url": "engine.base_url",
    "served_model": "engine.served_model",
    "api_key_env": "engine.api_key_env",
    "batch_size": "engine.batch_size",
    "dtype": "engine.dtype",
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "top_k": "sampling.top_k",
    "max_tokens": "sampling.max_tokens",
    "seed": "sampling.seed",
    "min_thinking_tokens": "budget.min_thinking_tokens",
    "max_thinking_tokens": "budget.max_thinking_tokens",
    "max_waits": "budget.max_waits",
    "continuation": "budget.continuation",
}


def _eval_options(prefix: str, **given) -> list[str]:
    if given.get("benchmark"):
        given["benchmark"] = given["benchmark"].split(",")
    return _options(**{prefix + EVAL_KEYS[name]: value for name, value in given.items()})


def print_scores(scores) -> None:
    from handful.metrics import advice

    table = Table(
        "benchmark", "problems x n", "accuracy [95% CI]", "maj@k", "pass@k", "tokens think/answer", "cut / unclosed"
    )
    for name, s in scores.benchmarks.items():
        table.add_row(
            visible(name),
            f"{s.n_problems} x {s.n_samples // s.n_problems}",
            f"{s.accuracy:.3f} [{s.ci95[0]:.3f}, {s.ci95[1]:.3f}]",
            " ".join(f"{k}:{v:.3f}" for k, v in s.maj_at_k.items()),
            " ".join(f"{k}:{v:.3f}" for k, v in s.pass_at_k.items()),
            f"{s.avg_thinking_tokens:.0f}/{s.avg_answer_tokens:.0f}",
            f"{s.truncated:.0%} / {s.unclosed_thinking:.0%}",
        )
    console.print(table)
    for name, s in scores.benchmarks.items():
        console.print(visible(f"{name} outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items()))))
        console.print(visible(f"{name} interval: {advice(s)}"))
    for g in scores.memorisation:
        console.print(
            visible(
                f"memorisation probe: {g.static} {g.static_accuracy:.3f} - {g.fresh} {g.fresh_accuracy:.3f} "
                f"= {g.gap:+.3f} [{g.gap_ci95[0]:+.3f}, {g.gap_ci95[1]:+.3f}]"
            )
        )


@app.command(name="eval")
def eval_(
    out: Annotated[
        Path,
        typer.Option("--out", parser=_out_path, help="Run directory: samples.jsonl, scores.json; rerun to resume."),
    ],
    model: Model = None,
    benchmark: Benchmark = None,
    engine: EngineName = None,
    base_url: BaseUrl = None,
    served_model: Annotated[str | None, typer.Option(help="The model's name on the server.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="NAME of the environment variable holding the API key.")
    ] = None,
    limit: Limit = None,
    n: Annotated[int | None, typer.Option("--n", help="Samples per problem.")] = None,
    temperature: Temperature = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    top_k: Annotated[int | None, typer.Option()] = None,
    max_tokens: MaxTokens = None,
    seed: Annotated[int | None, typer.Option()] = None,
    min_thinking_tokens: Annotated[
        int | None, typer.Option(help="Budget forcing: refuse to stop thinking before this many tokens.")
    ] = None,
    max_thinking_tokens: Annotated[
        int | None, typer.Option(help="Budget forcing: end thinking at this many tokens.")
    ] = None,
    max_waits: Annotated[
        int | None, typer.Option(help="Budget forcing: refuse this many ends of thinking in any case.")
    ] = None,
    continuation: Annotated[
        str | None, typer.Option(help='Budget forcing: what is forced on a refused stop (default "Wait").')
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="hf engine batch size.")] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="auto (the default: bfloat16 where this machine computes it quickly, else float32) | float32 | bfloat16 | float16 | int8 (Linear layers quantized, CPU)"
        ),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="File for a benchmark handful does not ship (gpqa_diamond).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with EvalConfig settings; options override it.")] = None,
    set_: Sets = None,
) -> None:
    """Evaluate a model on benchmarks; prints and writes scores with confidence intervals."""
    overrides = _eval_options("", **{name: value for name, value in locals().items() if name in EVAL_KEYS})
    with _guard(f"every finished sample is kept in {out / 'samples.jsonl'}; run the same command again to resume"):
        cfg = STAGES["eval"].config(config, overrides + list(set_ or []))
        scores = STAGES["eval"].run(cfg, out)
    print_scores(scores)
    fresh = [b for b in scores.config["benchmarks"] if b.startswith("dyn:")]
    if fresh:
        console.print(visible("procedural benchmarks (reproduce with these specs): " + ", ".join(fresh)))
    console.print(
        visible(f"seed {cfg.sampling.seed}; samples in {out / 'samples.jsonl'}, scores in {out / 'scores.json'}")
    )


@app.command()
def curate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            parser=_out_path,
            help="Run directory: selected.jsonl, removed.jsonl, funnel.json, stages/; rerun to resume.",
        ),
    ],
    pool: Annotated[
        list[str] | None,
        typer.Option(
            "--pool",
            help="A pool name (math-train, aime, omni-math, gsm8k-train), dyn:TASK, a Problem JSONL, or jsonl:/parquet:/hf: with a mapping. Repeat for several.",
        ),
    ] = None,
    target: Annotated[int | None, typer.Option(help="How many problems to select.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every sampled choice.")] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference", help="Difficulty reference model (turns the difficulty stage on); repeat for several."
        ),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", help="Samples per problem for each reference model.")
    ] = None,
    candidates: Annotated[
        int | None, typer.Option(help="Rate only a seeded sample of this many problems for difficulty (a cost cap).")
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(help="Difficulty policy: s1 (drop anything solved) | limo (keep solved <= max_solved) | band."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with CurateConfig settings; options override it.")] = None,
    set_: Sets = None,
) -> None:
    """Curate a pool down to a handful of hard, diverse, clean problems; prints the funnel."""
    from handful.curation.config import reference as reference_settings

    overrides = _options(
        pools=list(pool) if pool else None,
        target=target,
        seed=seed,
        **{"difficulty.candidates": candidates, "difficulty.policy": policy},
    )
    if reference:
        refs = [reference_settings(m, *([samples] if samples else [])) for m in reference]
        overrides += ["difficulty.enabled=true", f"difficulty.references={json.dumps(refs)}"]
    with _guard(
        f"finished stages and graded samples are kept under {out / 'stages'}; run the same command again to resume"
    ):
        cfg = STAGES["curate"].config(config, overrides + list(set_ or []))
        funnel = STAGES["curate"].run(
            cfg, out, on_stage=lambda name, before, after: console.print(visible(f"{name}: {before} -> {after}"))
        )
    table = Table("stage", "count", "removed", "main reasons")
    for row in funnel:
        reasons = ", ".join(f"{k} {v}" for k, v in row.get("by_reason", {}).items())
        table.add_row(
            visible(row["stage"]),
            str(row["count"]),
            "skipped" if row.get("skipped") else str(row.get("removed", "")),
            visible(reasons),
        )
    console.print(table)
    console.print(
        visible(
            f"selected in {out / 'selected.jsonl'}, removed (with reasons) in {out / 'removed.jsonl'}, funnel in {out / 'funnel.json'}"
        )
    )


def _teacher(spec: str, option: str = "--teacher") -> tuple[str, str | None]:
    """ "openai:NAME" -> ("openai", NAME); "program" -> ("program", None); "NAME" -> ("hf", NAME)."""
    from handful.engines import ENGINES

    engine, sep, model = spec.partition(":")
    if sep and engine in ENGINES:
        if not model and engine != "program":
            raise ConfigError(f"{option} {spec!r}: no model after '{engine}:'; e.g. {engine}:smollm2-135m")
        return engine, model or None
    if spec in ENGINES:
        return spec, None
    return "hf", spec


@app.command()
def distill(
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=_out_path, help="Run directory: traces.jsonl, sft.jsonl, stats.json; rerun to resume."
        ),
    ],
    problems: Annotated[
        str | None, typer.Option(help="Problem JSONL (e.g. curate's selected.jsonl), a pool name or a dyn: spec.")
    ] = None,
    teacher: Annotated[
        str | None, typer.Option(help="ENGINE:MODEL, e.g. openai:qwq-32b, hf:smollm2-135m, program.")
    ] = None,
    student: Annotated[
        str | None,
        typer.Option(help="Model whose prompt format and thinking delimiters sft.jsonl uses (default: the teacher)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="A fixed, seeded subset of N problems.")] = None,
    base_url: BaseUrl = None,
    served_model: Annotated[str | None, typer.Option(help="The teacher's name on the server.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="NAME of the environment variable holding the API key.")
    ] = None,
    n: Annotated[int | None, typer.Option("--n", help="Samples per problem.")] = None,
    keep: Annotated[str | None, typer.Option(help="correct (rejection sampling) | all")] = None,
    select: Annotated[
        str | None, typer.Option(help="Per problem: shortest | longest | all of the kept traces.")
    ] = None,
    max_cost: Annotated[float | None, typer.Option(help="Stop starting requests past this many US dollars.")] = None,
    price_prompt: Annotated[float | None, typer.Option(help="US dollars per million prompt tokens.")] = None,
    price_completion: Annotated[float | None, typer.Option(help="US dollars per million completion tokens.")] = None,
    requests_per_minute: Annotated[float | None, typer.Option("--rpm", help="Client-side request rate limit.")] = None,
    tokens_per_minute: Annotated[float | None, typer.Option("--tpm", help="Client-side token rate limit.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight at once (openai engine).")] = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    import_: Annotated[
        Path | None, typer.Option("--import", help="Import an existing trace file instead of generating.")
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="Layout of the imported file: skythought | s1k | limo | fields.")
    ] = "fields",
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Imported field mapping KEY=FIELD (question, answer, thinking, response, text)."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with DistillConfig settings; options override it.")] = None,
    set_: Sets = None,
) -> None:
    """Distill reasoning traces from a teacher (or import them), graded, into traces.jsonl and sft.jsonl."""
    from handful.distill import import_traces

    with _guard(f"every finished trace is kept in {out / 'traces.jsonl'}; run the same command again to resume"):
        if import_ is not None:
            bad = [
                item
                for item in map_ or []
                if "=" not in item or not item.partition("=")[0] or not item.partition("=")[2]
            ]
            if bad:
                raise ConfigError(f"--map {bad[0]!r}: expected KEY=FIELD, e.g. --map question=problem")
            mapping = dict(item.split("=", 1) for item in map_ or [])
            given = {"student": student, "keep": keep, "select": select}
            options = {k: v for k, v in given.items() if v is not None}
            summary = import_traces(import_, out, preset=format_, mapping=mapping, **options)
        else:
            engine, model = _teacher(teacher) if teacher else (None, None)
            if engine == "program" and model is None:
                model = student  # the program writes in the student's format
            overrides = _options(
                problems=problems,
                limit=limit,
                student=student,
                keep=keep,
                select=select,
                max_cost=max_cost,
                **{"prices.prompt": price_prompt, "prices.completion": price_completion},
            )
            overrides += _eval_options(
                "teacher.",
                model=model,
                engine=engine,
                base_url=base_url,
                served_model=served_model,
                api_key_env=api_key_env,
                n=n,
                temperature=temperature,
                max_tokens=max_tokens,
            )
            overrides += _options(
                **{
                    "teacher.engine.requests_per_minute": requests_per_minute,
                    "teacher.engine.tokens_per_minute": tokens_per_minute,
                    "teacher.engine.concurrency": concurrency,
                }
            )
            cfg = STAGES["distill"].config(config, overrides + list(set_ or []))
            summary = STAGES["distill"].run(cfg, out)
    table = Table(
        "traces", "problems", "correct", "truncated", "never closed", "tokens median/p90/max", "sft records", "cost"
    )
    t = summary["completion_tokens"]
    table.add_row(
        visible(str(summary["traces"])),
        str(summary["problems"]),
        f"{summary['correct']:.1%}",
        f"{summary['truncated']:.1%}",
        f"{summary['never_closed_thinking']:.1%}",
        f"{t['median']:.0f}/{t['p90']:.0f}/{t['max']}",
        str(summary["sft_records"]),
        f"${summary['cost_usd']:.4f}",
    )
    console.print(table)
    if summary["problems_without_a_kept_trace"]:
        console.print(
            visible(
                f"{len(summary['problems_without_a_kept_trace'])} problems have no kept trace (listed in stats.json)"
            )
        )
    if summary.get("stopped"):
        console.print(Text("stopped: ", style="yellow") + plain(summary["stopped"]))
    console.print(
        visible(
            f"traces in {out / 'traces.jsonl'}, fine-tuning set in {out / 'sft.jsonl'}, statistics in {out / 'stats.json'}"
        )
    )


train_app = typer.Typer(
    help="Fine-tune through TRL: SFT on traces, GRPO with verifiable rewards.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
Preset = Annotated[
    str | None,
    typer.Option(
        "--config",
        help="A shipped preset (sft-s1, sft-limo, sft-cpu-small, grpo-cpu-small, grpo-deepscaler) or a YAML file.",
    ),
]
Accelerate = Annotated[
    str | None,
    typer.Option(
        help="Launch through `accelerate launch` with a shipped config (ddp, ddp-cpu, fsdp, deepspeed-zero3) or a file."
    ),
]


def _train(
    kind: str, out: Path, config: str | None, overrides: list[str], resume: bool, accelerate_config: str | None
) -> dict:
    from handful.training import launch

    if accelerate_config and not launch.launched():
        raise typer.Exit(launch.relaunch(accelerate_config, sys.argv[1:]))
    with _guard(f"checkpoints are kept under {out}; rerun the same command with --resume to continue"):
        return STAGES[kind].run(STAGES[kind].config(config, overrides), out, resume=resume)


@train_app.command("sft")
def train_sft_command(
    out: Annotated[
        Path,
        typer.Option("--out", parser=_out_path, help="Run directory: checkpoints/, model/ (or adapter/), train.json."),
    ],
    data: Annotated[Path | None, typer.Option(help="sft.jsonl from `handful distill`.")] = None,
    model: Model = None,
    config: Preset = None,
    lora: Annotated[
        bool | None, typer.Option("--lora/--full", help="Train a LoRA adapter (saved merged and as an adapter).")
    ] = None,
    epochs: Annotated[float | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    max_seq_len: Annotated[int | None, typer.Option(help="Longer samples are cut (and counted).")] = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing")] = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    eval_benchmark: Annotated[
        str | None, typer.Option(help="Comma-separated benchmarks to evaluate the chosen checkpoint on.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in --out.")] = False,
    accelerate_config: Accelerate = None,
    set_: Sets = None,
) -> None:
    """Supervised fine-tuning on a handful of traces (loss on the response only)."""
    overrides = _options(
        data=data,
        model=model,
        epochs=epochs,
        lr=lr,
        max_seq_len=max_seq_len,
        packing=packing,
        max_steps=max_steps,
        eval_benchmark=eval_benchmark.split(",") if eval_benchmark else None,
        **{"lora.enabled": lora},
    )
    summary = _train("sft", out, config, overrides + list(set_ or []), resume, accelerate_config)
    if "rank" in summary:  # a worker other than the first: the first one reports
        return
    cut = summary["truncation"]
    console.print(
        visible(
            f"trained {summary['steps']} steps on {summary['train_samples']} samples in {summary['seconds']:.0f} s; "
            f"train loss {summary['train_loss']:.4f}; best validation loss {summary['best_validation_loss']}"
        )
    )
    console.print(
        visible(
            f"truncated samples: {cut['truncated']} of {cut['samples']}; model for `handful eval --model`: {summary['outputs']['eval_model']}"
        )
    )
    for name, s in summary.get("eval", {}).items():
        console.print(visible(f"{name}: accuracy {s['accuracy']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"))


@train_app.command("grpo")
def train_grpo_command(
    out: Annotated[
        Path,
        typer.Option("--out", parser=_out_path, help="Run directory: checkpoints/, model/ (or adapter/), train.json."),
    ],
    problems: Annotated[
        str | None, typer.Option(help="Problems with reference answers: a JSONL, a pool or a dyn: spec.")
    ] = None,
    model: Model = None,
    config: Preset = None,
    lora: Annotated[bool | None, typer.Option("--lora/--full")] = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    num_generations: Annotated[int | None, typer.Option(help="Samples per prompt.")] = None,
    max_completion_length: Annotated[int | None, typer.Option()] = None,
    limit: Limit = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in --out.")] = False,
    accelerate_config: Accelerate = None,
    set_: Sets = None,
) -> None:
    """RL with verifiable rewards (GRPO): rewards from the shared grader, hacking monitors logged."""
    overrides = _options(
        problems=problems,
        model=model,
        max_steps=max_steps,
        lr=lr,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        limit=limit,
        **{"lora.enabled": lora},
    )
    summary = _train("grpo", out, config, overrides + list(set_ or []), resume, accelerate_config)
    for stage in summary["stages"]:
        rewards = stage["reward_by_step"]
        shown = ", ".join(f"{step}:{value:.3f}" for step, value in rewards[:12])
        console.print(
            visible(
                f"stage {stage['context_stage']} (completions up to {stage['max_completion_length']} tokens): {stage['steps']} steps; reward by step {shown}"
            )
        )
    console.print(visible(f"model for `handful eval --model`: {summary['eval_model']}"))


def _against(c: dict | None) -> str:
    if not c or c["baseline"] == c["compared"]:
        return "-"
    d = c["difference_ci95"]
    return f"{c['difference']:+.3f} [{d[0]:+.3f}, {d[1]:+.3f}] p={c['p_value']:.2g}"


def _ints(option: str, text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        _fail(f"{option} {text!r}: expected whole numbers separated by commas, e.g. 64,128,256")


@app.command()
def scale(
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=_out_path, help="Sweep directory: points/*, curve.json, curve.png; rerun to resume."
        ),
    ],
    model: Model = None,
    benchmark: Benchmark = None,
    max_thinking: Annotated[
        str | None, typer.Option(help="Comma-separated maximum thinking tokens, e.g. 64,128,256.")
    ] = None,
    min_thinking: Annotated[str | None, typer.Option(help="Comma-separated minimum thinking tokens.")] = None,
    waits: Annotated[str | None, typer.Option(help="Comma-separated counts of refused ends of thinking.")] = None,
    votes: Annotated[
        str | None, typer.Option(help="Comma-separated k for maj@k; samples per problem = the largest.")
    ] = None,
    limit: Limit = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    engine: EngineName = None,
    base_url: BaseUrl = None,
    config: Annotated[Path | None, typer.Option(help="YAML with ScaleConfig settings; options override it.")] = None,
    set_: Sets = None,
) -> None:
    """Sweep thinking budgets; write the accuracy-vs-thinking-tokens curve and its picture."""
    given = {name: value for name, value in locals().items() if name in EVAL_KEYS}  # the points' eval settings
    overrides = _options(
        max_thinking=_ints("--max-thinking", max_thinking),
        min_thinking=_ints("--min-thinking", min_thinking),
        waits=_ints("--waits", waits),
        votes=_ints("--votes", votes),
    )
    overrides += _eval_options("eval.", **given) + list(set_ or [])
    with _guard(f"finished samples are kept under {out / 'points'}; run the same command again to resume"):
        result = STAGES["scale"].run(STAGES["scale"].config(config, overrides), out)
    table = Table("point", "benchmark", "think tok", "accuracy [95% CI]", "maj@k", "control", "vs first point (paired)")
    for p in result["points"]:
        table.add_row(
            visible(p["point"]),
            visible(p["benchmark"]),
            f"{p['avg_thinking_tokens']:.0f}",
            f"{p['accuracy']:.3f} [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]",
            " ".join(f"{k}:{v:.3f}" for k, v in p["maj@k"].items()),
            f"{p['control']:.2f}",
            _against(p.get("against_first")),
        )
    console.print(table)
    for bench, s in result["summary"].items():
        slope = "n/a" if s["scaling_slope"] is None else f"{s['scaling_slope']:+.4f} accuracy per doubling"
        console.print(visible(f"{bench}: control {s['control']:.2f}, scaling slope {slope}"))
    console.print(visible(f"curve in {out / 'curve.json'} and {out / 'curve.png'}"))


@app.command()
def precision(
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=_out_path, help="Study directory: points/PRECISION/*, precision.json; rerun to resume."
        ),
    ],
    model: Model = None,
    benchmark: Benchmark = None,
    precisions: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: float32 (the reference, always run), bfloat16, float16, int8, "
            "gguf:F32|F16|Q8_0|Q5_1|Q5_0|Q4_1|Q4_0 (llama.cpp)."
        ),
    ] = None,
    limit: Limit = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML with PrecisionConfig settings; options override it.")
    ] = None,
    set_: Sets = None,
) -> None:
    """Run the same problems once per numeric precision; each against float32, paired."""
    given = {name: value for name, value in locals().items() if name in EVAL_KEYS}
    overrides = _options(precisions=precisions.split(",") if precisions else None)
    overrides += _eval_options("eval.", **given) + list(set_ or [])
    with _guard(f"finished samples are kept under {out / 'points'}; run the same command again to resume"):
        result = STAGES["precision"].run(STAGES["precision"].config(config, overrides), out)
    # One block per precision, a line per benchmark: eight columns do not fit a terminal.
    for name in dict.fromkeys(p["precision"] for p in result["points"]):
        mine = [p for p in result["points"] if p["precision"] == name]
        cost = mine[0]
        speed = "-" if cost["tokens_per_s"] is None else f"{cost['tokens_per_s']:.1f}"
        peak = "-" if cost["peak_rss_mib"] is None else f"{cost['peak_rss_mib']:,.0f}"
        console.print(
            visible(f"{name}: {speed} tok/s, peak {peak} MiB, weights {cost['weights_mib']:,.0f} MiB"), style="bold"
        )
        for p in mine:
            same = "-" if p["identical_to_float32"] is None else f"{p['identical_to_float32']:.0%}"
            console.print(
                visible(
                    f"  {p['benchmark']}: {p['accuracy']:.3f} [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]; "
                    f"vs float32 (paired) {_against(p['against_float32'])}; same text as float32 {same}"
                ),
                soft_wrap=True,
            )
    console.print(visible(f"study in {out / 'precision.json'}"))


@app.command()
def study(
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=_out_path, help="Study directory: points/NAME/{train,eval}, study.json; rerun to resume."
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            help="YAML with StudyConfig settings: train (with data), eval, sizes, random, distill (the pool and teacher of random picks)."
        ),
    ],
    sizes: Annotated[str | None, typer.Option(help="Comma-separated training-set sizes, e.g. 16,64,256.")] = None,
    random_sizes: Annotated[
        str | None, typer.Option("--random", help="Comma-separated sizes also trained on random picks from the pool.")
    ] = None,
    equal: Annotated[str | None, typer.Option(help="What every point shares: epochs or steps.")] = None,
    set_: Sets = None,
) -> None:
    """How few examples are enough: the student trained on N curated examples for each size (and on N random
    ones), every point evaluated on the same problems and paired against the untrained model."""
    from handful.study import summary_lines

    overrides = _options(sizes=_ints("--sizes", sizes), random=_ints("--random", random_sizes), equal=equal)
    with _guard(f"finished points are kept under {out / 'points'}; run the same command again to resume"):
        result = STAGES["study"].run(STAGES["study"].config(config, overrides + list(set_ or [])), out)
    for line in summary_lines(result):
        console.print(visible(line), soft_wrap=True)
    console.print(visible(f"study in {out / 'study.json'}"))


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="The baseline: an eval folder, a run's eval stage or a scale point.")],
    b: Annotated[Path, typer.Argument(help="The one compared with it, on the same problems.")],
    intersect: Annotated[
        bool, typer.Option("--intersect", help="Compare only the problems both saw; say how many were dropped.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """B against A on the same problems: the paired difference, its interval and p-value, per benchmark and pooled."""
    from handful.comparison import compare_folders

    with _guard():
        found = compare_folders(a, b, intersect=intersect)
    if as_json:
        sys.stdout.write(json.dumps([c.model_dump(mode="json") for c in found], indent=2) + "\n")
        return
    for c in found:
        print_comparison(c)
        if c.dropped:
            console.print(visible(f"  {len(c.dropped)} problems seen by one side only were left out"))


@app.command()
def regrade(
    run_dir: Annotated[Path, typer.Argument(help="An eval folder, a scale folder or a `handful run` directory.")],
    workers: Annotated[int, typer.Option(help="Grading processes (0: in this process).")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds per answer.")] = 5.0,
) -> None:
    """Grade every stored sample again with this handful's grader; rewrite samples and scores, and say what changed."""
    from handful.grading import VERSION
    from handful.regrade import regrade as run_regrade

    with _guard(f"each file under {run_dir} is either as it was or fully regraded; run the same command again"):
        found = run_regrade(run_dir, workers, timeout)
    for r in found:
        changes = ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(r.changed.items(), key=str)) or "none"
        console.print(visible(f"{r.folder}: {r.samples} samples, verdicts changed: {changes}"))
        for name, (before, after) in r.scores.items():
            shown = "not scored before" if before is None else f"{before:.3f}"
            console.print(visible(f"  {name}: accuracy {shown} -> {after:.3f}"))
    console.print(visible(f"graded with grader version {VERSION}"))


SHOWN_DISAGREEMENTS = 10


@app.command(name="audit")
def audit_command(
    run_dir: Annotated[Path, typer.Argument(help="An eval folder, a scale folder or a `handful run` directory.")],
    judge: Annotated[
        str | None,
        typer.Option(help="An LLM judge instead of the rule grader: openai:MODEL (with --base-url) or hf:MODEL."),
    ] = None,
    base_url: BaseUrl = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="NAME of the environment variable holding the judge's API key.")
    ] = None,
    limit: Limit = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole audit, every disagreement, as JSON.")
    ] = False,
) -> None:
    """Grade the stored samples again with a second, independent grader: agreement with its interval, accuracy under both, the disagreements."""
    from tqdm.auto import tqdm

    from handful.audit import RULES, audit
    from handful.judge import Judge

    with _guard():
        second = RULES
        if judge:
            engine, model = _teacher(judge, "--judge")
            second = Judge(model or "", engine, base_url=base_url, api_key_env=api_key_env)
        with tqdm(desc="auditing", unit="sample", leave=False, dynamic_ncols=True) as bar:
            found = audit(run_dir, second, limit=limit, progress=bar.update)
    if as_json:
        sys.stdout.write(found.model_dump_json(indent=2) + "\n")
        return
    # The numbers stay whole on a narrow terminal; the names fold.
    table = Table(Column("folder", min_width=8, overflow="fold"), Column("benchmark", min_width=12, overflow="fold"))
    second = "judge" if found.second != "rules" else "rules"
    rows = [*found.benchmarks, found.pooled]
    counts = any(row.unclear or row.skipped for row in rows)  # a column only when something is in it
    # Accuracy under each grader: "stored" is the verdicts in the samples.
    for header in ("n", "agree [95% CI]", "stored", second, *(["unclear/skip"] if counts else [])):
        table.add_column(header, no_wrap=True)
    for row in rows:
        pooled = row is found.pooled
        table.add_row(
            plain("all" if pooled else row.folder),
            plain("all" if pooled else row.benchmark),
            str(row.graded),
            "-" if row.rate is None else f"{row.rate:.3f} [{row.ci95[0]:.3f}, {row.ci95[1]:.3f}]",
            "-" if row.main_accuracy is None else f"{row.main_accuracy:.3f}",
            "-" if row.second_accuracy is None else f"{row.second_accuracy:.3f}",
            *([f"{row.unclear} / {row.skipped}"] if counts else []),
            style="bold" if pooled else None,
        )
    console.print(table)
    console.print(visible(f"stored and {second}: accuracy under the stored verdicts and under the {second} grader"))
    for d in found.disagreements[:SHOWN_DISAGREEMENTS]:
        console.print(
            plain(
                f"{d.folder}/{d.benchmark}/{d.problem_id}#{d.sample_index} (reference {d.reference!r}): "
                f"stored {d.main.outcome} {d.main.answer!r}, {found.second} {d.second.outcome} {d.second.answer!r}"
            ),
            soft_wrap=True,
        )
    more = len(found.disagreements) - SHOWN_DISAGREEMENTS
    console.print(
        visible(
            f"{len(found.disagreements)} disagreements"
            + (f" ({more} more with --json)" if more > 0 else "")
            + f"; stored verdicts of grader version {', '.join(found.main_grader) or '-'}"
        )
    )


RunOut = Annotated[
    Path | None, typer.Option("--out", parser=_out_path, help="Run directory (default: runs/NAME); rerun to resume.")
]


def _print_comparisons(out: Path) -> None:
    from handful import outputs, report

    for run, c in report.comparisons(outputs.read(out)):
        print_comparison(c, run)


def print_comparison(c, run: str = "") -> None:
    d = c.difference_ci95
    console.print(
        visible(
            f"{run:>8} {c.benchmark:<28} {c.baseline} {c.baseline_accuracy:.3f} "
            f"[{c.baseline_ci95[0]:.3f}, {c.baseline_ci95[1]:.3f}] -> {c.compared} {c.accuracy:.3f} "
            f"[{c.ci95[0]:.3f}, {c.ci95[1]:.3f}]  difference {c.difference:+.3f} [{d[0]:+.3f}, {d[1]:+.3f}] "
            f"(paired, {c.problems} problems: {c.better} better, {c.worse} worse; p = {c.p_value:.2g}, {c.test})"
            + ("  interval excludes 0" if c.separated else "")
            + f"  [{c.advice()}]"
        ),
        highlight=False,
        soft_wrap=True,
    )


def _run(recipe_name: str, out: Path | None, dry_run: bool, set_: list[str] | None) -> Path | None:
    import yaml

    from handful.recipe import load_recipe, unseeded
    from handful.run import describe, run_recipe

    with _guard(f"finished work is kept in {out}; run the same command again to resume"):
        recipe, text = load_recipe(recipe_name, list(set_ or []))
        out = out or Path("runs") / recipe.name
        if dry_run:
            for stage in describe(recipe, out):
                console.rule(
                    visible(f"{stage['stage']}  (key {stage['key']}, reads: {', '.join(stage['reads']) or 'nothing'})")
                )
                console.print(visible(yaml.safe_dump(stage["config"], sort_keys=False)), highlight=False, markup=False)
                console.print(
                    visible("command: " + " ".join(stage["command"])), highlight=False, markup=False, soft_wrap=True
                )
            fresh = unseeded(recipe)
            if fresh:
                console.print(
                    visible("fresh seeds are drawn at the first real run for: " + ", ".join(fresh)), highlight=False
                )
            return None
        result = run_recipe(
            recipe,
            text,
            out,
            on_stage=lambda stage, what: console.rule(plain(f"{stage.name}: {what}", "bold")),
        )
    score = result["transparency"]
    console.print(
        visible(f"transparency {score['total']}/100 (handful transparency {out}); manifest {out / 'manifest.json'}")
    )
    return out


@app.command(name="run")
def run_command(
    recipe: Annotated[
        str,
        typer.Argument(
            help="A run recipe YAML, or a shipped one: demo-cpu, s1k-qwen2.5-32b, limo-qwen2.5-32b, deepscaler-1.5b."
        ),
    ],
    out: RunOut = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every stage's full settings and command; run nothing.")
    ] = False,
    set_: Sets = None,
) -> None:
    """Run the stages a recipe names (curate, distill, train, eval, scale) in one directory: manifest, transparency, report."""
    done = _run(recipe, out, dry_run, set_)
    if done:
        _print_comparisons(done)
        console.print(visible(f"report: {done / 'report.html'}"))


@app.command()
def demo(
    out: RunOut = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Also the data-size curve, curated against random picks, and the precision table."),
    ] = False,
) -> None:
    """The whole recipe on this CPU in minutes (the demo-cpu recipe): before/after with intervals, out-of-distribution
    probes, the budget curve before and after, and a report."""
    done = _run("demo-cpu-full" if full else "demo-cpu", out, False, None)
    _print_comparisons(done)
    console.print(visible(f"report: {(done / 'report.html').resolve()}"))


@app.command()
def transparency(
    run_dir: Annotated[
        Path, typer.Argument(help="A directory written by `handful run`, or by eval, scale, curate, distill or train.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score a run on the O1 Replication Journey transparency checklist (100 points), item by item."""
    from handful import transparency as checklist

    with _guard():
        result = checklist.write(run_dir)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table("dimension", "question", "points", "status", "evidence, or what is missing")
    for item in result["items"]:
        style = "red" if item["status"] == "missing" else None
        table.add_row(
            visible(item["dimension"]),
            item["question"],
            f"{item['earned']}/{item['points']}",
            item["status"],
            visible(item["evidence"]),
            style=style,
        )
    console.print(table)
    dims = ", ".join(f"{d} {result['by_dimension'][d]}/{result['maximum'][d]}" for d in result["maximum"])
    console.print(visible(f"total {result['total']}/100 ({dims}); checklist: {result['source']}"))
    if result["written_by"] != "handful run":
        console.print(
            visible(
                f"{run_dir} is the folder of `{result['written_by']}`: what only `handful run` records (the machine, "
                "the models' checksums, the code's revision, why these benchmarks) costs the points marked missing"
            )
        )


@app.command()
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A directory written by `handful run`, or by eval, scale, curate, distill or train.")
    ],
) -> None:
    """Write RUN_DIR/report.html (one self-contained page that works offline) and RUN_DIR/transparency.json."""
    from handful import report as page
    from handful import transparency as checklist

    with _guard():
        path = page.write(run_dir)  # its transparency section counts the page itself
        checklist.write(run_dir)
    console.print(visible(f"report: {path}"))
