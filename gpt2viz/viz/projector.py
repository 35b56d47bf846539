"""Figures for a projector (presenter view, 1280×720 and up): projector-sized text and height,
category labels thinned to what fits the larger font, titles wrapped to the figure's width, and
stacked subplots spaced for the larger text. Pure: a figure in, a new figure out (the app's
presenter view draws `for_projector`'s copies; tests check the arithmetic on its own)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from .export import CHAR_WIDTH, fitted

FIGURE_FONT = 20  # Plotly text in presenter view (Plotly's own is 12)
TICK_FONT = FIGURE_FONT - 2
TITLE_FONT = 26
SUBTITLE_FONT = 22  # subplot titles and other annotations
MIN_HEIGHT, MAX_HEIGHT = 480, 660  # a figure fills most of a 720-pixel screen, never more
HEIGHT_SCALE = 1.35
# A figure is at least this wide in presenter view (or the whole page when that is narrower), and
# titles are wrapped to it; except in side-by-side columns (app.presenter.side_by_side).
FIGURE_MIN_WIDTH = 900
SIDE_MARGINS = 320  # px of a figure's width that y labels, axis title and colour bar may take
SLANTED_SPACING = 1.6  # px between slanted tick labels, in font sizes
GAPS_AT_MOST = 0.5  # of the plot's height, the gaps between stacked rows may take


def projector_height(height: float | None) -> int:
    """A figure's height in presenter view: its own (Plotly's 450 when unset) × HEIGHT_SCALE,
    within MIN_HEIGHT..MAX_HEIGHT."""
    return int(min(MAX_HEIGHT, max(MIN_HEIGHT, (height or 450) * HEIGHT_SCALE)))


def slanted_ticks(length_px: float, share: float = 1.0) -> int:
    """How many slanted tick labels fit `share` of an axis `length_px` long (at least 4)."""
    return max(4, int(length_px * share / (SLANTED_SPACING * TICK_FONT)))


def row_ticks(room_px: float) -> int | None:
    """How many y ticks a stacked row `room_px` high holds (None: as many as Plotly likes)."""
    return max(2, int(room_px / (2 * TICK_FONT))) if room_px < 300 else None


def row_gap_px(upper_labelled: bool, lower_titled: bool) -> float:
    """The gap between two stacked rows: room for the upper row's tick labels and the lower row's
    title, plus 12 px."""
    return (TICK_FONT * 1.6 if upper_labelled else 0) + (SUBTITLE_FONT * 1.4 if lower_titled else 0) + 12


def respaced_rows(domains: Sequence[tuple[float, float]], gaps_px: Sequence[float],
                  plot_px: float) -> list[tuple[float, float]]:
    """New y domains for rows stacked top to bottom (`domains`, each (bottom, top) in paper
    units): the gaps between them `gaps_px` wide (together at most GAPS_AT_MOST of the plot's
    `plot_px`), the rows shrunk in proportion to their heights, the top row still ending at 1."""
    shares = [gap / max(plot_px, 1.0) for gap in gaps_px]
    shares = [share * min(1.0, GAPS_AT_MOST / sum(shares)) for share in shares] if shares else []
    heights = [top - bottom for bottom, top in domains]
    scale = (1 - sum(shares)) / sum(heights)
    placed, top = [], 1.0
    for height, share in zip(heights, [*shares, 0.0], strict=True):
        placed.append((max(0.0, top - height * scale), top))
        top = placed[-1][0] - share
    return placed


def _thinned_to_fit(axis, length: float | None = None) -> None:
    """Fewer tick labels where the enlarged font would crowd them. A category axis labelled at
    every k-th category for the normal view gets k chosen anew: by Plotly from the axis's length
    (y), or to fit `length` px (the figure's plot width) of slanted labels (x: Plotly spaces them
    as if upright), as does any slanted x axis."""
    values = axis.tickvals
    thinned = axis.tickmode == "array" and axis.ticktext is None and values is not None and all(
        isinstance(v, str) for v in values)
    slanted = isinstance(axis.tickangle, int | float) and axis.tickangle % 180 != 0
    if thinned:
        axis.update(tickmode="auto", tickvals=None, nticks=None)
    if length is not None and (thinned or (slanted and axis.tickmode in (None, "auto"))):
        share = axis.domain[1] - axis.domain[0] if axis.domain is not None else 1.0
        axis.nticks = slanted_ticks(length, share)


def enlarged(fig: go.Figure, height: int | None = None, width: int = FIGURE_MIN_WIDTH) -> go.Figure:
    """A copy of `fig` with projector-sized text and height (`height` when given), its category
    labels thinned to what fits at that size in a figure at least `width` px wide (`fig` is left
    as it was)."""
    big = go.Figure(fig)
    if height is None:
        height = projector_height(big.layout.height)
    big.update_layout(
        font=dict(size=FIGURE_FONT),
        title_font=dict(size=TITLE_FONT),
        legend_font=dict(size=FIGURE_FONT),
        hoverlabel=dict(font_size=FIGURE_FONT),
        height=height,
    )
    axis_fonts = dict(tickfont_size=TICK_FONT, title_font_size=FIGURE_FONT)
    big.update_xaxes(**axis_fonts)
    big.update_yaxes(**axis_fonts)
    big.for_each_xaxis(lambda axis: _thinned_to_fit(axis, width - SIDE_MARGINS))
    big.for_each_yaxis(_thinned_to_fit)
    big.update_annotations(font_size=SUBTITLE_FONT)
    big.for_each_trace(_enlarge_trace)
    return big


def _enlarge_trace(trace) -> None:
    """Text in bars and cells and colour-bar ticks, enlarged (text with its own size, set to fit
    small cells, by as much as the figure's font, at most to the ticks' size)."""
    if hasattr(trace, "textfont"):
        own = trace.textfont.size
        if own is None:
            trace.textfont.size = TICK_FONT
        elif isinstance(own, int | float):
            trace.textfont.size = min(TICK_FONT, round(own * FIGURE_FONT / 12))
    if hasattr(trace, "colorbar"):
        trace.colorbar.tickfont.size = TICK_FONT
        trace.colorbar.title.font.size = FIGURE_FONT


def _bottom_margin(fig: go.Figure) -> float:
    """Pixels the bottom axis will take at most: its factory margin, labels (slanted: their length
    counts) and title, as Plotly's automargin will make room for them."""
    labels = [v for t in fig.data if getattr(t, "x", None) is not None for v in t.x if isinstance(v, str)]
    longest = min(24, max((len(v) for v in labels), default=3))
    angle = abs(fig.layout.xaxis.tickangle or 0) if isinstance(fig.layout.xaxis.tickangle, int | float) else 0
    slant = math.sin(math.radians(angle)) * CHAR_WIDTH * longest if angle else 0
    return (fig.layout.margin.b or 0) + TICK_FONT * (1.4 + slant) + 1.5 * FIGURE_FONT


