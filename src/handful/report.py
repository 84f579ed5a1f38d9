"""`OUT/report.html`: one self-contained page about a run (no network, no script library).

It works on any directory handful wrote (`handful.outputs` reads it): a `handful run`
directory, or the folder of a single command. Sections appear for what the run did: the headline before/after numbers with intervals, the
curation funnel, the traces, training curves, scores per benchmark with their sampling
settings, accuracy against thinking tokens and maj@k, the transparency score, every stage's
settings, and a browser of the samples (filter by run, benchmark and verdict, search; thinking
folded). Model text reaches the page only as escaped text: in HTML through `html.escape`, in
the embedded sample data as JSON with `<`, `>` and `&` written as `\\u003c`-style escapes, and
in the browser only through `textContent`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import yaml

from handful import charts, transparency
from handful.comparison import Comparison, compare_samples
from handful.files import read_json, write_text
from handful.layout import REPORT
from handful.metrics import Score, advice
from handful.outputs import RunView, read, training_record
from handful.records import Budget, Generation, Problem, read_jsonl

ASSETS = Path(__file__).resolve().parent / "data" / "report"
MAX_SAMPLES = 5000  # in the browser; the rest stay in samples.jsonl


def _json(path: Path):
    return read_json(path, expect=object) if path.exists() else None


def _table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ci(s: dict | Score) -> str:
    accuracy, ci = (s.accuracy, s.ci95) if isinstance(s, Score) else (s["accuracy"], s["ci95"])
    return f"{accuracy:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{body}</section>'


def comparisons(view: RunView) -> list[tuple[str, Comparison]]:
    """(eval run, comparison): within each eval run, every model against the first (e.g. trained
    against base), per benchmark and over all its problems together, paired by problem."""
    found = []
    for run, stages in view.eval_runs().items():
        first = stages[0]
        base_samples = read_jsonl(first.folder / "samples.jsonl", Generation)
        for other in stages[1:]:
            samples = read_jsonl(other.folder / "samples.jsonl", Generation)
            runs = (first.config.get("n", 1), other.config.get("n", 1))
            for c in compare_samples(base_samples, samples, *runs, baseline=first.model, compared=other.model):
                found.append((run, c))
    return found


def _verdict(c: Comparison) -> str:
    """What the paired interval says, in words."""
    if c.difference_ci95[0] > 0:
        return f"{c.compared} is better: the paired interval of the difference lies above 0"
    if c.difference_ci95[1] < 0:
        return f"{c.compared} is worse: the paired interval of the difference lies below 0"
    return "not told apart: the paired interval of the difference includes 0"


def _difference(c: Comparison) -> str:
    return (
        f"{c.difference:+.3f} [{c.difference_ci95[0]:+.3f}, {c.difference_ci95[1]:+.3f}]; "
        f"{c.better} better, {c.worse} worse; p = {c.p_value:.2g} ({c.test}); {c.advice()}"
    )


def _headline(found: list[tuple[str, Comparison]]) -> str:
    if not found:
        return ""
    rows = [
        [
            run,
            c.benchmark,
            c.problems,
            f"{c.baseline} {c.baseline_accuracy:.3f} [{c.baseline_ci95[0]:.3f}, {c.baseline_ci95[1]:.3f}]",
            f"{c.compared} {c.accuracy:.3f} [{c.ci95[0]:.3f}, {c.ci95[1]:.3f}]",
            _difference(c),
            _verdict(c),
        ]
        for run, c in found
    ]
    # One pair of bars per eval run: over all its problems where it has several benchmarks.
    pooled = {run for run, c in found if c.benchmark == "all of them"}
    bars, colors = [], []
    for run, c in found:
        if run in pooled and c.benchmark != "all of them":
            continue
        label = run if run in pooled else f"{run} {c.benchmark}"
        bars += [
            (f"{label}: {c.baseline}", c.baseline_accuracy, tuple(c.baseline_ci95)),
            (f"{label}: {c.compared}", c.accuracy, tuple(c.ci95)),
        ]
        colors += ["#9e9e9e", "#1f77b4"]
    sizes = sorted({c.problems for run, c in found if run not in pooled or c.benchmark == "all of them"})
    chart = charts.bar_chart(
        "accuracy before and after",
        bars,
        "accuracy",
        top=1.0,
        colors=colors,
        note=f"grey: {found[0][1].baseline}, blue: {found[0][1].compared}; n = {'/'.join(map(str, sizes))} problems per bar; "
        "whiskers: 95 % CI",
    )
    note = (
        '<p class="note">Paired by problem: the difference\'s interval resamples problems once for both sides; '
        "p is the exact sign test over the problems that changed (exact McNemar with one sample per problem).</p>"
    )
    return _section(
        "before-after",
        "Before and after",
        chart
        + _table(
            [
                "eval run",
                "benchmark",
                "problems",
                "baseline [95% CI]",
                "compared [95% CI]",
                "difference [paired 95% CI]; problems changed; p",
                "what the difference says",
            ],
            rows,
        )
        + note,
    )


def _funnel(view: RunView) -> str:
    stage = view.stage("curate")
    funnel = _json(stage.folder / "funnel.json") if stage else None
    if not funnel:
        return ""
    bars = [(row["stage"], row["count"], None) for row in funnel]
    rows = [
        [
            row["stage"],
            row["count"],
            "skipped" if row.get("skipped") else row.get("removed", ""),
            ", ".join(f"{k} {v}" for k, v in row.get("by_reason", {}).items()),
        ]
        for row in funnel
    ]
    selected = stage.folder / "selected.jsonl"
    domains: dict[str, int] = {}
    if selected.exists():
        for p in read_jsonl(selected, Problem, allow_empty=True):
            domain = p.metadata.get("curation", {}).get("domain") or p.domain or "unlabelled"
            domains[domain] = domains.get(domain, 0) + 1
    spread = _table(["domain", "selected"], sorted(domains.items())) if domains else ""
    return _section(
        "funnel",
        "Curation funnel",
        charts.bar_chart("problems after each stage", bars, "problems", note="problems left after each step, in order")
        + _table(["stage", "count", "removed", "main reasons"], rows)
        + spread
        + '<p class="note">Every removed problem, with its stage, reason and evidence: '
        f"<code>{escape(view.relative(stage.folder / 'removed.jsonl'))}</code>.</p>",
    )


def _traces(view: RunView) -> str:
    stage = view.stage("distill")
    stats = _json(stage.folder / "stats.json") if stage else None
    if not stats:
        return ""
    t = stats.get("completion_tokens", {})
    rows = [
        ["traces", stats.get("traces")],
        ["problems", stats.get("problems")],
        ["correct", f"{stats.get('correct', 0):.1%}"],
        ["truncated", f"{stats.get('truncated', 0):.1%}"],
        ["never closed thinking", f"{stats.get('never_closed_thinking', 0):.1%}"],
        ["tokens median / p90 / max", f"{t.get('median')} / {t.get('p90')} / {t.get('max')}"],
        ["fine-tuning records", stats.get("sft_records")],
        ["cost (USD)", stats.get("cost_usd")],
    ]
    return _section("traces", "Distilled traces", _table(["", ""], rows))


def _training(view: RunView) -> str:
    stage = view.stage("train")
    record = training_record(stage.folder) if stage else None
    if not record:
        return ""
    log = record.get("log", [])
    series = {}
    for key in ("loss", "eval_loss", "reward"):
        points = [(e["step"], e[key], None) for e in log if key in e and "step" in e]
        if points:
            series[key] = points
    chart = charts.line_chart("training log", series, "step", "value") if series else ""
    facts = [
        [k, record[k]]
        for k in (
            "stage",
            "model",
            "steps",
            "train_samples",
            "validation_samples",
            "train_loss",
            "best_validation_loss",
            "seconds",
        )
        if k in record
    ]
    if "truncation" in record:
        facts.append(["truncated samples", record["truncation"]["truncated"]])
    return _section("training", "Training", chart + _table(["", ""], facts))


def _scores(view: RunView) -> str:
    rows, series, sizes = [], {}, set()
    for s in view.of("eval"):
        if not s.done or not s.config:
            continue
        p, budget = s.config["sampling"], Budget.model_validate(s.config["budget"]).describe()
        for bench, sc in s.scores.items():
            rows.append(
                [
                    s.name or s.model,
                    bench,
                    f"{sc.n_problems} x {sc.n_samples // max(sc.n_problems, 1)}",
                    _ci(sc),
                    " ".join(f"{k}:{v:.3f}" for k, v in sc.maj_at_k.items()),
                    " ".join(f"{k}:{v:.3f}" for k, v in sc.pass_at_k.items()),
                    f"{sc.avg_thinking_tokens:.0f} / {sc.avg_answer_tokens:.0f}",
                    f"{sc.truncated:.0%} / {sc.unclosed_thinking:.0%}",
                    advice(sc),
                    f"T={p['temperature']} top_p={p['top_p']} max_tokens={p['max_tokens']} seed={p['seed']}",
                    budget,
                ]
            )
            series.setdefault(f"{s.model} {bench}", []).append((sc.avg_thinking_tokens, sc.accuracy, tuple(sc.ci95)))
            sizes.add(sc.n_problems)
    if not rows:
        return ""
    table = _table(
        [
            "run",
            "benchmark",
            "problems x n",
            "accuracy [95% CI]",
            "maj@k",
            "pass@k",
            "thinking / answer tokens",
            "cut at max_tokens / thinking never closed",
            "the interval, and what would narrow it",
            "sampling",
            "budget forcing",
        ],
        rows,
    )
    chart = _accuracy_chart("accuracy vs thinking tokens, one point per eval run", series, THINKING, sizes)
    return _section("scores", "Scores", table + chart)


THINKING = "average thinking tokens per sample (log scale)"


def _accuracy_chart(title: str, series: dict, x_label: str, sizes: set) -> str:
    """Accuracy (0 to 1) against a count on a log axis, with the problems behind each point."""
    return charts.line_chart(title, series, x_label, "accuracy", log_x=True, y_range=(0, 1), note=_n_note(sizes))


def _n_note(sizes: set) -> str:
    known = sorted(n for n in sizes if n)
    counted = f"n = {'/'.join(map(str, known))} problems per point; " if known else ""
    return counted + "whiskers: 95 % CI"


def _against_first(found: dict | None) -> str:
    if not found or found["baseline"] == found["compared"]:
        return "-"
    return _difference(Comparison.model_validate(found))


def _scaling(view: RunView) -> str:
    """One budget curve per model in one chart (before and after fine-tuning side by side), each
    model's points against its smallest budget, and the models against the first at each budget."""
    series: dict[str, list] = {}
    parts, sizes, curves = [], set(), {}
    for stage in view.of("scale"):
        curve_file = stage.folder / "curve.json"
        if not curve_file.exists():
            continue
        curve = read_json(curve_file, "curve")
        label = stage.model or curve_file.parent.name
        curves[label] = stage.folder
        rows = []
        for p in curve["points"]:
            series.setdefault(f"{label} {p['benchmark']}", []).append(
                (p["avg_thinking_tokens"], p["accuracy"], tuple(p["ci95"]))
            )
            sizes.add((p.get("against_first") or {}).get("problems"))
            rows.append(
                [
                    p["point"],
                    p["benchmark"],
                    f"{p['avg_thinking_tokens']:.0f}",
                    _ci(p),
                    " ".join(f"{k}:{v:.3f}" for k, v in p["maj@k"].items()),
                    f"{p['control']:.2f}",
                    _against_first(p.get("against_first")),
                ]
            )
        parts.append(_sequential_parallel(label, curve))
        parts.append(
            f"<h3>{escape(label)}</h3>"
            + _table(
                [
                    "point",
                    "benchmark",
                    "thinking tokens",
                    "accuracy [95% CI]",
                    "maj@k",
                    "control",
                    "difference from the first point [paired 95% CI]; p",
                ],
                rows,
            )
        )
    if not series:
        return ""
    title = "accuracy vs thinking tokens, per model" if len(curves) > 1 else "accuracy vs thinking tokens"
    chart = _accuracy_chart(title, series, THINKING, sizes)
    return _section("scaling", "Test-time scaling", chart + _between_models(curves) + "".join(parts))


