"""Inline SVG charts for the HTML report (private): the scaling timeline and duration sparklines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

PODS_COLOR = "#1f6feb"
BACKLOG_COLOR = "#d9480f"


def _ticks(maximum: float, count: int = 5, integer: bool = False) -> list[float]:
    """Ticks from 0 to the first multiple of a 1/2/2.5/5 step at or above ``maximum``."""
    step = _nice_step(maximum / count)
    if integer:
        step = max(1.0, math.ceil(step))
    top = math.ceil(maximum / step - 1e-9) * step if maximum > 0 else step
    return [i * step for i in range(round(top / step) + 1)]


def _nice_step(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        candidate = factor * 10.0**exponent
        if candidate >= value - 1e-12:
            return candidate
    return 10.0 ** (exponent + 1)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Split a series at missing observations so a failed read shows as a gap, not a zero."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for t, value in points:
        if value is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((t, value))
    if current:
        segments.append(current)
    return segments


def timeline_chart(name: str, points: list[dict[str, Any]], *, width: int = 760, height: int = 300) -> str:
    """Pods (step line, left axis) and backlog (line, right axis) over time, as an inline ``<svg>``."""
    left, right, top, bottom = 56, 72, 40, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [float(p["t"]) for p in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    if t1 <= t0:
        t1 = t0 + 1.0
    pods: list[tuple[float, float | None]] = [(float(p["t"]), _value(p.get("pods"))) for p in points]
    backlog: list[tuple[float, float | None]] = [(float(p["t"]), _value(p.get("backlog"))) for p in points]
    pods_max = max([v for _, v in pods if v is not None], default=0.0)
    backlog_max = max([v for _, v in backlog if v is not None], default=0.0)
    pods_ticks = _ticks(max(1.0, math.ceil(pods_max)), 5, integer=True)
    backlog_ticks = _ticks(backlog_max if backlog_max > 0 else 1.0)
    pods_top, backlog_top = pods_ticks[-1] or 1.0, backlog_ticks[-1] or 1.0
    x_ticks = [t0 + t for t in _ticks(t1 - t0, 6)]

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(value: float, top_value: float) -> float:
        return top + plot_h - value / top_value * plot_h

    label = f"Scaling timeline {name}: pods and backlog over {_num(t1 - t0)} seconds"
    parts = [
        f'<svg class="timeline-chart" data-timeline="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#c9d1d9"/>',
    ]
    for tick in pods_ticks:
        ty = y(tick, pods_top)
        parts.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" stroke="#eef1f4"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="{PODS_COLOR}">{_num(tick)}</text>')
    backlog_observed = any(v is not None for _, v in backlog)
    for tick in backlog_ticks if backlog_observed else []:
        ty = y(tick, backlog_top)
        parts.append(f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="{BACKLOG_COLOR}">{_num(tick)}</text>')
    for tick in x_ticks:
        if tick > t1 + 1e-9:
            continue
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top + plot_h}" x2="{tx:.1f}" y2="{top + plot_h + 4}" stroke="#57606a"/>'
        )
        parts.append(f'<text x="{tx:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{_num(tick - t0)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">seconds since start</text>')
    parts.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="{PODS_COLOR}" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">pods</text>'
    )
    parts.append(
        f'<text x="{width - 10}" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="{BACKLOG_COLOR}" '
        f'transform="rotate(90 {width - 10} {top + plot_h / 2:.1f})">backlog</text>'
    )
    for segment in _segments(pods):
        # Pod counts change in steps: hold each value until the next observation.
        d = f"M{x(segment[0][0]):.1f},{y(segment[0][1], pods_top):.1f}"
        for t, value in segment[1:]:
            d += f" H{x(t):.1f} V{y(value, pods_top):.1f}"
        parts.append(f'<path class="series-pods" d="{d}" fill="none" stroke="{PODS_COLOR}" stroke-width="2.5"/>')
    for segment in _segments(backlog):
        coords = " ".join(f"{x(t):.1f},{y(v, backlog_top):.1f}" for t, v in segment)
        parts.append(
            f'<polyline class="series-backlog" points="{coords}" fill="none" stroke="{BACKLOG_COLOR}" '
            'stroke-width="2" stroke-dasharray="6 3"/>'
        )
        parts += [
            f'<circle cx="{x(t):.1f}" cy="{y(v, backlog_top):.1f}" r="2.5" fill="{BACKLOG_COLOR}"/>' for t, v in segment
        ]
    gaps = any(v is None for _, v in pods) or any(v is None for _, v in backlog)
    legend_y = 18
    parts += [
        f'<rect x="{left}" y="{legend_y - 9}" width="18" height="4" fill="{PODS_COLOR}"/>',
        f'<text x="{left + 24}" y="{legend_y - 3}">pods (left axis)</text>',
        f'<rect x="{left + 150}" y="{legend_y - 9}" width="18" height="4" fill="{BACKLOG_COLOR}"/>',
        f'<text x="{left + 174}" y="{legend_y - 3}">backlog (right axis)</text>',
    ]
    if points and not backlog_observed:
        parts.append(f'<text x="{left + 330}" y="{legend_y - 3}" fill="#57606a">backlog: never observed</text>')
    elif gaps:
        parts.append(f'<text x="{left + 330}" y="{legend_y - 3}" fill="#57606a">gaps: no observation</text>')
    if not points:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle">'
            "no points recorded</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24) -> str:
    """A tiny duration trend; the last point (this run) is marked."""
    if len(values) < 2:
        return ""
    high = max(values) or 1.0
    step = (width - 6) / (len(values) - 1)
    coords = [(3 + i * step, height - 3 - v / high * (height - 6)) for i, v in enumerate(values)]
    path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    last_x, last_y = coords[-1]
    label = "durations: " + ", ".join(f"{v:.1f}s" for v in values)
    return (
        f'<svg class="sparkline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}'
        f'</title><polyline points="{path}" fill="none" stroke="#57606a" stroke-width="1.5"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5" fill="{PODS_COLOR}"/></svg>'
    )


def _value(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
