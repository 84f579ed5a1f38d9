"""Small SVG charts for the report: drawn here as text, so the page needs no script library
and works offline. Every label is escaped.

Text is laid out from an estimate of its width (`_width`, generous for the report's sans-serif
at 11 px), so tick labels that would touch are thinned out, bar labels wrap onto more lines,
and legend entries flow onto as many rows as they need; the chart grows to hold them rather
than cutting a name. The browser test measures the drawn text to hold this.
"""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
BAR = "#1f77b4"
WIDTH, LEFT, RIGHT, TOP, AXIS = 640, 64, 16, 40, 236  # AXIS: the y of the x axis
LINE = 14  # one line of 11 px text
GAP = 10  # the least room between two tick labels


def _width(text: str, size: float = 11) -> float:
    # An upper estimate: digits and most letters of a sans-serif run at 0.5-0.6 em.
    return len(text) * size * 0.62


def _frame(title: str, subtitle: str, body: list[str], height: int) -> str:
    sub = f'<text x="{WIDTH / 2}" y="31" text-anchor="middle" class="chart-note">{escape(subtitle)}</text>'
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="chart-title">{escape(title)}</text>'
        + (sub if subtitle else "")
        + "".join(body)
        + "</svg>"
    )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(step))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step), default=step)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """0 where the data reach it, then powers of two across the range."""
    ticks = [0.0] if low <= 0 else []
    power = 2 ** math.floor(math.log2(max(low, 1)))
    while power <= high * 1.0001:
        if power >= low or not ticks:
            ticks.append(float(power))
        power *= 2
    return ticks


def _spaced(positions: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Keep tick labels, left to right, that do not touch the one kept before them."""
    kept: list[tuple[float, str]] = []
    for x, label in sorted(positions):
        if not kept or x - _width(label) / 2 >= kept[-1][0] + _width(kept[-1][1]) / 2 + GAP:
            kept.append((x, label))
    return kept


def _wrap(text: str, width: float, lines: int = 3) -> list[str]:
    """Words onto lines of at most `width` px; the last line ends in "..." if it all won't fit."""
    out: list[str] = []
    for word in text.split():
        while _width(word) > width:  # a word longer than a line is cut where it must
            cut = max(int(width / _width("x")), 1)
            out.append(word[:cut])
            word = word[cut:]
        if out and _width(out[-1] + " " + word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: max(int(width / _width("x")) - 3, 1)] + "..."
    return out or [""]


def _y_axis(low: float, high: float, label: str, y, bottom: float) -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" class="axis"/>',
        f'<text x="14" y="{(TOP + bottom) / 2}" transform="rotate(-90 14 {(TOP + bottom) / 2})" text-anchor="middle">{escape(label)}</text>',
    ]
    for t in _ticks(low, high):
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{y(t):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" class="tick-y">{t:g}</text>'
        )
    return parts


def bar_chart(
    title: str,
    bars: list[tuple[str, float, tuple[float, float] | None]],
    y_label: str,
    top: float | None = None,
    colors: list[str] | None = None,
    note: str = "",
) -> str:
    """Vertical bars with optional 95 % interval whiskers, one colour unless `colors` says
    what a colour means; `note` (e.g. the n) is printed under the title."""
    high = (
        top
        if top is not None
        else max([v for _, v, _ in bars] + [hi for *_, ci in bars if ci for hi in ci[1:]] + [1e-9]) * 1.1
    )
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    labels = [_wrap(label, slot - 6) for label, _, _ in bars]
    lines = max((len(w) for w in labels), default=1)
    bottom = AXIS
    height = bottom + 10 + lines * LINE
    y = lambda v: bottom - (bottom - TOP) * (v / high if high else 0)
    body = _y_axis(0, high, y_label, y, bottom)
    body.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="axis"/>')
    for i, ((label, value, ci), wrapped) in enumerate(zip(bars, labels, strict=True)):
        x = LEFT + i * slot + slot * 0.15
        mid = x + slot * 0.35
        fill = colors[i % len(colors)] if colors else BAR
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y(value):.1f}" width="{slot * 0.7:.1f}" height="{max(y(0) - y(value), 0.5):.1f}" '
            f'fill="{fill}"><title>{escape(label)}: {value:.3g}</title></rect>'
        )
        if ci:
            body.append(
                f'<path class="whisker" d="M{mid:.1f} {y(ci[0]):.1f}V{y(ci[1]):.1f}M{mid - 5:.1f} {y(ci[0]):.1f}h10M{mid - 5:.1f} {y(ci[1]):.1f}h10"/>'
            )
        spans = "".join(
            f'<tspan x="{mid:.1f}" y="{bottom + 14 + k * LINE}">{escape(line)}</tspan>'
            for k, line in enumerate(wrapped)
        )
        # The value sits above the whisker, so the two never cross.
        above = min(y(value), y(ci[1]) if ci else y(value))
        body.append(
            f'<text text-anchor="middle" class="bar-label">{spans}</text>'
            f'<text x="{mid:.1f}" y="{max(above - 4, TOP + 10):.1f}" text-anchor="middle" class="value">{value:.3g}</text>'
        )
    return _frame(title, note, body, height)


