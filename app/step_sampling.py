"""The Inside-a-step page's sampling chain and its controls: they start at the generation's
settings and redraw the chain from the step's logits, never re-running the model. A fragment, so
moving a control reruns this section alone, not the whole page."""

from __future__ import annotations

import streamlit as st
import torch

from gpt2viz import Generation
from gpt2viz.sampling import draw, sampling_stages
from gpt2viz.viz.sampling import chain_data, sampling_chain_figure

from . import state
from .charts import chart
from .resources import tokenizer

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


@st.fragment
def sampling_chain(run: Generation | None, logits: torch.Tensor, chosen: int | None, seed: int,
                   index: int) -> None:
    """The controls, the four-column chain for `logits`, and the token a draw would now pick."""
    tok = tokenizer()
    stages = sampling_stages(logits, *sampling_controls(run))
    would = tok.token_text(draw(stages.probs, seed, index))
    chain = chain_data(stages, tok, chosen)
    chart(st, sampling_chain_figure(chain, "ln_f → logits → sampling"), key="sampling_chain")
    how = "greedy" if run is not None and run.settings["temperature"] == 0 else "sampled"
    made = "" if chosen is None else f"; the generation ({how}) chose {tok.token_text(chosen)!r}"
    st.caption(f"With these settings a draw with seed {seed} at step {index + 1} picks {would!r}{made}. "
               "Changing them reuses this step's logits: the model is not run again.")
