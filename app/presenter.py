"""Presenter view, for a projector: larger text and figures, fewer controls, one figure per screen.

`app.sidebar.current_model()` calls `presenter_toggle()` on every page (the sidebar switch
and, when on, the CSS); `app.charts.chart` passes every figure through `present`; pages skip the
controls a class does not need with `if not presenter_on(): …`.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from . import state

BASE_FONT_PX = 21  # the page's root font size in presenter view (Streamlit's own is 16)
FIGURE_FONT = 20  # Plotly text in presenter view (Plotly's own is 12)
TITLE_FONT = 26
SUBTITLE_FONT = 22  # subplot titles and other annotations
MIN_HEIGHT, MAX_HEIGHT = 480, 720  # a figure fills most of a projected screen, never more
HEIGHT_SCALE = 1.35

# Streamlit sizes text in rem, so the root font size scales the whole page. Plotly's toolbar,
# download buttons and the app's top-right menu are hidden: a class does not need them.
CSS = f"""<style id="gpt2viz-presenter">
html {{ font-size: {BASE_FONT_PX}px !important; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100%; padding-top: 2.5rem; }}
.stMarkdown p, .stMarkdown li {{ line-height: 1.5; }}
[data-testid="stMetricValue"] {{ font-size: 1.9rem; }}
[data-testid="stMetricValue"] > div {{ white-space: normal; overflow: visible; }}
.modebar-container, [data-testid="stDownloadButton"], [data-testid="stToolbar"],
[data-testid="stDecoration"] {{ display: none !important; }}
</style>"""


def presenter_on() -> bool:
    """Whether presenter view is on (the sidebar switch of this session)."""
    return bool(state.get(state.PRESENTER))


def presenter_toggle() -> None:
    """Draw the presenter switch in the sidebar; when on, enlarge the page. Called once per page,
    before the page draws its content."""
    with st.sidebar:
        state.widget(st.toggle, "Presenter view", key=state.PRESENTER,
                     help="For a projector: larger text and figures, fewer controls.")
    if presenter_on():
        st.markdown(CSS, unsafe_allow_html=True)


def enlarged(fig: go.Figure) -> go.Figure:
    """A copy of `fig` with projector-sized text and height (`fig` is left as it was)."""
    big = go.Figure(fig)
    height = big.layout.height or 450
    top = big.layout.margin.t if big.layout.margin.t is not None else 80
    big.update_layout(
        font=dict(size=FIGURE_FONT),
        title_font=dict(size=TITLE_FONT),
        legend_font=dict(size=FIGURE_FONT),
        hoverlabel=dict(font_size=FIGURE_FONT),
        height=int(min(MAX_HEIGHT, max(MIN_HEIGHT, height * HEIGHT_SCALE))),
        margin_t=top + TITLE_FONT,  # room for the larger title above subplot titles and legends
    )
    # Streamlit's theme sizes axis text itself unless the figure says so: say so on every axis.
    axis_fonts = dict(tickfont_size=FIGURE_FONT - 2, title_font_size=FIGURE_FONT)
    big.update_xaxes(**axis_fonts)
    big.update_yaxes(**axis_fonts)
    big.update_annotations(font_size=SUBTITLE_FONT)
    big.for_each_trace(_enlarge_trace)
    return big


def _enlarge_trace(trace) -> None:
    """Text in bars and cells (unless it has its own size) and colour-bar ticks, enlarged."""
    if hasattr(trace, "textfont") and trace.textfont.size is None:
        trace.textfont.size = FIGURE_FONT - 2
    if hasattr(trace, "colorbar"):
        trace.colorbar.tickfont.size = FIGURE_FONT - 2


def present(fig: go.Figure) -> go.Figure:
    """`fig` as the current view wants it: enlarged (a copy) in presenter view, else unchanged."""
    return enlarged(fig) if presenter_on() else fig