def _legend(names: list[str], top: float) -> tuple[list[str], float]:
    """Legend entries flowing left to right onto rows; (svg parts, height taken)."""
    parts, x, y = [], float(LEFT), top
    for i, name in enumerate(names):
        shown = name if len(name) <= 80 else name[:77] + "..."
        need = 14 + _width(shown) + 16
        if x > LEFT and x + need > WIDTH - RIGHT:
            x, y = float(LEFT), y + LINE + 4
        color = COLORS[i % len(COLORS)]
        parts.append(
            f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14:.0f}" y="{y:.0f}" class="legend"><title>{escape(name)}</title>{escape(shown)}</text>'
        )
        x += need
    return parts, y - top + 6


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float, tuple[float, float] | None]]],
    x_label: str,
    y_label: str,
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
    note: str = "",
) -> str:
    """Lines through (x, y) points, with optional interval whiskers; the legend below.

    A log x axis is log2(1 + x), so a point at 0 (no thinking at all) has its place at the
    left end instead of being moved to 1."""
    points = [p for ps in series.values() for p in ps]
    if not points:
        return _frame(title, note, ['<text x="50%" y="50%" text-anchor="middle">no data</text>'], AXIS + 48)
    fx = (lambda v: math.log2(1 + max(v, 0))) if log_x else (lambda v: v)
    raw = [x for x, _, _ in points]
    x0, x1 = fx(min(raw)), fx(max(raw))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range or (min(y for _, y, _ in points), max(y for _, y, _ in points))
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    bottom = AXIS
    legend, legend_height = _legend(list(series), bottom + 52)
    height = int(bottom + 52 + legend_height)
    px = lambda v: LEFT + 8 + (WIDTH - LEFT - RIGHT - 16) * (fx(v) - x0) / (x1 - x0)
    py = lambda v: bottom - (bottom - TOP) * (v - y0) / (y1 - y0)
    body = _y_axis(y0, y1, y_label, py, bottom)
    body.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="axis"/>'
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{bottom + 30}" text-anchor="middle">{escape(x_label)}</text>'
    )
    lo, hi = min(raw), max(raw)
    candidates = _log_ticks(lo, hi) if log_x else _ticks(lo, hi)
    ticks = [(px(t), f"{t:g}") for t in candidates if lo - 1e-9 <= t <= hi + 1e-9] or [(px(lo), f"{lo:g}")]
    for x, label in _spaced(ticks):
        body.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" class="axis"/>'
            f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle" class="tick-x">{label}</text>'
        )
    for i, (name, ps) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        ordered = sorted(ps)
        path = "".join(f"{'M' if j == 0 else 'L'}{px(x):.1f} {py(y):.1f}" for j, (x, y, _) in enumerate(ordered))
        body.append(f'<path class="line" d="{path}" stroke="{color}" fill="none" stroke-width="2"/>')
        for x, y, ci in ordered:
            body.append(
                f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"><title>{escape(name)}: {x:g}, {y:.3g}</title></circle>'
            )
            if ci:
                body.append(
                    f'<path class="whisker" stroke="{color}" d="M{px(x):.1f} {py(ci[0]):.1f}V{py(ci[1]):.1f}"/>'
                )
    body += legend
    return _frame(title, note, body, height)
