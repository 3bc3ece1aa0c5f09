"""Inline SVG charts for the HTML report: confusion-matrix heatmap, metric trend, gate interval bars.

Why hand-written SVG: the report must be one self-contained file that works offline in Jenkins and uploads
nothing anywhere, and a plotting library would add a heavy dependency for three simple charts. Every text node
from data (class names, commits, tooltips) goes through markupsafe's escape; numbers are formatted here.
Native `<title>` tooltips give hover details without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from . import fmt

FONT = "font-family=\"-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif\""
VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#bf8700"}
BLUE_LO, BLUE_HI = (238, 244, 251), (9, 80, 160)
RED_LO, RED_HI = (253, 236, 232), (179, 38, 30)
EMPTY = "#f6f8fa"


def _mix(lo: tuple[int, int, int], hi: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    t = min(max(t, 0.0), 1.0)
    return tuple(round(a + (b - a) * t) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _dark(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b < 150


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _n(x: float) -> str:
    """Compact coordinates (smaller files, stable output for tests)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- confusion matrix


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]], *, max_classes: int = 40) -> Markup:
    """Heatmap of counts; colour = share of the true class's row (diagonal blue = right, off-diagonal red = wrong).

    Off-diagonal shares are amplified x4 so that a 5% confusion is clearly visible next to a 95% diagonal.
    With more than `max_classes` classes, the classes with the most support are shown (the caption says so).
    """
    labels = [str(x) for x in labels]
    n_all = len(labels)
    if n_all == 0 or len(matrix) != n_all or any(len(row) != n_all for row in matrix):
        return Markup("")
    keep = list(range(n_all))
    if n_all > max_classes:
        keep = sorted(sorted(keep, key=lambda i: -sum(matrix[i]))[:max_classes])
    n = len(keep)
    cell = max(14.0, min(44.0, 520.0 / n))
    show_numbers = cell >= 22
    longest = max(len(_clip(labels[i], 14)) for i in keep)
    left = 34 + min(longest, 14) * 7.2
    top = 30.0
    rotate = longest > 2
    bottom = (26 + min(longest, 14) * 5.4) if rotate else 34
    width = left + n * cell + 12
    height = top + n * cell + bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart confusion" role="img" '
        f'aria-label="Confusion matrix" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" '
        f'height="{_n(height)}" {FONT} font-size="11">',
        f'<text x="{_n(left + n * cell / 2)}" y="16" text-anchor="middle" fill="#57606a" font-size="11" '
        f'font-weight="600">predicted →</text>',
        f'<text transform="translate(12 {_n(top + n * cell / 2)}) rotate(-90)" text-anchor="middle" fill="#57606a" '
        f'font-size="11" font-weight="600">true class →</text>',
    ]
    for r, i in enumerate(keep):
        row_total = sum(matrix[i]) or 1
        y = top + r * cell
        out.append(f'<text x="{_n(left - 6)}" y="{_n(y + cell / 2 + 4)}" text-anchor="end" fill="#24292f">'
                   f'<title>{escape(labels[i])}</title>{escape(_clip(labels[i], 14))}</text>')
        for c, j in enumerate(keep):
            count = matrix[i][j]
            share = count / row_total
            if i == j:
                rgb = _mix(BLUE_LO, BLUE_HI, share)
            elif count:
                rgb = _mix(RED_LO, RED_HI, 0.15 + share * 4)
            else:
                rgb = None
            fill = _hex(rgb) if rgb else EMPTY
            x = left + c * cell
            tip = f"true {labels[i]} → predicted {labels[j]}: {count} ({share * 100:.1f}% of {labels[i]})"
            out.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(cell - 1)}" height="{_n(cell - 1)}" rx="2" '
                       f'fill="{fill}"><title>{escape(tip)}</title></rect>')
            if show_numbers and count:
                colour = "#ffffff" if rgb and _dark(rgb) else "#24292f"
                out.append(f'<text x="{_n(x + (cell - 1) / 2)}" y="{_n(y + cell / 2 + 3.5)}" text-anchor="middle" '
                           f'fill="{colour}" font-size="{10 if count < 1000 else 8}">{count}</text>')
    for c, j in enumerate(keep):
        x = left + c * cell + cell / 2
        y = top + n * cell + 12
        label = escape(_clip(labels[j], 14))
        if rotate:
            out.append(f'<text transform="translate({_n(x + 3)} {_n(y - 4)}) rotate(-45)" text-anchor="end" '
                       f'fill="#24292f"><title>{escape(labels[j])}</title>{label}</text>')
        else:
            out.append(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="middle" fill="#24292f">'
                       f'<title>{escape(labels[j])}</title>{label}</text>')
    if n < n_all:
        out.append(f'<text x="{_n(left)}" y="{_n(height - 4)}" fill="#57606a">showing the {n} largest of '
                   f'{n_all} classes</text>')
    out.append("</svg>")
    return Markup("".join(out))


# ---------------------------------------------------------------- trend


