"""The selections the pages share: layer, head (and the head-grid click that sets them), the
position a page explains, and the Q·K·V page's query token. (The generation step's picker is the
session's: app.session.step_picker.)"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from gpt2viz import GPT2Config, Step
from gpt2viz.viz.attention import selected_head

from . import state
from .models import CurrentModel
from .session import SessionGeneration, analysed_ids_or_stop, current, selected_step, step_picker


def pick_layer(config: GPT2Config, where: DeltaGenerator | None = None) -> int:
    layers = list(range(config.n_layer))
    state.fit_choice(state.LAYER, layers, 0)
    return state.widget((where or st).selectbox, "Layer", layers, key=state.LAYER)


def pick_head(config: GPT2Config, where: DeltaGenerator | None = None) -> int:
    heads = list(range(config.n_head))
    state.fit_choice(state.HEAD, heads, 0)
    return state.widget((where or st).selectbox, "Head", heads, key=state.HEAD)


def on_grid_click(chart_key: str = state.HEAD_GRID) -> None:
    """Callback of a clickable [layer × head] chart (the head grid, the attribution heatmap): the
    clicked cell becomes the selected layer and head."""
    event = st.session_state.get(chart_key)
    picked = selected_head(event.selection.points) if event else None
    if picked is not None:
        select_head(*picked)


@dataclass(frozen=True)
class Explained:
    """The position a page explains: the selected generation step's, else the prompt's last."""

    ids: list[int]  # the whole sequence (prompt + generated, or the prompt)
    position: int  # the position whose output predicts the next token
    kept: SessionGeneration | None
    step: Step | None  # the selected step, None without a generation


def explained_position(loaded: CurrentModel) -> Explained:
    """The shared step selector's choice, or the prompt's last token when nothing was generated
    (a prompt problem is shown and stops the page)."""
    kept = current(loaded)
    if kept is not None:
        step = step_picker(kept)
        return Explained(kept.generation.ids, step.query_position, kept, step)
    ids = analysed_ids_or_stop(loaded)
    return Explained(ids, len(ids) - 1, None, None)


def pick_query(kept: SessionGeneration | None, labels: list[str], where: DeltaGenerator) -> int:
    """The Q·K·V page's query token: the selected generation step's query (the token whose output
    predicted it) until another is chosen, and again whenever another step or generation is
    selected."""
    positions = list(range(len(labels)))
    follows = positions[-1]
    if kept is not None:
        index = selected_step(kept)
        follows = kept.generation.steps[index].query_position
        if not state.follows(state.QUERY_STEP, kept.serial, index):
            state.follow(state.QUERY_STEP, kept.serial, index)
            state.put(state.QUERY, follows)  # a choice made for another step no longer holds
    state.fit_choice(state.QUERY, positions, follows)
    return state.widget(where.selectbox, "Query token", positions, key=state.QUERY,
                        format_func=labels.__getitem__,
                        help="Selecting a generation step sets this to the token whose output predicted it.")


def point_query_at(loaded: CurrentModel, position: int) -> None:
    """Make `position` the Q·K·V page's query (a lesson card's "see it"), until another generation
    step is selected."""
    kept = current(loaded)
    if kept is not None:
        state.follow(state.QUERY_STEP, kept.serial, selected_step(kept))
    state.choose(state.QUERY, position)


def select_head(layer: int, head: int | None = None) -> None:
    """Make `layer` (and `head`) the selection: a click on a head grid, a lesson card's "see it"."""
    state.put(state.LAYER, layer)
    if head is not None:
        state.put(state.HEAD, head)
