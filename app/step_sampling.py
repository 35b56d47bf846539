"""The Inside-a-step page's sampling controls: they start at the generation's settings and
redraw the chain from the step's logits, never re-running the model."""

from __future__ import annotations

import streamlit as st

from gpt2viz import Generation

from . import state

_FOR = "step_sampling_for"  # id of the generation the controls were last reset to


def sampling_controls(run: Generation | None) -> tuple[float, int | None, float | None]:
    """(temperature, top_k or None, top_p or None) from three widgets; a new generation resets
    them to its own settings (temperature 1 when it was greedy)."""
    if run is not None and st.session_state.get(_FOR) != id(run):
        st.session_state[_FOR] = id(run)
        s = run.settings
        state.put(state.STEP_TEMPERATURE, float(s["temperature"] or 1.0))
        state.put(state.STEP_TOP_K, int(s["top_k"] or 0))
        state.put(state.STEP_TOP_P, float(s["top_p"] or 1.0))
    c1, c2, c3 = st.columns(3)
    temperature = state.widget(c1.slider, "Temperature", 0.05, 2.0, step=0.05, key=state.STEP_TEMPERATURE)
    top_k = state.widget(c2.number_input, "Top-k (0 = off)", 0, 50257, step=1, key=state.STEP_TOP_K)
    top_p = state.widget(c3.slider, "Top-p (1 = off)", 0.05, 1.0, step=0.05, key=state.STEP_TOP_P)
    return float(temperature), int(top_k) or None, float(top_p) if top_p < 1.0 else None
