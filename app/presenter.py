"""Presenter view, for a projector (1280×720 and up): larger text and figures, fewer controls, the
sidebar folded away.

`app.sidebar.draw_sidebar` calls `presenter_toggle()` on every run (the sidebar switch and,
when on, the CSS); `app.charts.chart` passes every figure through `present`; pages skip the
controls a class does not need with `if not presenter_on(): …`.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from gpt2viz.viz.export import CHAR_WIDTH, fitted

from . import state

BASE_FONT_PX = 21  # the page's root font size in presenter view (Streamlit's own is 16)
FIGURE_FONT = 20  # Plotly text in presenter view (Plotly's own is 12)
TICK_FONT = FIGURE_FONT - 2
TITLE_FONT = 26
SUBTITLE_FONT = 22  # subplot titles and other annotations
MIN_HEIGHT, MAX_HEIGHT = 480, 660  # a figure fills most of a 720-pixel screen, never more
HEIGHT_SCALE = 1.35
# Columns holding a figure wrap below this width, so a figure is at least this wide (or the whole
# page when that is narrower), and titles are wrapped to it; except in `side_by_side` columns.
FIGURE_MIN_WIDTH = 900
SIDE_BY_SIDE = "presenter_side_by_side"  # the key of the container whose columns never wrap
# A figure in the wider of two `side_by_side([2, 3])` columns, under a title near the top of the
# page: the size that keeps it within a 1280×720 screen.
BESIDE_TEXT_HEIGHT, BESIDE_TEXT_WIDTH = 450, 680
SIDE_MARGINS = 320  # px of a figure's width that y labels, axis title and colour bar may take
SLANTED_SPACING = 1.6  # px between slanted tick labels, in font sizes

# Streamlit sizes text in rem, so the root font size scales the whole page. Plotly's toolbar,
# download buttons and the app's top-right menu are hidden: a class does not need them. The
# button that unfolds the sidebar (top left) stays.
CSS = f"""<style id="gpt2viz-presenter">
html {{ font-size: {BASE_FONT_PX}px !important; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100%; padding: 3rem 1.5rem 3rem 1.5rem; }}
.stMarkdown p, .stMarkdown li {{ line-height: 1.5; }}
[data-testid="stMetricValue"] {{ font-size: 1.9rem; }}
[data-testid="stMetricValue"] > div {{ white-space: normal; overflow: visible; }}
.modebar-container, [data-testid="stDownloadButton"], [data-testid="stToolbarActions"],
[data-testid="stMainMenu"], [data-testid="stDecoration"] {{ display: none !important; }}
[data-testid="stHorizontalBlock"]:has([data-testid="stPlotlyChart"]) {{ flex-wrap: wrap; }}
[data-testid="stColumn"]:has([data-testid="stPlotlyChart"]) {{
  min-width: min(100%, {FIGURE_MIN_WIDTH}px) !important; }}
.st-key-{SIDE_BY_SIDE} [data-testid="stColumn"]:has([data-testid="stPlotlyChart"]) {{
  min-width: 0 !important; }}
</style>"""


# Streamlit folds the sidebar when presenter view starts (`set_page_config`), but leaves it open
# once a person opened it to change pages. This fixed script (no user text in it) folds it again
# whenever the page's address changes while presenter view is on. Streamlit runs the script once,
# when first drawn; it then watches the address for the rest of the browser session.
FOLD_SIDEBAR = """<script>
if (!window.gpt2vizFold) {
  window.gpt2vizFold = true;
  let last = location.pathname, tries = 0;
  setInterval(() => {
    if (location.pathname !== last) [last, tries] = [location.pathname, 20];  // for 5 s
    if (tries <= 0) return;
    tries -= 1;
    if (!document.getElementById("gpt2viz-presenter")) return;  // not yet drawn, or switched off
    tries = 0;
    if (document.querySelector('[data-testid="stSidebar"][data-collapsed="false"]'))
      document.querySelector('[data-testid="stSidebarCollapseButton"] button')?.click();
  }, 250);
}
</script>"""


def presenter_on() -> bool:
    """Whether presenter view is on (the sidebar switch of this session)."""
    return bool(state.get(state.PRESENTER))


def presenter_toggle() -> None:
    """Draw the presenter switch in the sidebar; when on, enlarge the page and fold the sidebar
    (and again whenever another page opens: `FOLD_SIDEBAR`). Called once per page, before the
    page draws its content."""
    with st.sidebar:
        state.widget(st.toggle, "Presenter view", key=state.PRESENTER,
                     help="For a projector: larger text and figures, fewer controls.")
    if presenter_on():
        st.set_page_config(initial_sidebar_state="collapsed")
        st.sidebar.html(FOLD_SIDEBAR, unsafe_allow_javascript=True)
        st.markdown(CSS, unsafe_allow_html=True)


def side_by_side(spec: list[float]) -> list[DeltaGenerator]:
    """`st.columns(spec)` that stay side by side in presenter view even with a figure in them (give
    that figure its width: `chart(..., presenter_width=…)`). One such row per page."""
    return st.container(key=SIDE_BY_SIDE).columns(spec, gap="large")


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
        axis.nticks = max(4, int(length * share / (SLANTED_SPACING * TICK_FONT)))


def enlarged(fig: go.Figure, height: int | None = None, width: int = FIGURE_MIN_WIDTH) -> go.Figure:
    """A copy of `fig` with projector-sized text and height (`height` when given), its category
    labels thinned to what fits at that size in a figure at least `width` px wide (`fig` is left
    as it was)."""
    big = go.Figure(fig)
    if height is None:
        height = int(min(MAX_HEIGHT, max(MIN_HEIGHT, (big.layout.height or 450) * HEIGHT_SCALE)))
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

    gaps = [(TICK_FONT * 1.6 if labelled(upper) else 0) + (SUBTITLE_FONT * 1.4 if round(lower[1], 6) in titled
                                                              else 0) + 12
            for upper, lower in zip(tops, tops[1:], strict=False)]
    shares = [gap / max(plot_px, 1.0) for gap in gaps]
    shares = [share * min(1.0, 0.5 / sum(shares)) for share in shares]  # gaps take half the height at most
    heights = [d[1] - d[0] for d in tops]
    scale = (1 - sum(shares)) / sum(heights)
    top = 1.0
    for domain, height, share in zip(tops, heights, [*shares, 0.0], strict=True):
        new = (max(0.0, top - height * scale), top)
        for name in rows[domain]:
            layout[name].domain = new
            room = height * scale * plot_px
            if layout[name].tickmode in (None, "auto") and room < 300:
                layout[name].nticks = max(2, int(room / (2 * TICK_FONT)))
        for note in layout.annotations:
            if note.yref == "paper" and note.y is not None and abs(note.y - domain[1]) < 1e-6:
                note.y = new[1]
        top = new[0] - share


def for_projector(fig: go.Figure, height: int | None = None, width: int = FIGURE_MIN_WIDTH) -> go.Figure:
    """A copy of `fig` for presenter view: enlarged, `export.fitted` with its title wrapped to
    `width` px (the least the figure gets), its stacked subplots spaced for the larger text."""
    big = fitted(enlarged(fig, height, width), title_width=width)
    _respace_rows(big)
    return big


def present(fig: go.Figure, presenter_height: int | None = None,
            presenter_width: int = FIGURE_MIN_WIDTH) -> go.Figure:
    """`fig` as the current view shows it (and exports it): `for_projector` in presenter view
    (`presenter_height` and `presenter_width` passed on), else `export.fitted` at its own size."""
    if presenter_on():
        return for_projector(fig, presenter_height, presenter_width)
    return fitted(fig)
