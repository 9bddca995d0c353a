"""Server-rendered charts as inline SVG: no JavaScript, readable without a chart library."""

from collections.abc import Sequence
from html import escape


def bar_chart_svg(
    *,
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    unit: str = "",
    width: int = 640,
    colors: Sequence[str] | None = None,
) -> str:
    """A horizontal bar chart; each bar is labelled with its value."""
    row, left, right = 26, 170, 90
    height = row * len(labels) + 40
    peak = max((abs(v) for v in values), default=0) or 1.0
    span = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<title>{escape(title)}</title><text x="0" y="16" font-weight="bold" font-size="13">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 30 + i * row
        bar = max(1.0, span * abs(value) / peak)
        color = colors[i] if colors else "#0b6bcb"
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row - 8}" fill="{escape(color)}" rx="2"/>'
        )
        shown = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
        parts.append(f'<text x="{left + bar + 5:.1f}" y="{y + 15}">{shown}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
