"""Figures as people see and keep them: `fitted` gives a figure its own light look and room for
every label (the page draws exactly that figure, so a saved PNG, SVG or HTML file is what the page
showed), the Plotly toolbar's image settings, and a standalone HTML page that embeds plotly.js
(it opens offline, loading nothing from a CDN)."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from . import narrow

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
SMALLEST_SUBTITLE = 10  # px: a subplot title's font size on a narrow screen, at the least
SMALLEST_TITLE = 12  # px: a title's font size on a narrow screen, at the least
TITLE_SHARE = 0.3  # of a figure's height, what its title may take on a narrow screen (the page's height)

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


def _subplot_titles(fig: go.Figure) -> tuple[tuple[int, str, float, float], ...]:
    """The titles of the top row of subplots, above the plot area: each as its annotation's index,
    text, font size and the share of the plot's width it may take (up to its neighbours' middles)."""
    font = _font_size(fig, None, 12)
    tops = [(i, a) for i, a in enumerate(fig.layout.annotations)
            if a.yref == "paper" and a.y is not None and a.y >= 0.999 and a.yanchor in ("bottom", None)]
    xs = sorted(a.x if a.x is not None else 0.5 for _, a in tops)
    found = []
    for i, a in tops:
        x = a.x if a.x is not None else 0.5
        gaps = [abs(x - other) for other in xs if other != x]
        found.append((i, a.text or "", a.font.size or font, min(gaps, default=1.0)))
    return tuple(found)


def _axis_titles(fig: go.Figure) -> tuple[tuple[str, str, float, float], ...]:
    """The x axes' titles: each as its axis's name, its text, font size and share of the plot's width."""
    found = []
    for name in (n for n in fig.layout.to_plotly_json() if n.startswith("xaxis")):
        axis = fig.layout[name]
        if axis.title.text and axis.visible is not False:
            share = axis.domain[1] - axis.domain[0] if axis.domain is not None else 1.0
            found.append((name, axis.title.text, axis.title.font.size or _font_size(fig, None, 12), share))
    return tuple(found)


@dataclass(frozen=True)
class _Head:
    """What stands above a figure's plot and the texts that run along its width, measured once: the
    title's font size, a horizontal legend's entries above the plot (none: no such legend) and font
    size, the top row's subplot titles and the x axes' titles (`_subplot_titles`, `_axis_titles`),
    and the pixels of the figure's width beside its plot (`narrow.side_px`)."""

    size: float
    legend: tuple[str, ...]
    legend_size: float
    subplot_titles: tuple[tuple[int, str, float, float], ...]
    axis_titles: tuple[tuple[str, str, float, float], ...]
    side: float

    @classmethod
    def of(cls, fig: go.Figure) -> _Head:
        return cls(_font_size(fig, fig.layout.title.font.size, 16), tuple(_top_legend(fig)),
                   fig.layout.legend.font.size or _font_size(fig, None, 12), _subplot_titles(fig),
                   _axis_titles(fig), narrow.side_px(fig))

    def top(self, text: str, width: float | None, height: float, legend_width: float | None = None,
            texts_width: float | None = None) -> dict[str, Any]:
        """`fitted`'s layout from the top of a figure `height` px high, as relayout keys: the title
        `text` at the left (wrapped to `width` px when given), a horizontal legend under it (as it
        wraps in `legend_width` px, else `width`, else ASSUMED_WIDTH), the top row's subplot titles,
        and the top margin that holds them; with `texts_width` (a figure's width, px) the subplot
        and x axis titles as they wrap in their share of its plot."""
        size = self.size
        if text and width:
            text, size = self._title(text, width - 2 * TITLE_PAD, height if texts_width else None)
        # The first line's baseline, placed in pixels: Plotly's yanchor="top" drops a multi-line
        # title by a line's cap height less than a one-line title, cutting its first line.
        top: dict[str, Any] = {}
        if text:
            top.update({"title.text": text, "title.font.size": size,
                        "title.y": round(1 - (TITLE_PAD + size) / height, 4)})  # 0.1 px: fewer bytes
        below = TITLE_PAD + _title_height(text, size)  # px from the top
        if self.legend:
            row = LEGEND_SHARE * (legend_width or width or ASSUMED_WIDTH)
            entries = sum(40 + CHAR_WIDTH * self.legend_size * len(name) for name in self.legend)
            rows = math.ceil(entries / row)
            top["legend.y"] = round(1 - (below + 4) / height, 4)
            below += 4 + rows * (LINE_HEIGHT * self.legend_size + 6)
        plot = texts_width - self.side if texts_width else None
        tallest = 0.0
        for index, title, size, share in self.subplot_titles:
            shown = title
            if plot and title:  # smaller, down to SMALLEST_SUBTITLE, where its longest word is wider
                room = max(40.0, plot * share - 8)
                longest = max(len(word) for word in _TAG.sub(" ", title.replace("<br>", " ")).split() or [""])
                size = min(size, max(SMALLEST_SUBTITLE, math.floor(room / (CHAR_WIDTH * max(1, longest)))))
                shown = wrap_title(title, size, room)
            top[f"annotations[{index}].text"] = shown
            top[f"annotations[{index}].font.size"] = size
            tallest = max(tallest, _title_height(shown, size) or LINE_HEIGHT * size)
        below += tallest + 4 if self.subplot_titles else 0
        for name, title, size, share in self.axis_titles:
            top[f"{name}.title.text"] = wrap_title(title, size, max(60.0, plot * share)) if plot else title
        top["margin.t"] = int(max(below + TITLE_PAD, 2 * TITLE_PAD))
        return top


    def _title(self, text: str, room: float, height: float | None) -> tuple[str, float]:
        """The title `text` wrapped to `room` px and its font size; with `height` (a figure laid out
        for a narrow screen, its height fixed by the page), at most TITLE_SHARE of it high: the font
        smaller, down to SMALLEST_TITLE, and then without its <sup> lines (the page says them too)."""
        size, wrapped = self.size, wrap_title(text, self.size, room)
        if height is None:
            return wrapped, size
        while _title_height(wrapped, size) > TITLE_SHARE * height and size > SMALLEST_TITLE:
            size -= 1
            wrapped = wrap_title(text, size, room)
        main = "<br>".join(line for line in text.split("<br>") if not line.startswith("<sup>"))
        if _title_height(wrapped, size) > TITLE_SHARE * height and main and main != text:
            wrapped = wrap_title(main, size, room)
        return wrapped, size