def _between_models(curves: dict[str, Path]) -> str:
    """Each model against the first (e.g. trained against base) at every budget both ran, paired."""
    from handful.evaluation import SAMPLES_FILE

    if len(curves) < 2:
        return ""
    (first, folder), *others = curves.items()
    rows = []
    for label, other in others:
        for point in sorted(p.name for p in (folder / "points").iterdir() if (other / "points" / p.name).exists()):
            a = read_jsonl(folder / "points" / point / SAMPLES_FILE, Generation)
            b = read_jsonl(other / "points" / point / SAMPLES_FILE, Generation)
            n = (max(g.sample_index for g in a) + 1, max(g.sample_index for g in b) + 1)
            for c in compare_samples(a, b, *n, baseline=first, compared=label):
                rows.append([point, c.benchmark, _difference(c), _verdict(c)])
    if not rows:
        return ""
    return f"<h3>each model against {escape(first)} at each budget</h3>" + _table(
        ["budget point", "benchmark", "difference [paired 95% CI]; p", "what the difference says"], rows
    )


def _sequential_parallel(label: str, curve: dict) -> str:
    """Budget forcing against majority voting at about the same generated tokens per problem."""
    if not curve.get("matched"):
        return ""
    points = curve["points"]
    first = points[0]["point"]
    series: dict[str, list] = {}
    for p in points:
        series.setdefault(f"budget forcing, 1 sample: {p['benchmark']}", []).append(
            (p["avg_tokens"], p["accuracy"], tuple(p["ci95"]))
        )
        if p["point"] == first:
            for k, value in p["maj@k"].items():
                series.setdefault(f"majority of k at {first}: {p['benchmark']}", []).append(
                    (int(k) * p["avg_tokens"], value, None)
                )
    rows = [
        [
            m["benchmark"],
            f"{m['sequential']} ({m['sequential_tokens']:.0f} tokens)",
            f"{m['parallel']} ({m['parallel_tokens']:.0f} tokens)",
            _difference(c),
            _verdict(c),
        ]
        for m in curve["matched"]
        for c in [Comparison.model_validate(m["comparison"])]
    ]
    return _accuracy_chart(
        f"{label}: sequential (budget) against parallel (votes) thinking",
        series,
        "generated tokens per problem (log scale)",
        {m["comparison"]["problems"] for m in curve["matched"]},
    ) + _table(
        [
            "benchmark",
            "sequential: a larger budget",
            "parallel: majority vote at the smallest budget",
            "sequential minus parallel [paired 95% CI]; p",
            "what the difference says",
        ],
        rows,
    )


