"""The zoom window over a long attention pattern: where it starts, and a token search that moves it."""

from __future__ import annotations

import streamlit as st

from gpt2viz.viz.attention import WINDOW, find_positions, window_around

from . import state


def _jump(n: int) -> None:
    """The picked search result becomes the window's bottom row (`n`: the sequence's length)."""
    position = st.session_state.get(state.ZOOM_FOUND)
    if position is not None:
        first_query, first_key = window_around(position, n)
        state.choose(state.ZOOM_QUERY, first_query)
        state.choose(state.ZOOM_KEY, first_key)


def zoom_controls(texts: list[str], labels: list[str]) -> tuple[int, int]:
    """Search box, search results and the window's first query and key; returns (first query,
    first key). `texts` are the tokens' texts, `labels` their display labels."""
    n = len(texts)
    last = max(0, n - WINDOW)
    default = window_around(n - 1, n)
    state.fit_choice(state.ZOOM_QUERY, range(last + 1), default[0])
    state.fit_choice(state.ZOOM_KEY, range(last + 1), default[1])
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    needle = state.widget(c1.text_input, "Find a token", key=state.FIND_TOKEN,
                          placeholder="e.g. cat", help="Moves the zoom window so that the token's row is "
                                                       "its last one.")
    matches = find_positions(texts, needle)
    if needle and not matches:
        c2.caption(f"No token contains {needle.strip()!r}.")
    elif matches:
        c2.selectbox(f"{len(matches)} found", matches, index=None, key=state.ZOOM_FOUND, on_change=_jump,
                     args=(n,),
                     format_func=labels.__getitem__, placeholder="Jump to…")
    first_query = state.widget(c3.number_input, "First query", min_value=0, max_value=last, step=8,
                               key=state.ZOOM_QUERY)
    first_key = state.widget(c4.number_input, "First key", min_value=0, max_value=last, step=8,
                             key=state.ZOOM_KEY)
    return int(first_query), int(first_key)
