"""Layer and head pickers shared by the pages, and the head-grid click that sets them."""

from __future__ import annotations

import streamlit as st

from gpt2viz import GPT2Config
from gpt2viz.viz.attention import selected_head

from . import state


def pick_layer(config: GPT2Config, where: st.delta_generator.DeltaGenerator | None = None) -> int:
    layers = list(range(config.n_layer))
    state.keep_within(state.LAYER, layers, 0)
    return state.widget((where or st).selectbox, "Layer", layers, key=state.LAYER)


def pick_head(config: GPT2Config, where: st.delta_generator.DeltaGenerator | None = None) -> int:
    heads = list(range(config.n_head))
    state.keep_within(state.HEAD, heads, 0)
    return state.widget((where or st).selectbox, "Head", heads, key=state.HEAD)


def on_grid_click(chart_key: str = state.HEAD_GRID) -> None:
    """Callback of a clickable [layer × head] chart (the head grid, the attribution heatmap): the
    clicked cell becomes the selected layer and head."""
    event = st.session_state.get(chart_key)
    picked = selected_head(event.selection.points) if event else None
    if picked is not None:
        state.put(state.LAYER, picked[0])
        state.put(state.HEAD, picked[1])
