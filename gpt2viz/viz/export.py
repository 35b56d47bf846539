"""Figures as people see and keep them: `fitted` gives a figure its own light look and room for
every label (the page draws exactly that figure, so a saved PNG, SVG or HTML file is what the page
showed), the Plotly toolbar's image settings, and a standalone HTML page that embeds plotly.js
(it opens offline, loading nothing from a CDN)."""

from __future__ import annotations

import html
import math
import re

import plotly.graph_objects as go
import plotly.io as pio

IMAGE_FORMATS = ("png", "svg")
FONT_FAMILY = '"Source Sans", "Source Sans Pro", "Helvetica Neue", Arial, sans-serif'  # the app's own first
TEXT_COLOUR = "#31333F"  # Streamlit's light theme
GRID_COLOUR = "#e6eaf1"
TITLE_PAD = 10  # px above the title and left of it
LINE_HEIGHT = 1.3  # a line of Plotly text, in font sizes
DEFAULT_HEIGHT = 450  # Plotly's and Streamlit's height of a figure that sets none
SUP_SCALE = 0.7  # Plotly draws <sup> text at 70% of the line's font size
CHAR_WIDTH = 0.55  # average width of a title character, in font sizes (bold sans-serif, generous)
LEGEND_SHARE = 0.6  # of a figure's width, what a horizontal legend's row fills before it wraps (at most)
ASSUMED_WIDTH = 700  # px: a figure's width when the caller does not know it

# Streamlit's light chart theme, resolved: Streamlit's own template holds placeholder colours
# (#000001…) that only its web page replaces, so a figure that keeps it is dark in a file.
# Only the trace types and layout parts the app draws: every figure carries its template to the
# browser, and plotly_white's defaults for two dozen trace types, maps, polar and 3-D scenes were
# 7.4 of a candidates chart's 8.5 KB, serialised, hashed and sent at every page run.
_WHITE = pio.templates["plotly_white"]
LIGHT = go.layout.Template(
    data={kind: _WHITE.data[kind] for kind in ("bar", "heatmap", "scatter")},
    layout={key: value for key, value in _WHITE.layout.to_plotly_json().items()
            if key not in ("geo", "polar", "scene", "ternary")},
)
LIGHT.layout.update(
    font=dict(family=FONT_FAMILY, color=TEXT_COLOUR, size=12),
    title=dict(x=0, xanchor="left", xref="container", font=dict(size=16, weight="bold")),
    colorway=["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a",
              "#6d3fc0", "#d5dae5"],
    hoverlabel=dict(font_family=FONT_FAMILY),
)
for _axis in (LIGHT.layout.xaxis, LIGHT.layout.yaxis):
    _axis.update(automargin=True, gridcolor=GRID_COLOUR, linecolor=GRID_COLOUR, zerolinecolor=GRID_COLOUR,
                 title_standoff=8)

_TAG = re.compile(r"<[^>]+>")


