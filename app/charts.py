"""Every figure the app shows goes through `chart`: the page draws the figure exactly as `present`
made it (its own light look, not Streamlit's theme, which a saved file would not have), so the
toolbar's PNG or SVG (the sidebar's choice, under a name that says what it is) and the small
"⤓ HTML" button beside it, a page that works offline, both keep what the page showed."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from gpt2viz.viz.export import IMAGE_FORMATS, plotly_config, standalone_html
from gpt2viz.viz.projector import FIGURE_MIN_WIDTH

from . import state
from .presenter import present


def image_format_picker() -> None:
    """The sidebar's choice of what the toolbar's camera button saves."""
    state.widget(st.radio, "Figures download as", IMAGE_FORMATS, key=state.IMAGE_FORMAT, horizontal=True,
                 format_func=str.upper)


def chart(where: DeltaGenerator, fig: go.Figure, *, key: str, presenter_height: int | None = None,
          presenter_width: int = FIGURE_MIN_WIDTH, **kwargs: Any) -> Any:
    """`where.plotly_chart(...)` of `present(fig)` with the export settings, then its HTML
    download; `presenter_height` and `presenter_width` (the width it will get, for its title)
    size the figure in presenter view."""
    shown = present(fig, presenter_height, presenter_width)
    config = plotly_config(key, state.get(state.IMAGE_FORMAT))
    event = where.plotly_chart(shown, key=key, config=config, theme=None, **kwargs)
    where.download_button("⤓ HTML", data=lambda: standalone_html(shown, key), file_name=f"gpt2viz-{key}.html",
                          mime="text/html", key=f"{key}.html", on_click="ignore", type="tertiary",
                          help="This figure as a web page that opens offline")
    return event
