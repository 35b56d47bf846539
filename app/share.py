"""Shareable links, the session's part: the address holds the view, so a copied link opens the
same view elsewhere (the parameters themselves: app.link_params).

`restore` (streamlit_app.py, before the page runs) reads a new session's address; `share_box`,
`model_failed` and `update` (app.sidebar, on every page) apply it once the model is loaded and
draw the "Share this view" link; `refresh` (streamlit_app.py, after the page ran to its end) sets
the address and the link to what the page changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import gpt2viz

from . import session, state
from .link_params import (
    DEFAULTS,
    KEYS,
    MODEL,
    MODELS,
    PROMPT,
    STEP,
    TEMPERATURE,
    fit_to_model,
    link_for,
    notice_text,
    parse_params,
    settings_values,
    to_params,
)
from .model_turn import advance_in_turns
from .models import CurrentModel, tokenizer
from .settings import kept_settings


def restore() -> None:
    """Before the page runs. On a session's first run, the address's parameters go into the session
    state (before any widget is drawn); what needs the model is checked by `update`."""
    st.session_state.pop(state.SHARE, None)  # a box from an earlier run is not this run's
    if state.LINK_READ in st.session_state:
        return
    st.session_state[state.LINK_READ] = True
    link = parse_params(st.query_params.to_dict())
    if not link.values and not link.notices:
        return
    for param, value in link.values.items():
        if param != STEP:
            state.put(KEYS[param], value)
    st.session_state[state.LINK_PENDING] = link


def model_failed() -> bool:
    """When the chosen model did not load: True if it came from a link, which then falls back to
    the default model with a notice (the caller reruns)."""
    link = st.session_state.get(state.LINK_PENDING)
    name = link.values.get(MODEL) if link is not None else None
    if not name or state.get(state.MODEL_CHOICE) != name:
        return False
    del link.values[MODEL]
    link.notices.append(f'model "{name}" (could not be loaded here)')
    state.put(state.MODEL_CHOICE, DEFAULTS[MODEL])
    return True


def _apply_pending(current: CurrentModel) -> None:
    """On the run that first loads the model after a link was opened: check the link's values
    against the model, reset those that do not fit, run the generation again up to the link's
    step, and show the notices (once)."""
    link = st.session_state.pop(state.LINK_PENDING, None)
    if link is None:
        return
    config = current.model.config
    prompt_tokens = len(tokenizer().encode(link.values[PROMPT])) if PROMPT in link.values else None
    fitted = fit_to_model(link, config.n_layer, config.n_head, config.n_positions, prompt_tokens)
    for param in link.values.keys() - fitted.values.keys() - {STEP}:
        state.put(KEYS[param], DEFAULTS[param])
    notices = fitted.notices
    if STEP in fitted.values:
        _replay(current, fitted.values[STEP], notices)
    if notices:
        st.warning(notice_text(notices), icon="⚠️")


def _replay(current: CurrentModel, step: int, notices: list[str]) -> None:
    """The link's generation, run again (it is deterministic) until it has `step` steps."""
    try:
        generation = session.start(current.model, state.get(state.PROMPT), kept_settings())
    except gpt2viz.PromptError as err:
        notices.append(f"step {step} (the prompt cannot run: {err})")
        return
    with st.spinner(f"Writing the link's generation up to step {step}…"):
        advance_in_turns(generation, until=step)  # a step at a time, as the Generate page writes
    session.keep(generation)  # its last step selected
    if len(generation.steps) < step:
        notices.append(f"step {step} (this generation ends after {len(generation.steps)} tokens)")


@dataclass
class _Share:
    current: CurrentModel
    slot: DeltaGenerator
    drawn: str | None = None  # the link the slot shows


def view_values(current: CurrentModel) -> dict[str, Any]:
    """This session's view as link values: the state, and when the page shows a generation of the
    current prompt, the settings it was made with and its selected step. The step is left out for
    the example a new session opens on (the default prompt and settings, written to the end, its
    last step), so that a plain visit keeps a clean address."""
    values = {param: state.get(key) for param, key in KEYS.items() if param != STEP}
    if values[MODEL] not in (DEFAULTS[MODEL], *MODELS):
        values[MODEL] = DEFAULTS[MODEL]  # a local model's path stays out of links
    kept = session.current(current)
    if kept is not None:
        values.update(settings_values(kept.generation.settings, float(values[TEMPERATURE])))
        if not session.is_example(kept):
            values[STEP] = session.selected_step(kept) + 1
    return values


def share_box() -> DeltaGenerator:
    """In the sidebar, on every page: a "Share this view" popover with a slot for the link (see
    `update`). A popover keeps the link's code block off the first screen: the browser draws it
    only when the popover opens (bench/README.md, "Serving a class")."""
    with st.popover("Share this view", icon=":material/link:", width="stretch"):
        return st.empty()


def update(current: CurrentModel, box: DeltaGenerator) -> None:
    """Once the model is loaded, in the page (where a link's notices show): a link's pending
    settings applied, then the address and the sidebar's `box` (a link with a copy button) set to
    this view."""
    _apply_pending(current)
    share = _Share(current, box)
    st.session_state[state.SHARE] = share
    _sync(share)


def refresh() -> None:
    """After the page ran to its end: the address and the link follow what the page changed (a
    new generation, a step). A page that stopped early changed nothing they show."""
    share = st.session_state.pop(state.SHARE, None)
    if share is not None:
        _sync(share)


def _sync(share: _Share) -> None:
    params = to_params(view_values(share.current))
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    link = link_for(st.context.url, params)
    if link == share.drawn:
        return
    share.drawn = link
    with share.slot.container():
        # A long prompt makes a long link: at most ~8 lines high, the rest scrolls (copy takes all).
        st.code(link, language=None, wrap_lines=True, height=min(200, 40 + 20 * (len(link) // 32)))
        st.caption("Opens this page with the same prompt, settings and selection. The copy button "
                   "shows when the pointer is over the link.")
        if state.get(state.MODEL_CHOICE) not in (DEFAULTS[MODEL], *MODELS):
            st.caption("The link leaves out the local model: it opens with the default one.")