def _precision(view: RunView) -> str:
    parts = []
    for stage in view.of("precision"):
        study_file = stage.folder / "precision.json"
        if not study_file.exists():
            continue
        study = read_json(study_file, "precision study")
        bars = [(f"{p['precision']} {p['benchmark']}", p["accuracy"], tuple(p["ci95"])) for p in study["points"]]
        rows = [
            [
                p["precision"],
                p["benchmark"],
                _ci(p),
                _against_first(p.get("against_float32")),
                "-" if p["identical_to_float32"] is None else f"{p['identical_to_float32']:.0%}",
                "-" if p["tokens_per_s"] is None else f"{p['tokens_per_s']:.1f}",
                "-" if p["peak_rss_mib"] is None else f"{p['peak_rss_mib']:,.0f}",
                f"{p['weights_mib']:,.0f}",
            ]
            for p in study["points"]
        ]
        label = stage.model or study_file.parent.name
        parts.append(
            charts.bar_chart(
                f"{label}: accuracy by precision",
                bars,
                "accuracy",
                top=1.0,
                note=_n_note({(p.get("against_float32") or {}).get("problems") for p in study["points"]}),
            )
            + _table(
                [
                    "precision",
                    "benchmark",
                    "accuracy [95% CI]",
                    "difference from float32 [paired 95% CI]; p",
                    "outputs identical to float32",
                    "tokens/s (whole point)",
                    "peak memory MiB",
                    "weights MiB",
                ],
                rows,
            )
        )
    return _section("precision", "Numeric precision", "".join(parts)) if parts else ""


