"""Charts as inline SVG strings: no scripts, no network, readable printed.

Shared by the monitor report, the model card and ``indb ui``. Every point carries a ``<title>``
with its value, so hovering shows numbers and a test can read them back.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
WIDTH, HEIGHT, PAD = 520, 180, 36


def line_chart(title: str, series: dict[str, pd.Series], threshold: float | None = None) -> str:
    """Lines over window starts; a dashed red line at the threshold."""
    values = [v for s in series.values() for v in s.dropna().tolist()]
    if threshold is not None:
        values.append(threshold)
    if not values:
        return ""
    times = sorted({t for s in series.values() for t in s.index})
    low, high = min(0.0, min(values)), max(values) * 1.1 or 1.0
    span_x = max(len(times) - 1, 1)

    def x(t):
        return PAD + (times.index(t) / span_x) * (WIDTH - 2 * PAD)

    def y(v):
        return HEIGHT - PAD + (PAD * 2 - HEIGHT) * (v - low) / (high - low)

    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="2" y="{y(high / 1.1):.1f}" font-size="10">{high / 1.1:.3g}</text>',
        f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{low:.3g}</text>',
    ]
    if times:
        parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{times[0]:%Y-%m-%d %H:%M}</text>')
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">'
            f"{times[-1]:%Y-%m-%d %H:%M}</text>"
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{PAD}" y1="{y(threshold):.1f}" x2="{WIDTH - PAD}" y2="{y(threshold):.1f}" '
            f'stroke="#d62728" stroke-dasharray="4 3"/><text x="{WIDTH - PAD}" y="{y(threshold) - 3:.1f}" '
            f'font-size="10" text-anchor="end" fill="#d62728">threshold {threshold:g}</text>'
        )
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.dropna().items())
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        for t, v in s.dropna().items():
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                f"<title>{v:.4g}</title></circle>"
            )
        if len(series) > 1:
            parts.append(
                f'<text x="{WIDTH - PAD + 4}" y="{PAD + 14 * i}" font-size="10" fill="{color}">'
                f"{html.escape(name)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def paired_bars(title: str, labels: list[str], reference: np.ndarray, current: np.ndarray) -> str:
    """Paired bars: reference (grey) and the latest window (blue) shares per bin or category."""
    n = max(len(labels), 1)
    slot = (WIDTH - 2 * PAD) / n
    top = max(float(np.max(reference, initial=0)), float(np.max(current, initial=0))) or 1.0
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{WIDTH - PAD}" y="16" font-size="10" text-anchor="end">'
        '<tspan fill="#999">reference</tspan> '
        '<tspan fill="#1f77b4">latest window</tspan></text>',
    ]
    for i, (label, r, c) in enumerate(zip(labels, reference, current, strict=True)):
        x0 = PAD + i * slot
        for j, (share, color) in enumerate(((r, "#999"), (c, "#1f77b4"))):
            h = (HEIGHT - 2 * PAD) * share / top
            parts.append(
                f'<rect x="{x0 + j * slot * 0.4 + slot * 0.1:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{h:.1f}" fill="{color}"><title>{share:.3f}</title></rect>'
            )
        parts.append(
            f'<text x="{x0 + slot / 2:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str, labels: list[str], values: list[float], marks: list[float | None] | None = None
) -> str:
    """Horizontal bars, one per label (e.g. features by importance, groups by selection rate);
    ``marks``: a dark tick per bar (e.g. the reference's value). NULL values draw no bar."""
    row = 16
    height = PAD + row * max(len(labels), 1) + 12
    left, right = 150, WIDTH - 60
    known = [float(v) for v in [*values, *(marks or [])] if v is not None and not pd.isna(v)]
    top = max([*known, 0.0]) or 1.0
    parts = [
        f'<svg width="{WIDTH}" height="{height}" role="img"><title>{html.escape(title)}</title>',
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    if marks is not None:
        parts.append(
            f'<text x="{WIDTH - PAD}" y="16" font-size="10" text-anchor="end">'
            '<tspan fill="#1f77b4">window</tspan> <tspan fill="#333">| reference</tspan></text>'
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y0 = PAD + i * row
        parts.append(
            f'<text x="{left - 6}" y="{y0 + 11}" font-size="10" text-anchor="end">'
            f"{html.escape(str(label))}</text>"
        )
        if value is not None and not pd.isna(value):
            w = (right - left) * float(value) / top
            parts.append(
                f'<rect x="{left}" y="{y0 + 2}" width="{max(w, 0):.1f}" height="{row - 4}" fill="#1f77b4">'
                f"<title>{float(value):.4g}</title></rect>"
                f'<text x="{left + max(w, 0) + 4:.1f}" y="{y0 + 11}" font-size="9">{float(value):.3g}</text>'
            )
        mark = marks[i] if marks is not None else None
        if mark is not None and not pd.isna(mark):
            x = left + (right - left) * float(mark) / top
            parts.append(
                f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + row}" stroke="#333" stroke-width="2">'
                f"<title>reference {float(mark):.4g}</title></line>"
            )
    parts.append("</svg>")
    return "".join(parts)


# -- indb ui ----------------------------------------------------------------------------------
def histogram(title: str, labels: list[str], counts: list[float]) -> str:
    """One bar per bin or category (its count in the bar's <title>); colours come from CSS
    (``currentColor`` by default), so a page's light or dark theme applies."""
    n = max(len(labels), 1)
    slot = (WIDTH - 2 * PAD) / n
    top = max([float(c) for c in counts], default=0.0) or 1.0
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" class="histogram">'
        f"<title>{html.escape(title)}</title>",
        f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="2" y="{PAD}" font-size="10">{top:.4g}</text>',
    ]
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = (HEIGHT - 2 * PAD) * float(count) / top
        x0 = PAD + i * slot
        parts.append(
            f'<rect x="{x0 + slot * 0.1:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{h:.1f}" fill="currentColor" fill-opacity="0.6"><title>{html.escape(label)}: '
            f"{float(count):.6g}</title></rect>"
        )
        if n <= 12 or i % max(n // 6, 1) == 0:
            parts.append(
                f'<text x="{x0 + slot / 2:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
                f'text-anchor="middle">{html.escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


LINEAGE_COLUMNS = {
    "deployment": 0,
    "model": 1,
    "training_run": 2,
    "training_set": 3,
    "feature_set": 4,
    "spine": 4,
    "source": 5,
}


def lineage_graph(title: str, edges: list[tuple[tuple, str, tuple]]) -> str:
    """Boxes for (kind, name, version) nodes in columns by kind (deployment, model, training
    run, training set, feature set or spine, source) and a line per (from, relation, to) edge,
    its relation in the line's <title>."""
    nodes: dict[tuple, tuple[float, float]] = {}
    rows = [0] * (max(LINEAGE_COLUMNS.values()) + 1)
    box_w, box_h, gap_x, gap_y, top = 150, 26, 30, 10, 28
    for start, _, end in edges:
        for node in (start, end):
            if node not in nodes:
                column = LINEAGE_COLUMNS.get(node[0], len(rows) - 1)
                nodes[node] = (8 + column * (box_w + gap_x), top + rows[column] * (box_h + gap_y))
                rows[column] += 1
    if not nodes:
        return ""
    width = 8 + len(rows) * (box_w + gap_x)
    height = top + max(rows) * (box_h + gap_y) + 8
    parts = [
        f'<svg width="{width}" height="{height}" role="img" class="lineage">'
        f"<title>{html.escape(title)}</title>",
        f'<text x="8" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for start, relation, end in edges:
        (x1, y1), (x2, y2) = nodes[start], nodes[end]
        ax, bx = (x1 + box_w, x2) if x2 > x1 else (x1, x2 + box_w) if x2 < x1 else (x1 + box_w, x2 + box_w)
        parts.append(
            f'<line x1="{ax:.0f}" y1="{y1 + box_h / 2:.0f}" x2="{bx:.0f}" y2="{y2 + box_h / 2:.0f}" '
            f'stroke="#999" stroke-width="1.5"><title>{html.escape(relation)}</title></line>'
        )
    for (kind, name, version), (x, y) in nodes.items():
        label = f"{kind.replace('_', ' ')} {name}" + ("" if version is None else f" v{version}")
        shown = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<g><title>{html.escape(label)}</title><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" '
            f'rx="4" fill="none" stroke="currentColor"/><text x="{x + 6}" y="{y + 17}" font-size="11">'
            f"{html.escape(shown)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
