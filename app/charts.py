"""Every figure the app shows goes through `chart`: the toolbar saves it as PNG or SVG (the
sidebar's choice) under a name that says what it is, a small button beside it downloads it as an
HTML file that works offline, and presenter view enlarges it."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from gpt2viz.viz.export import IMAGE_FORMATS, plotly_config, standalone_html

from . import state
from .presenter import present


def image_format_picker() -> None:
    """The sidebar's choice of what the toolbar's camera button saves."""
    state.widget(st.radio, "Figures download as", IMAGE_FORMATS, key=state.IMAGE_FORMAT, horizontal=True,
                 format_func=str.upper)


def chart(where: DeltaGenerator, fig: go.Figure, *, key: str, **kwargs: Any) -> Any:
    """`where.plotly_chart(fig, key=key, ...)` with the export settings (and enlarged in presenter
    view), then an HTML download."""
    fig = present(fig)
    config = plotly_config(key, state.get(state.IMAGE_FORMAT))
    event = where.plotly_chart(fig, key=key, config=config, **kwargs)
    where.download_button("⤓ HTML", data=lambda: standalone_html(fig, key), file_name=f"gpt2viz-{key}.html",
                          mime="text/html", key=f"{key}.html", on_click="ignore", type="tertiary",
                          help="This figure as a web page that opens offline")
    return event
