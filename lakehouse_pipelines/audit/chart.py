"""A small SVG bar chart of a column's distribution against its reference, for Dagster's UI.

No plotting library is installed (matplotlib is not a dependency), and SVG is text: a few KiB written by
hand, crisp at any zoom. Dagster 1.13's UI renders `MetadataValue.md` with react-markdown and a
rehype-sanitize schema that adds `data` to the allowed `src` protocols, and its CSP sets no `img-src`, so
a Markdown image with a `data:image/svg+xml;base64,...` URI shows inline in the check's metadata.
"""

from __future__ import annotations

import base64
from html import escape

from lakehouse_pipelines.audit.distribution import DistributionDrift

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 34, 70
REFERENCE_COLOUR, NEW_COLOUR = "#9aa5b1", "#3b6fd8"
MAX_LABEL = 14


def distribution_svg(drift: DistributionDrift) -> str:
    """Grouped bars (reference grey, new blue) of the shares per bin or category, titled with the score."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(drift.labels), 1)
    top = max((*drift.reference_shares, *drift.new_shares, 0.01))
    group = plot_w / n
    bar = group * 0.38
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="10">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="16" font-size="12" font-weight="bold">'
        f"{escape(drift.column)}: {drift.test.upper()} {drift.score:.3f}</text>",
        _legend(WIDTH - RIGHT - 170, 10),
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#555"/>',
    ]
    for tick in (0.0, top / 2, top):
        y = TOP + plot_h - tick / top * plot_h
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#555">{tick:.0%}</text>'
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for i, label in enumerate(drift.labels):
        x = LEFT + i * group + group * 0.12
        for offset, share, colour in (
            (0, drift.reference_shares[i], REFERENCE_COLOUR),
            (bar, drift.new_shares[i], NEW_COLOUR),
        ):
            h = share / top * plot_h
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{share:.1%}</title></rect>'
            )
        lx, ly = LEFT + (i + 0.5) * group, TOP + plot_h + 10
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" transform="rotate(-35 {lx:.1f} {ly})">'
            f"{escape(_short(label))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def markdown_image(svg: str, alt: str) -> str:
    """The SVG as a Markdown image with a base64 data URI (what Dagster's metadata Markdown renders)."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"


def _legend(x: float, y: float) -> str:
    return (
        f'<rect x="{x}" y="{y}" width="10" height="10" fill="{REFERENCE_COLOUR}"/>'
        f'<text x="{x + 14}" y="{y + 9}">reference</text>'
        f'<rect x="{x + 80}" y="{y}" width="10" height="10" fill="{NEW_COLOUR}"/>'
        f'<text x="{x + 94}" y="{y + 9}">this audit</text>'
    )


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
