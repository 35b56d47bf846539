"""Every session-state key the app uses, with its default. Pages share state only through these.

Widgets bound to these keys pass `persist_state=PERSIST`, so a value chosen on one page (the
layer, the head, the selected step) is still selected on the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

PERSIST = "session"

# Generate page
PROMPT = "prompt"
EXAMPLE = "example"  # the example-prompt picker; copied into PROMPT when changed
MODEL_CHOICE = "model_choice"
LOCAL_PATH = "local_path"
GREEDY = "greedy"
TEMPERATURE = "temperature"
TOP_K = "top_k"  # 0 = off
TOP_P = "top_p"  # 1.0 = off
SEED = "seed"
MAX_NEW_TOKENS = "max_new_tokens"
RUN = "run"  # app.run.GenerationRun of this session, or absent

# Selections shared by all pages
STEP = "step"  # index of the selected generation step
LAYER = "layer"
HEAD = "head"
QUERY = "query"  # absolute position of the query token on the Q·K·V page
ATTN_KIND = "attn_kind"  # gpt2viz.viz.attention.PATTERN or SCORES
MLP_STAGE = "mlp_stage"  # gpt2viz.viz.mlp.PRE or POST
MLP_TOP_N = "mlp_top_n"
HEAD_GRID = "head_grid"  # the clickable grid chart's selection

DEFAULTS: dict[str, Any] = {
    PROMPT: "I love the color black, I hope someday to have a cat like that.",
    GREEDY: True,
    TEMPERATURE: 0.8,
    TOP_K: 0,
    TOP_P: 1.0,
    SEED: 0,
    MAX_NEW_TOKENS: 20,
    LAYER: 0,
    HEAD: 0,
    ATTN_KIND: "pattern",
    MLP_STAGE: "post",
    MLP_TOP_N: 32,
}


def init() -> None:
    """Give every key its default on a session's first run."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def keep_within(key: str, options: Sequence[Any], fallback: Any) -> None:
    """Before a widget on `key` is drawn: reset its value to `fallback` when it is no longer
    one of `options` (a smaller model, a shorter sequence)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = fallback
