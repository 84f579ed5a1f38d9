"""The report's SVG charts lay their text out so that nothing is cut or drawn over: the
browser test measures the drawn text; these check the layout rules themselves."""

import itertools
import re

from handful import charts


def _texts(svg: str, cls: str) -> list[tuple[float, str]]:
    return [(float(x), t) for x, t in re.findall(rf'<text x="([\d.]+)"[^>]*class="{cls}">([^<]*)', svg)]


def test_x_tick_labels_keep_apart_and_zero_has_its_place():
    series = {"base": [(0, 0.1, None), (97, 0.3, None), (101, 0.35, None), (105, 0.4, None)]}
    svg = charts.line_chart("t", series, "thinking tokens", "accuracy", log_x=True, y_range=(0, 1))
    ticks = _texts(svg, "tick-x")
    assert ticks[0][1] == "0" and [t for _, t in ticks][-1] == "64"  # powers of two, not one label per point
    for (x, a), (y, b) in itertools.pairwise(ticks):
        assert y - x >= (charts._width(a) + charts._width(b)) / 2 + charts.GAP
    # The point at 0 sits at the left end of the axis, not at 1.
    first = float(re.search(r'<circle class="point" cx="([\d.]+)"', svg).group(1))
    assert abs(first - ticks[0][0]) < 0.5


def test_long_legend_names_are_whole_and_flow_onto_rows():
    names = [f"trained dyn:multiplication?digits={d}&n=30 budget {d}" for d in range(6)]
    svg = charts.line_chart("t", {n: [(1, 0.5, None), (2, 0.6, None)] for n in names}, "x", "y")
    legend = re.findall(r'class="legend"><title>[^<]*</title>([^<]*)</text>', svg)
    assert legend == [n.replace("&", "&amp;") for n in names]
    rows = sorted({float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" class="legend"', svg)})
    assert len(rows) >= 3
    height = float(re.search(r'height="([\d.]+)"', svg).group(1))
    assert rows[-1] < height
    for x, text in _texts(svg, "legend"):
        assert x + charts._width(text) <= charts.WIDTH


def test_bar_labels_wrap_instead_of_being_cut_and_bars_share_one_colour():
    bars = [(f"run {i}: the trained model", 0.5, (0.4, 0.6)) for i in range(6)]
    svg = charts.bar_chart("t", bars, "accuracy", top=1.0)
    assert len(set(re.findall(r'<rect class="bar"[^>]*fill="([^"]+)"', svg))) == 1
    spans = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg)
    assert " ".join(spans).count("the trained model") == 6  # every word kept, over several lines
    slot = (charts.WIDTH - charts.LEFT - charts.RIGHT) / 6
    assert all(charts._width(s) <= slot for s in spans)
