"""Inline SVG charts for the HTML report: one horizontal stacked bar per environment.

No script and no external resource: each chart is a plain ``<svg>`` element with a
``<title>`` per segment (the tooltip) and the counts written beside the bar.
"""

from __future__ import annotations

import html

BAR_W = 320      # width of a full bar
LABEL_W = 150    # room for the environment's name
ROW_H = 18
TEXT_W = 330     # room for the counts after the bar


def _esc(text) -> str:
    return html.escape(str(text))


def stacked_bars(title: str, rows: list[tuple[str, dict[str, int]]], order: tuple[str, ...],
                 colours: dict[str, str], note=None) -> str:
    """``rows``: (label, {category: count}); ``note(counts) -> str`` writes the text after
    each bar (default: the non-zero counts)."""
    height = ROW_H * len(rows) + 22
    width = LABEL_W + BAR_W + TEXT_W
    out = [f'<svg class="chart" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
           f"<title>{_esc(title)}</title>",
           f'<text x="0" y="12" class="ct">{_esc(title)}</text>']
    for i, (label, counts) in enumerate(rows):
        y = 20 + i * ROW_H
        total = sum(counts.get(k, 0) for k in order) or 1
        short = label if len(label) <= 22 else label[:21] + "…"
        out.append(f'<text x="0" y="{y + 12}" class="cl">{_esc(short)}</text>')
        x = float(LABEL_W)
        for k in order:
            n = counts.get(k, 0)
            if not n:
                continue
            w = BAR_W * n / total
            out.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{ROW_H - 5}" '
                       f'fill="{colours[k]}"><title>{_esc(label)}: {n} {_esc(k)}</title></rect>')
            x += w
        text = note(counts) if note else " ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
        out.append(f'<text x="{LABEL_W + BAR_W + 6}" y="{y + 12}" class="cn">{_esc(text)}</text>')
    out.append("</svg>")
    return "".join(out)