def plotly_config(name: str, image_format: str = "png") -> dict:
    """Plotly's `config`: the toolbar's camera button saves `gpt2viz-<name>.<format>` at twice
    the screen's resolution, without Plotly's logo."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, not {image_format!r}.")
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": image_format, "filename": f"gpt2viz-{name}", "scale": 2}}


def wrap_title(text: str, size: float, width: float) -> str:
    """`text` (Plotly pseudo-HTML, lines split by <br>) with <br> added between words so that no
    line is wider than `width` px at font `size`; a <sup> line keeps its tags on every piece."""
    lines = []
    for line in text.split("<br>"):
        sup = line.startswith("<sup>") and line.endswith("</sup>")
        inner = line[5:-6] if sup else line
        chars = max(12, int(width / (CHAR_WIDTH * size * (SUP_SCALE if sup else 1))))
        pieces, current = [], ""
        for word in inner.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and len(_TAG.sub("", candidate)) > chars:
                pieces.append(current)
                current = word
            else:
                current = candidate
        pieces.append(current)
        lines += [f"<sup>{p}</sup>" if sup else p for p in pieces]
    return "<br>".join(lines)


def _title_height(text: str, size: float) -> float:
    """Pixels the title's lines take (Plotly spaces lines by the title's font, <sup> ones too)."""
    return LINE_HEIGHT * size * (text.count("<br>") + 1) if text else 0.0


def _font_size(fig: go.Figure, own: float | None, default: float) -> float:
    return own or fig.layout.font.size or default


def _top_legend(fig: go.Figure) -> list[str]:
    """The entries of a horizontal legend drawn above the plot (none when there is no such legend)."""
    legend = fig.layout.legend
    names = [_TAG.sub("", t.name) for t in fig.data if t.showlegend is not False and t.name]
    above = legend.yref == "container" or (legend.y is not None and legend.y >= 1)
    shown = fig.layout.showlegend is True or (fig.layout.showlegend is None and len(names) > 1)
    return names if shown and legend.orientation == "h" and above else []


def _subplot_titles(fig: go.Figure) -> float:
    """Pixels the titles of the top row of subplots take above the plot area."""
    font = _font_size(fig, None, 12)
    tops = [a for a in fig.layout.annotations
            if a.yref == "paper" and a.y is not None and a.y >= 0.999 and a.yanchor in ("bottom", None)]
    return max(LINE_HEIGHT * (a.font.size or font) for a in tops) + 4 if tops else 0.0


def fitted(fig: go.Figure, title_width: float | None = None) -> go.Figure:
    """A copy of `fig` as the app shows and exports it: the `LIGHT` template, every axis sizing
    the margin to its labels and title, and from the top: the title at the left (wrapped to
    `title_width` px when given), a horizontal legend under it (as it wraps in `title_width`
    px), the top row's subplot titles, the plot; the top margin sized to hold them. Applying it
    again changes nothing."""
    # `fig` was validated as it was built, so its copy skips Plotly's validation: with it, this
    # function took 19 ms on a candidates chart, 14 of them validating, on every page run. The
    # copy stays unvalidated: later updates to it (presenter view's) are not checked either.
    out = go.Figure(fig.to_plotly_json(), _validate=False)
    out.update_layout(template=LIGHT)
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    height = out.layout.height or DEFAULT_HEIGHT
    title = out.layout.title
    size = _font_size(out, title.font.size, 16)
    text = title.text or ""
    if text and title_width:
        text = wrap_title(text, size, title_width - 2 * TITLE_PAD)
    if text:
        # The first line's baseline, placed in pixels: Plotly's yanchor="top" drops a multi-line
        # title by a line's cap height less than a one-line title, cutting its first line.
        out.update_layout(title=dict(text=text, x=0, xanchor="left", xref="container", yref="container",
                                     y=1 - (TITLE_PAD + size) / height, yanchor="bottom",
                                     pad=dict(t=0, b=0, l=TITLE_PAD)))
    below = TITLE_PAD + _title_height(text, size)  # px from the top
    if names := _top_legend(out):
        legend_size = out.layout.legend.font.size or _font_size(out, None, 12)
        row = LEGEND_SHARE * (title_width or ASSUMED_WIDTH)
        rows = math.ceil(sum(40 + CHAR_WIDTH * legend_size * len(name) for name in names) / row)
        out.update_layout(legend=dict(xref="container", yref="container", x=0, xanchor="left",
                                      y=1 - (below + 4) / height, yanchor="top"))
        below += 4 + rows * (LINE_HEIGHT * legend_size + 6)
    below += _subplot_titles(out)
    out.update_layout(margin_t=int(max(below + TITLE_PAD, 2 * TITLE_PAD)))
    return out


def standalone_html(fig: go.Figure, name: str) -> str:
    """A whole HTML page with `fig` (`fitted`) and plotly.js inline (no external script), titled
    `name`; the figure fills the window's width at its own height."""
    shown = fitted(fig)
    page = shown.to_html(include_plotlyjs=True, full_html=True, config=plotly_config(name),
                         default_width="100%", default_height=f"{shown.layout.height or DEFAULT_HEIGHT}px")
    return page.replace("<head>", f"<head><title>gpt2viz: {html.escape(name)}</title>", 1)