@dataclass
class TrendPoint:
    label: str  # short commit
    value: float
    verdict: str
    tooltip: str
    current: bool = False


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def trend(points: Sequence[TrendPoint], *, metric: str, threshold: float | None = None,
          threshold_label: str = "", width: int = 1040, height: int = 240) -> Markup:
    """Line chart of one metric over builds (oldest left), threshold dashed, dots coloured by verdict."""
    pts = [p for p in points if fmt.is_number(p.value)]
    if not pts:
        return Markup("")
    left, right, top, bottom = 58.0, 40.0, 16.0, 46.0
    values = [p.value for p in pts] + ([threshold] if fmt.is_number(threshold) else [])
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, 0.005 if metric in fmt.PROPORTIONS else abs(hi) * 0.05 or 0.01)
    lo, hi = lo - pad, hi + pad
    if metric in fmt.PROPORTIONS:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(i: int) -> float:
        return left + (plot_w / 2 if len(pts) == 1 else plot_w * i / (len(pts) - 1))

    def sy(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo)) if hi > lo else top + plot_h / 2

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart trend" role="img" '
           f'aria-label="{escape(metric)} trend" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'{FONT} font-size="11">']
    for t in _nice_ticks(lo, hi):
        y = sy(t)
        out.append(f'<line x1="{_n(left)}" x2="{_n(width - right)}" y1="{_n(y)}" y2="{_n(y)}" stroke="#eaeef2"/>')
        out.append(f'<text x="{_n(left - 8)}" y="{_n(y + 4)}" text-anchor="end" fill="#57606a">'
                   f'{escape(fmt.value(metric, t))}</text>')
    if fmt.is_number(threshold):
        y = sy(threshold)
        out.append(f'<line x1="{_n(left)}" x2="{_n(width - right)}" y1="{_n(y)}" y2="{_n(y)}" stroke="#cf222e" '
                   f'stroke-width="1.2" stroke-dasharray="5 4"/>')
        out.append(f'<text x="{_n(width - right - 16)}" y="{_n(y - 6)}" text-anchor="end" fill="#cf222e">'
                   f'{escape(threshold_label or "threshold")}</text>')
    if len(pts) > 1:
        path = " ".join(f"{_n(sx(i))},{_n(sy(p.value))}" for i, p in enumerate(pts))
        area = f"{_n(sx(0))},{_n(top + plot_h)} {path} {_n(sx(len(pts) - 1))},{_n(top + plot_h)}"
        out.append(f'<polygon points="{area}" fill="#0969da" fill-opacity="0.07"/>')
        out.append(f'<polyline points="{path}" fill="none" stroke="#0969da" stroke-width="2" '
                   f'stroke-linejoin="round" stroke-linecap="round"/>')
    every = max(1, math.ceil(len(pts) / 12))
    for i, p in enumerate(pts):
        x, y = sx(i), sy(p.value)
        colour = VERDICT_COLOURS.get(p.verdict, "#57606a")
        if p.current:
            out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="8" fill="none" stroke="{colour}" stroke-width="2" '
                       f'stroke-opacity="0.45"/>')
        out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{5 if p.current else 3.8}" fill="{colour}" '
                   f'stroke="#ffffff" stroke-width="1.5"><title>{escape(p.tooltip)}</title></circle>')
        if p.current or i % every == 0 or i == len(pts) - 1:
            weight = ' font-weight="600"' if p.current else ""
            text = "this build" if p.current else _clip(p.label, 9)
            out.append(f'<text x="{_n(x)}" y="{_n(top + plot_h + 16)}" text-anchor="middle" fill="#57606a"'
                       f'{weight}>{escape(text)}</text>')
    out.append(f'<text x="{_n(left)}" y="{_n(height - 8)}" fill="#8c959f">oldest</text>')
    out.append(f'<text x="{_n(width - right)}" y="{_n(height - 8)}" text-anchor="end" fill="#8c959f">newest</text>')
    out.append("</svg>")
    return Markup("".join(out))


# ---------------------------------------------------------------- gate interval bar


def interval_bar(*, metric: str, estimate: float | None, interval: Sequence[float] | None,
                 threshold: float | None, verdict: str, width: int = 220, height: int = 24) -> Markup:
    """The confidence interval as a bar, the estimate as a dot, the threshold as a red tick: PASS at a glance."""
    nums = [v for v in [estimate, threshold, *(interval or [])] if fmt.is_number(v)]
    if not nums:
        return Markup("")
    lo, hi = min(nums), max(nums)
    pad = max((hi - lo) * 0.12, 0.004 if metric in fmt.PROPORTIONS else abs(hi) * 0.02 or 0.01)
    lo, hi = lo - pad, hi + pad

    def sx(v: float) -> float:
        return 6 + (width - 12) * (v - lo) / (hi - lo)

    colour = VERDICT_COLOURS.get(verdict, "#57606a")
    mid = height / 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar" role="img" aria-label="interval" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
           f'<line x1="6" x2="{width - 6}" y1="{_n(mid)}" y2="{_n(mid)}" stroke="#d0d7de"/>']
    if interval and len(interval) == 2 and all(fmt.is_number(v) for v in interval):
        a, b = sx(interval[0]), sx(interval[1])
        out.append(f'<rect x="{_n(a)}" y="{_n(mid - 5)}" width="{_n(max(b - a, 2))}" height="10" rx="5" '
                   f'fill="{colour}" fill-opacity="0.3"/>')
    if fmt.is_number(threshold):
        t = sx(threshold)
        out.append(f'<line x1="{_n(t)}" x2="{_n(t)}" y1="3" y2="{height - 3}" stroke="#1f2328" stroke-width="2"/>')
    if fmt.is_number(estimate):
        out.append(f'<circle cx="{_n(sx(estimate))}" cy="{_n(mid)}" r="5" fill="{colour}" stroke="#fff" '
                   f'stroke-width="1.5"/>')
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(values: Sequence[float]) -> str:
    """Unicode sparkline for Markdown, where inline SVG is stripped by every forge."""
    vals = [v for v in values if fmt.is_number(v)]
    if not vals:
        return ""
    blocks = "▁▂▃▄▅▆▇█"
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        return blocks[3] * len(vals)
    return "".join(blocks[min(int((v - lo) / (hi - lo) * len(blocks)), len(blocks) - 1)] for v in vals)
