"""The `handful` command: a thin layer over library functions. Heavy imports stay inside
the commands so that `--help` is instant."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from handful import __version__
from handful.errors import HandfulError

app = typer.Typer(help="Curate, distill, train, scale and evaluate reasoning from a handful of examples.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _fail(error: HandfulError) -> None:
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print handful's version."""
    console.print(__version__)


@app.command()
def benchmarks(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    data: Annotated[Optional[Path], typer.Option(help="GPQA-Diamond file, to count it too.")] = None,
) -> None:
    """List the registered benchmarks with their counts, sources and licenses."""
    from handful.benchmarks import list_benchmarks

    try:
        infos = list_benchmarks(data)
    except HandfulError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(json.dumps([i.model_dump() for i in infos], indent=2) + "\n")
        return
    table = Table("name", "count", "source", "license")
    for i in infos:
        table.add_row(i.name, "-" if i.count is None else str(i.count), i.source, i.license)
    console.print(table)


@app.command()
def grade(
    input: Annotated[Path, typer.Option("--input", "-i", help='JSONL, one {"gold": ..., "pred": ...} per line.')],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write each line plus outcome, correct, extracted.")] = None,
    workers: Annotated[int, typer.Option(help="Grading processes (0: in this process).")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds per answer.")] = 5.0,
) -> None:
    """Grade predictions against reference answers and print a summary."""
    from handful.config import GradeConfig, load_config
    from handful.grading import grade_file

    try:
        cfg = load_config(GradeConfig, overrides=[f"workers={workers}", f"timeout={timeout}"])
        rows = grade_file(input, output, cfg.workers, cfg.timeout)
    except HandfulError as e:
        _fail(e)
    counts = Counter(r["outcome"] for r in rows)
    table = Table("outcome", "count", "share")
    for outcome in ("correct", "incorrect", "no_answer", "unparseable_gold", "timeout"):
        table.add_row(outcome, str(counts[outcome]), f"{counts[outcome] / len(rows):.1%}")
    console.print(table)
    console.print(f"accuracy {counts['correct'] / len(rows):.4f} over {len(rows)} answers")
