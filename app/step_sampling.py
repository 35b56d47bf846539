"""The Inside-a-step page's sampling chain and its controls: they start at the generation's
settings and redraw the chain from the step's logits, never re-running the model. A fragment, so
moving a control reruns this section alone, not the whole page."""

from __future__ import annotations

import streamlit as st
import torch

from gpt2viz.sampling import draw, sampling_stages
from gpt2viz.viz.sampling import chain_data, sampling_chain_figure

from . import state
from .charts import chart
from .models import tokenizer
from .sampling_controls import sampling_widgets
from .session import SessionGeneration


def sampling_controls(kept: SessionGeneration | None) -> tuple[float, int | None, float | None]:
    """(temperature, top_k or None, top_p or None) from three widgets; another generation resets
    them to its own settings (temperature 1 when it was greedy)."""
    if kept is not None and not state.follows(state.STEP_SAMPLING_FOR, kept.serial):
        state.follow(state.STEP_SAMPLING_FOR, kept.serial)
        settings = kept.generation.settings
        state.put(state.STEP_TEMPERATURE, float(settings["temperature"] or 1.0))
        state.put(state.STEP_TOP_K, int(settings["top_k"] or 0))
        state.put(state.STEP_TOP_P, float(settings["top_p"] or 1.0))
    temperature, top_k, top_p = sampling_widgets(state.STEP_TEMPERATURE, state.STEP_TOP_K, state.STEP_TOP_P)
    return temperature, top_k or None, top_p if top_p < 1.0 else None


@st.fragment
def sampling_chain(kept: SessionGeneration | None, logits: torch.Tensor, chosen: int | None, seed: int,
                   index: int) -> None:
    """The controls, the four-column chain for `logits`, and the token a draw would now pick."""
    tok = tokenizer()
    stages = sampling_stages(logits, *sampling_controls(kept))
    would = tok.token_text(draw(stages.probs, seed, index))
    chain = chain_data(stages, tok, chosen)
    chart(st, sampling_chain_figure, chain, "ln_f → logits → sampling", key="sampling_chain")
    how = "greedy" if kept is not None and kept.generation.settings["temperature"] == 0 else "sampled"
    made = "" if chosen is None else f"; the generation ({how}) chose {tok.token_text(chosen)!r}"
    st.caption(f"With these settings a draw with seed {seed} at step {index + 1} picks {would!r}{made}. "
               "Changing them reuses this step's logits: the model is not run again.")