def _narrow_layouts(fig: go.Figure, head: _Head, text: str, width: float | None, height: float
                    ) -> dict[str, Any]:
    """`narrow.layouts` of a figure `fitted` with the title `text` at `width` (None: its own): at
    each of `narrow.widths()`, the title, subplot titles and x axis titles rewrapped where they are
    longer, the legend where it is narrower than it was laid out for (the plot gives up the height
    the lines they gained take: the page keeps a figure's height), and the x axes' labels thinned to
    what fits."""
    wide = head.top(text, None, height, width)
    axes = narrow.TickAxes.of(fig, head.side)
    at_width = [(px, {**head.top(text, px, height, min(px, width or ASSUMED_WIDTH), px), **axes.updates(px)})
                for px in narrow.widths()]
    keys = list(dict.fromkeys(key for _, update in at_width for key in update))
    wide.update(axes.originals([key for key in keys if key not in wide]))
    return {"wide": wide, "below": narrow.layouts(wide, at_width)}


def fitted(fig: go.Figure, title_width: float | None = None) -> go.Figure:
    """A copy of `fig` as the app shows and exports it: the `LIGHT` template, every axis sizing
    the margin to its labels and title, and from the top: the title at the left (wrapped to
    `title_width` px when given), a horizontal legend under it (as it wraps in `title_width`
    px), the top row's subplot titles, the plot; the top margin sized to hold them. Its
    `layout.meta["narrow"]` holds the same laid out for narrower widths (`narrow`), for the page
    to pick from. Applying it again changes nothing."""
    # `fig` was validated as it was built, so its copy skips Plotly's validation: with it, this
    # function took 19 ms on a candidates chart, 14 of them validating, on every page run. The
    # copy stays unvalidated: later updates to it (presenter view's) are not checked either.
    out = go.Figure(fig.to_plotly_json(), _validate=False)
    out.update_layout(template=LIGHT)
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    height = out.layout.height or DEFAULT_HEIGHT
    text = out.layout.title.text or ""
    head = _Head.of(out)
    top = head.top(text, title_width, height)
    if text:
        out.update_layout(title=dict(text=top["title.text"], x=0, xanchor="left", xref="container",
                                     yref="container", y=top["title.y"], yanchor="bottom",
                                     pad=dict(t=0, b=0, l=TITLE_PAD), font_size=top["title.font.size"]))
    for index, _, size, _ in head.subplot_titles:  # sizes the narrow layouts change, set (as they are)
        out.layout.annotations[index].font.size = size
    if "legend.y" in top:
        out.update_layout(legend=dict(xref="container", yref="container", x=0, xanchor="left",
                                      y=top["legend.y"], yanchor="top"))
    out.update_layout(margin_t=top["margin.t"])
    layouts = _narrow_layouts(out, head, top.get("title.text", ""), title_width, height)
    out.update_layout(meta={"narrow": layouts} if layouts["below"] else None)
    return out


def standalone_html(fig: go.Figure, name: str) -> str:
    """A whole HTML page with `fig` (`fitted`) and plotly.js inline (no external script), titled
    `name`; the figure fills the window's width at its own height."""
    shown = fitted(fig)
    page = shown.to_html(include_plotlyjs=True, full_html=True, config=plotly_config(name),
                         default_width="100%", default_height=f"{shown.layout.height or DEFAULT_HEIGHT}px")
    return page.replace("<head>", f"<head><title>gpt2viz: {html.escape(name)}</title>", 1)
