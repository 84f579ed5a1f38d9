"""Small SVG charts for the report: drawn here as text, so the page needs no script library
and works offline. Every label is escaped."""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 300, 64, 16, 28, 64


def _frame(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" class="chart-title">{escape(title)}</text>'
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


def _y_axis(low: float, high: float, label: str, y) -> list[str]:
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" class="axis"/>',
        f'<text x="14" y="{(TOP + HEIGHT - BOTTOM) / 2}" transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2})" text-anchor="middle">{escape(label)}</text>',
    ]
    for t in _ticks(low, high):
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{y(t):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>'
        )
    return parts


def bar_chart(
    title: str,
    bars: list[tuple[str, float, tuple[float, float] | None]],
    y_label: str,
    top: float | None = None,
    colors: list[str] | None = None,
) -> str:
    """Vertical bars with optional 95 % interval whiskers."""
    high = (
        top
        if top is not None
        else max([v for _, v, _ in bars] + [hi for *_, ci in bars if ci for hi in ci[1:]] + [1e-9]) * 1.1
    )
    y = lambda v: HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * (v / high if high else 0)
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    body = _y_axis(0, high, y_label, y)
    for i, (label, value, ci) in enumerate(bars):
        x = LEFT + i * slot + slot * 0.15
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y(value):.1f}" width="{slot * 0.7:.1f}" height="{max(y(0) - y(value), 0.5):.1f}" '
            f'fill="{(colors or COLORS)[i % len(colors or COLORS)]}"><title>{escape(label)}: {value:.3g}</title></rect>'
        )
        if ci:
            mid = x + slot * 0.35
            body.append(
                f'<path class="whisker" d="M{mid:.1f} {y(ci[0]):.1f}V{y(ci[1]):.1f}M{mid - 5:.1f} {y(ci[0]):.1f}h10M{mid - 5:.1f} {y(ci[1]):.1f}h10"/>'
            )
        body.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" class="bar-label">{escape(label[:28])}</text>'
            f'<text x="{x + slot * 0.35:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle">{value:.3g}</text>'
        )
    return _frame(title, body)


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float, tuple[float, float] | None]]],
    x_label: str,
    y_label: str,
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
) -> str:
    """Lines through (x, y) points, with optional interval whiskers; a legend below."""
    points = [p for ps in series.values() for p in ps]
    if not points:
        return _frame(title, ['<text x="50%" y="50%" text-anchor="middle">no data</text>'])
    fx = (lambda v: math.log2(max(v, 1e-9))) if log_x else (lambda v: v)
    xs = [fx(x) for x, _, _ in points]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range or (min(y for _, y, _ in points), max(y for _, y, _ in points))
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    px = lambda v: LEFT + (WIDTH - LEFT - RIGHT) * (fx(v) - x0) / (x1 - x0)
    py = lambda v: HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * (v - y0) / (y1 - y0)
    body = _y_axis(y0, y1, y_label, py)
    body.append(
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" class="axis"/>'
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - BOTTOM + 30}" text-anchor="middle">{escape(x_label)}</text>'
    )
    for x in sorted({x for x, _, _ in points}):
        body.append(f'<text x="{px(x):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{x:g}</text>')
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
        body.append(
            f'<rect x="{LEFT + 150 * (i % 4)}" y="{HEIGHT - 18}" width="10" height="10" fill="{color}"/>'
            f'<text x="{LEFT + 150 * (i % 4) + 14}" y="{HEIGHT - 9}">{escape(name[:22])}</text>'
        )
    return _frame(title, body)