def _study(view: RunView) -> str:
    from handful.study import BASE, STUDY_FILE, pooled

    parts = []
    for stage in view.of("study"):
        found = stage.folder / STUDY_FILE
        if not found.exists():
            continue
        result = read_json(found, "study")
        shown = pooled(result["points"])
        series: dict[str, list] = {}
        for p in shown:
            sides = ["curated", "random"] if p["point"] == BASE else [p["selection"]]
            for side in sides:  # the untrained model starts both lines, at 0 examples
                name = f"{side} {p['benchmark']}"
                series.setdefault(name, []).append((p["size"], p["accuracy"], tuple(p["ci95"])))
        series = {k: v for k, v in series.items() if len(v) > 1}
        rows = [
            [
                p["point"],
                p["benchmark"],
                p["size"],
                p["steps"],
                _ci(p),
                _against_first(p["against_base"]),
                _against_first(p["against_curated"]),
            ]
            for p in shown
        ]
        cfg = result["config"]
        parts.append(
            _accuracy_chart(
                "accuracy vs training examples",
                series,
                "training examples (log scale; 0 = the untrained model)",
                {p["problems"] for p in shown},
            )
            + _table(
                [
                    "point",
                    "benchmark",
                    "training examples",
                    "optimizer steps",
                    "accuracy [95% CI]",
                    "difference from the untrained model [paired 95% CI]; p",
                    "random against curated at this size [paired 95% CI]; p",
                ],
                rows,
            )
            + f'<p class="note">Every point trains with the same settings and seed, for the same '
            f"{escape(cfg['equal'])}; the curated points are nested (the smaller sets are the first examples "
            "of the larger); random points draw the same number of problems from the pool curation chose from "
            "and give them traces with the same teacher.</p>"
        )
    return _section("study", "How many examples", "".join(parts)) if parts else ""