def _respace_rows(fig: go.Figure) -> None:
    """Subplots stacked in rows: the gaps between them widened to hold the upper row's enlarged
    tick labels and the lower row's title, the rows shrunk in proportion, and each row's y axis
    given no more ticks than its height holds."""
    layout = fig.layout
    names = [name for name in layout.to_plotly_json() if name.startswith("yaxis")]
    rows: dict[tuple[float, float], list[str]] = {}
    for name in names:
        axis = layout[name]
        if axis.domain is not None and axis.overlaying is None:
            rows.setdefault(tuple(axis.domain), []).append(name)
    tops = sorted(rows, key=lambda d: -d[1])
    if len(tops) < 2 or any(lower[1] > upper[0] + 1e-6 for upper, lower in zip(tops, tops[1:], strict=False)):
        return
    plot_px = (layout.height or MIN_HEIGHT) - (layout.margin.t or 0) - _bottom_margin(fig)
    titled = {round(a.y, 6) for a in layout.annotations
              if a.yref == "paper" and a.y is not None and a.yanchor == "bottom"}

    def labelled(domain: tuple[float, float]) -> bool:
        ids = {"y" + name[5:] for name in rows[domain]}
        return any(layout[x].anchor in ids and layout[x].showticklabels is not False and layout[x].visible
                   is not False for x in layout.to_plotly_json() if x.startswith("xaxis"))

    gaps = [row_gap_px(labelled(upper), round(lower[1], 6) in titled)
            for upper, lower in zip(tops, tops[1:], strict=False)]
    for domain, new in zip(tops, respaced_rows(tops, gaps, plot_px), strict=True):
        for name in rows[domain]:
            layout[name].domain = new
            ticks = row_ticks((new[1] - new[0]) * plot_px)
            if layout[name].tickmode in (None, "auto") and ticks is not None:
                layout[name].nticks = ticks
        for note in layout.annotations:
            if note.yref == "paper" and note.y is not None and abs(note.y - domain[1]) < 1e-6:
                note.y = new[1]


def for_projector(fig: go.Figure, height: int | None = None, width: int = FIGURE_MIN_WIDTH) -> go.Figure:
    """A copy of `fig` for presenter view: enlarged, `export.fitted` with its title wrapped to
    `width` px (the least the figure gets), its stacked subplots spaced for the larger text (and
    without `fitted`'s layouts for narrow screens: presenter view is for 1280 px and up)."""
    big = fitted(enlarged(fig, height, width), title_width=width)
    _respace_rows(big)
    big.update_layout(meta=None)  # laid out for a projector's width: no layouts for narrow screens
    return big
