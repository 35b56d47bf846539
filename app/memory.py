"""The sidebar's line on the memory the process's recordings use, against their budget."""

from __future__ import annotations

import streamlit as st

from gpt2viz.budget import BUDGET_ENV, byte_size

from . import state
from .computations import recordings


def memory_text() -> str:
    store = recordings()
    return (f"Recordings in memory: **{byte_size(store.used_bytes)}** of {byte_size(store.budget_bytes)} "
            f"({len(store)} kept, all sessions)")


def memory_box() -> None:
    """Draw the line in the sidebar now, and keep its slot so `refresh_memory` can update it once
    the page has recorded what it shows."""
    slot = st.empty()
    slot.caption(memory_text(), help=f"Recordings are kept so that pages and selections do not re-run the "
                                     f"model; the least recently used go first when the budget is full. "
                                     f"Set the budget with {BUDGET_ENV} (megabytes).")
    st.session_state[state.MEMORY_BOX] = slot


def refresh_memory() -> None:
    """After the page ran to its end: the line shows what its recordings added."""
    slot = st.session_state.pop(state.MEMORY_BOX, None)
    if slot is not None:
        slot.caption(memory_text())