def _transparency(score: dict) -> str:
    dims = ", ".join(f"{d} {score['by_dimension'][d]}/{score['maximum'][d]}" for d in score["maximum"])
    rows = [
        [i["dimension"], i["question"], f"{i['earned']}/{i['points']}", i["status"], i["evidence"]]
        for i in score["items"]
    ]
    published = ", ".join(f"{k} {v['total']}" for k, v in score["published_scores"].items())
    return _section(
        "transparency",
        "Transparency",
        f'<p class="total">{score["total"]} / 100 ({escape(dims)})</p>'
        + _table(["dimension", "question", "points", "status", "evidence or what is missing"], rows, "items")
        + f'<p class="note">Checklist and published scores ({escape(published)}): {escape(score["source"])}.</p>',
    )


def _settings(view: RunView) -> str:
    parts = []
    for s in view.stages:
        text = yaml.safe_dump(s.config, sort_keys=False) if s.config else "(not run yet)"
        command = " ".join(s.command) or view.written_by
        timing = f", {s.seconds_spent / 60:.1f} min" if s.seconds_spent is not None else ""
        parts.append(
            f"<details><summary>{escape(s.name or s.kind)} ({escape(s.status)}{timing})</summary>"
            f"<p><code>{escape(command)}</code></p><pre>{escape(text)}</pre></details>"
        )
    m = view.manifest["machine"]
    machine = (
        f"{m.get('cpu', m.get('processor'))}, {m.get('logical_cpus')} CPUs, {m.get('memory_gib')} GiB, "
        f"GPUs: {m.get('gpus') or 'none'}"
        if m
        else f"machine not recorded (`{view.written_by}` does not record it; `handful run` does)"
    )
    version = view.manifest["handful"].get("handful", "version not recorded")
    return _section(
        "settings", "Stages and settings", f"<p>{escape(machine)}; handful {escape(version)}</p>" + "".join(parts)
    )


