"""Inline SVG charts: line charts and a heatmap, with no script and no network fetch.

The report must open from a file on a machine without internet, so charts are plain SVG
elements embedded in the HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["heatmap", "line_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_W, _H, _PAD = 720, 240, 48


def _fmt(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def line_chart(
    chart_id: str, title: str, series: Mapping[str, Sequence[float | None]], unit: str = ""
) -> str:
    """One SVG with a line per series over the run's seconds; ``None`` values are gaps."""
    values = [v for points in series.values() for v in points if v is not None]
    top = max(values, default=0.0) or 1.0
    length = max((len(points) for points in series.values()), default=0)
    span = max(length - 1, 1)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {_W} {_H + 30}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}">',
        f'<text x="{_PAD}" y="16" class="title">{escape(title)}</text>',
        f'<line x1="{_PAD}" y1="{_H - _PAD + 20}" x2="{_W - 10}" y2="{_H - _PAD + 20}" stroke="#888"/>',
        f'<line x1="{_PAD}" y1="28" x2="{_PAD}" y2="{_H - _PAD + 20}" stroke="#888"/>',
        f'<text x="4" y="34" class="axis">{_fmt(top)}{escape(unit)}</text>',
        f'<text x="4" y="{_H - _PAD + 20}" class="axis">0</text>',
        f'<text x="{_W - 60}" y="{_H - _PAD + 36}" class="axis">{length - 1 if length else 0}s</text>',
    ]
    plot_h = _H - _PAD - 8
    for index, (name, points) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for t, value in enumerate(points):
            if value is None:
                segments.append([])
                continue
            x = _PAD + (_W - _PAD - 10) * t / span
            y = _H - _PAD + 20 - plot_h * (value / top)
            segments[-1].append(f"{x:.1f},{y:.1f}")
        for segment in segments:
            if segment:
                parts.append(
                    f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.8" '
                    f'points="{" ".join(segment)}"/>'
                )
        parts.append(
            f'<text x="{_PAD + 10 + 150 * (index % 4)}" y="{_H + 10 + 14 * (index // 4)}" '
            f'class="legend" fill="{color}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heatmap(chart_id: str, title: str, rows: Mapping[str, Sequence[float]], limit: float) -> str:
    """One row per shard, one cell per second, shaded by load as a fraction of ``limit``,
    with the colour scale drawn underneath."""
    names = list(rows)
    length = max((len(v) for v in rows.values()), default=0)
    cell_w = max(4.0, min(24.0, (_W - 160) / max(length, 1)))
    cell_h = 18
    scale_y = 34 + cell_h * len(names)
    height = scale_y + 30
    parts = [
        f'<svg class="chart heatmap" id="{escape(chart_id)}" viewBox="0 0 {160 + cell_w * length + 10:.0f} '
        f'{height}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" class="title">{escape(title)}</text>',
    ]
    for r, name in enumerate(names):
        y = 28 + r * cell_h
        parts.append(f'<text x="4" y="{y + 13}" class="axis">{escape(name)}</text>')
        for t, value in enumerate(rows[name]):
            ratio = min(value / limit, 1.5) if limit else 0.0
            color = _heat(ratio)
            parts.append(
                f'<rect class="cell" x="{160 + t * cell_w:.1f}" y="{y}" width="{cell_w - 1:.1f}" '
                f'height="{cell_h - 2}" fill="{color}"><title>{escape(name)} t={t}s: {value:.0f} '
                f"({ratio:.0%} of limit)</title></rect>"
            )
    parts.append(f'<text x="4" y="{scale_y + 13}" class="axis">share of the limit</text>')
    for index, (ratio, label) in enumerate(_SCALE):
        x = 160 + index * 64
        parts.append(
            f'<rect class="scale" x="{x}" y="{scale_y}" width="18" height="16" fill="{_heat(ratio)}" '
            'stroke="#999" stroke-width="0.5"/>'
            f'<text x="{x + 22}" y="{scale_y + 13}" class="axis">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_SCALE = ((0.0, "0%"), (0.25, "25%"), (0.5, "50%"), (0.75, "75%"), (0.95, "95%"), (1.0, "over"))


def _heat(ratio: float) -> str:
    """White at 0, orange near the limit, dark red beyond it."""
    if ratio >= 1.0:
        return "#7f0000"
    shade = int(255 * (1 - ratio))
    return f"rgb(255,{max(shade, 90)},{max(shade - 60, 0)})"
