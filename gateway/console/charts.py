"""Server-rendered SVG bar charts. Pure: series in, escaped SVG markup out.

No script and no inline ``style`` attribute (the console's CSP allows neither): colours are
presentation attributes. Each chart is ``role="img"`` with a text label, each bar segment has
a ``<title>`` (shown on hover, read by screen readers), and the page carries the same numbers
as a table, so nothing is only in the picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from markupsafe import Markup, escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
OTHER = "(other)"
_W, _H = 880, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 44, 36


def top_series(
    series: Mapping[str, Mapping[date, int]], limit: int = len(PALETTE) - 1
) -> dict[str, dict[date, int]]:
    """The ``limit`` largest series by total; the rest summed into ``(other)``."""
    ranked = sorted(series, key=lambda k: (-sum(series[k].values()), k))
    out = {k: dict(series[k]) for k in ranked[:limit]}
    rest: dict[date, int] = {}
    for k in ranked[limit:]:
        for d, n in series[k].items():
            rest[d] = rest.get(d, 0) + n
    if rest:
        out[OTHER] = rest
    return out


def stacked_bars(
    series: Mapping[str, Mapping[date, int]], days: Sequence[date], *, label: str
) -> Markup:
    """A stacked bar per day, one colour per series, with a legend.

    Args:
        series: Label -> day -> count (at most ``len(PALETTE)`` labels; see ``top_series``).
        days: The x axis, oldest first.
        label: The accessible name of the chart.
    """
    labels = list(series)
    totals = [sum(series[k].get(d, 0) for k in labels) for d in days]
    peak = max(totals, default=0) or 1
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(label)}" class="chart">',
        f"<title>{escape(label)}</title>",
    ]
    # Legend along the top.
    x = _LEFT
    for i, name in enumerate(labels):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="18" class="legend">{escape(name)}</text>')
        x += 28 + 7 * len(name)
    # Axes and y ticks (0, half, peak).
    base = _TOP + plot_h
    parts.append(f'<line x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" stroke="#444"/>')
    for value in sorted({0, peak // 2, peak}):
        y = base - plot_h * value / peak
        parts.append(
            f'<line x1="{_LEFT - 4}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    # Bars, bottom-up in legend order.
    every = max(1, len(days) // 10)
    for j, day in enumerate(days):
        x0 = _LEFT + j * slot + (slot - bar) / 2
        y = float(base)
        for i, name in enumerate(labels):
            n = series[name].get(day, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{day.isoformat()} '
                f"{escape(name)}: {n}</title></rect>"
            )
        if j % every == 0:
            parts.append(
                f'<text x="{x0 + bar / 2:.1f}" y="{base + 18}" text-anchor="middle">'
                f"{day.strftime('%m-%d')}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