def _samples(view: RunView) -> tuple[str, list[dict]]:
    from handful.evaluation import SAMPLES_FILE, posed

    data = []
    for s in view.of("eval"):
        if not (s.folder / SAMPLES_FILE).exists():
            continue
        problems = posed(s.folder)  # as the run stored them: a benchmark is never rebuilt here
        for g in read_jsonl(s.folder / SAMPLES_FILE, Generation):
            p = problems.get((g.benchmark, g.problem_id))
            data.append(
                {
                    "run": s.name or s.model,
                    "benchmark": g.benchmark,
                    "id": g.problem_id,
                    "i": g.sample_index,
                    "question": p.question if p else "",
                    "gold": p.answer if p else "",
                    "extracted": g.extracted,
                    "correct": bool(g.correct),
                    "outcome": g.outcome,
                    "thinking": g.thinking,
                    "answer": g.answer_text if g.thinking is not None else g.text,
                    "thinking_tokens": g.thinking_tokens,
                    "tokens": g.completion_tokens,
                    "finish": g.finish_reason,
                }
            )
    total = len(data)
    shown = data[:MAX_SAMPLES]
    note = (
        f'<p class="note">{total:,} samples; the first {MAX_SAMPLES:,} are here, all are in the runs\' samples.jsonl.</p>'
        if total > MAX_SAMPLES
        else ""
    )
    controls = (
        '<div class="controls"><select id="f-run" data-testid="filter-run"><option value="">every run</option></select>'
        '<select id="f-bench" data-testid="filter-benchmark"><option value="">every benchmark</option></select>'
        '<select id="f-verdict" data-testid="filter-verdict"><option value="">correct and incorrect</option>'
        '<option value="correct">correct</option><option value="incorrect">incorrect</option></select>'
        '<input id="f-query" data-testid="search" type="search" placeholder="search questions and answers">'
        '<span id="f-count" data-testid="count"></span></div><div id="samples" data-testid="samples"></div>'
        '<div class="pager"><button id="f-prev" data-testid="previous" type="button">previous</button>'
        '<span id="f-page" data-testid="page"></span>'
        '<button id="f-next" data-testid="next" type="button">next</button></div>'
    )
    return (_section("browser", "Samples", note + controls) if data else ""), shown


def _embedded(data) -> str:
    text = json.dumps(data, ensure_ascii=False)
    for raw, safe in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, safe)
    return text


def render(out: str | Path) -> str:
    """The page for any directory handful wrote; its transparency score counts the page itself."""
    view = read(out)
    browser, samples = _samples(view)
    sections = [
        _headline(comparisons(view)),
        _funnel(view),
        _traces(view),
        _training(view),
        _scores(view),
        _scaling(view),
        _precision(view),
        _study(view),
        _transparency(transparency.score(view, report_written=True)),
        _settings(view),
        browser,
    ]
    nav = "".join(
        f'<a href="#{ident}">{escape(name)}</a>'
        for ident, name in (
            ("before-after", "before/after"),
            ("funnel", "funnel"),
            ("traces", "traces"),
            ("training", "training"),
            ("scores", "scores"),
            ("scaling", "scaling"),
            ("precision", "precision"),
            ("study", "examples"),
            ("transparency", "transparency"),
            ("settings", "settings"),
            ("browser", "samples"),
        )
        if f'id="{ident}"' in "".join(sections)
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(view.name)}: handful report</title>
<style>{(ASSETS / "report.css").read_text()}</style></head>
<body><header><h1>{escape(view.name)}</h1><p>{escape(view.description)}</p>
<p class="note">handful {escape(view.manifest["handful"].get("handful", ""))}, written {when}</p><nav>{nav}</nav></header>
<main>{"".join(sections)}</main>
<script type="application/json" id="samples-data">{_embedded(samples)}</script>
<script>{(ASSETS / "report.js").read_text()}</script>
</body></html>
"""
    return page


def write(out: str | Path) -> Path:
    out = Path(out)
    return write_text(out / REPORT, render(out))  # secrets removed on the way
