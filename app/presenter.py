"""Presenter view, for a projector (1280×720 and up): larger text and figures, fewer controls, the
sidebar folded away.

`app.sidebar.draw_sidebar` calls `presenter_toggle()` on every run (the sidebar switch and, when
on, the presenter section of the app's stylesheet and the script that keeps the sidebar folded);
`app.charts.chart` passes every figure through `present`, which gives presenter view
`gpt2viz.viz.projector.for_projector`'s copy; pages skip the controls a class does not need with
`if not presenter_on(): …`.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from gpt2viz.viz.export import fitted
from gpt2viz.viz.projector import FIGURE_MIN_WIDTH, for_projector

from . import state
from .stylesheet import script, section

BASE_FONT_PX = 21  # the page's root font size in presenter view (Streamlit's own is 16)
SIDE_BY_SIDE = "presenter_side_by_side"  # the key of the container whose columns never wrap
# A figure in the wider of two `side_by_side([2, 3])` columns, under a title near the top of the
# page: the size that keeps it within a 1280×720 screen.
BESIDE_TEXT_HEIGHT, BESIDE_TEXT_WIDTH = 450, 680
PRESENTER_STYLE = "gpt2viz-presenter"  # the id of presenter view's style element, which the script looks for


def presenter_css() -> str:
    """Presenter view's style element: the stylesheet's presenter section."""
    return section("presenter", PRESENTER_STYLE, BASE_FONT_PX=BASE_FONT_PX, FIGURE_MIN_WIDTH=FIGURE_MIN_WIDTH,
                   SIDE_BY_SIDE=SIDE_BY_SIDE)


def presenter_on() -> bool:
    """Whether presenter view is on (the sidebar switch of this session)."""
    return bool(state.get(state.PRESENTER))


def presenter_toggle() -> None:
    """Draw the presenter switch in the sidebar; when on, enlarge the page and fold the sidebar
    (and again whenever another page opens: app/static/fold_sidebar.js). Called once per run,
    before the page draws its content."""
    with st.sidebar:
        state.widget(st.toggle, "Presenter view", key=state.PRESENTER,
                     help="For a projector: larger text and figures, fewer controls.")
    if presenter_on():
        st.set_page_config(initial_sidebar_state="collapsed")
        st.sidebar.html(script("fold_sidebar.js"), unsafe_allow_javascript=True)
        st.markdown(presenter_css(), unsafe_allow_html=True)


def side_by_side(spec: list[float]) -> list[DeltaGenerator]:
    """`st.columns(spec)` that stay side by side in presenter view even with a figure in them (give
    that figure its width: `chart(..., presenter_width=…)`). One such row per page."""
    return st.container(key=SIDE_BY_SIDE).columns(spec, gap="large")


def present(fig: go.Figure, presenter_height: int | None, presenter_width: int, presenter: bool) -> go.Figure:
    """`fig` as a view shows it (and exports it): `for_projector` in presenter view (`presenter_height`
    and `presenter_width` passed on), else `export.fitted` at its own size."""
    if presenter:
        return for_projector(fig, presenter_height, presenter_width)
    return fitted(fig)
