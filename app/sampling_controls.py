"""The widgets that set the sampling settings (app.settings holds the settings and their ranges):
the Generate page's popover, and the temperature, top-k and top-p row the Inside-a-step page's
sampling chain reuses."""

from __future__ import annotations

import streamlit as st

from . import state
from .settings import MAX_SEED, MAX_TOP_K, SLIDER_STEP, TEMPERATURE_RANGE, TOP_P_RANGE, Settings


def sampling_widgets(temperature_key: str, top_k_key: str, top_p_key: str,
                     disabled: bool = False) -> tuple[float, int, float]:
    """Temperature, top-k and top-p side by side, over the ranges links accept too."""
    temperature_column, top_k_column, top_p_column = st.columns(3)
    temperature = state.widget(temperature_column.slider, "Temperature", *TEMPERATURE_RANGE, step=SLIDER_STEP,
                               key=temperature_key, disabled=disabled)
    top_k = state.widget(top_k_column.number_input, "Top-k (0 = off)", 0, MAX_TOP_K, step=1, key=top_k_key,
                         disabled=disabled)
    top_p = state.widget(top_p_column.slider, "Top-p (1 = off)", *TOP_P_RANGE, step=SLIDER_STEP,
                         key=top_p_key, disabled=disabled)
    return float(temperature), int(top_k), float(top_p)


def settings_controls(max_tokens: int) -> Settings:
    """The sampling widgets (in the Generate page's popover); their values as Settings."""
    greedy = state.widget(st.toggle, "Greedy (always the most likely token)", key=state.GREEDY)
    temperature, top_k, top_p = sampling_widgets(state.TEMPERATURE, state.TOP_K, state.TOP_P, disabled=greedy)
    seed_column, length_column = st.columns(2)
    seed = state.widget(seed_column.number_input, "Seed", 0, MAX_SEED, step=1, key=state.SEED,
                        disabled=greedy)
    state.fit_choice(state.MAX_NEW_TOKENS, range(1, max_tokens + 1),
                      min(state.DEFAULTS[state.MAX_NEW_TOKENS], max_tokens))
    max_new = state.widget(length_column.number_input, "Max new tokens", 1, max_tokens, step=1,
                           key=state.MAX_NEW_TOKENS)
    return Settings(greedy, temperature, top_k, top_p, int(seed), int(max_new))


def ask_for_tokens(count: int) -> None:
    """Set "Max new tokens" to `count` for the person (a round's reveal writes one token more than
    a generation that stopped at its length)."""
    state.choose(state.MAX_NEW_TOKENS, count)
