"""Shareable links, the session's part: the address holds the view, so a copied link opens the
same view elsewhere (the parameters themselves: app.link_params).

In the order streamlit_app.py runs them: `restore` reads a new session's address before anything
is drawn; `apply_link` applies it once the model is loaded (`drop_link_model` when the link's
model does not load); `share_box` and `show` (the sidebar) draw the "Share this view" link;
`refresh`, after the page ran to its end, sets the address and the link to what the page changed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import gpt2viz

from . import session, state
from .class_settings import class_settings
from .lesson.content import load_cards
from .link_params import (
    DEFAULTS,
    KEYS,
    MODEL,
    PROMPT,
    PUBLIC_URL_ENV,
    STEP,
    TEMPERATURE,
    TOKENS,
    fit_to_model,
    is_loopback,
    link_for,
    notice_text,
    parse_params,
    public_address,
    settings_values,
    to_params,
)
from .models import CurrentModel, tokenizer
from .settings import kept_settings

_REPLAYED = (STEP, TOKENS)  # applied once the model is loaded, not restored as they are


def restore() -> None:
    """Before the page runs. On a session's first run, the address's parameters go into the session
    state as the person's choices (before any widget is drawn); what needs the model is checked by
    `apply_link`."""
    st.session_state.pop(state.SHARE, None)  # a box from an earlier run is not this run's
    if state.LINK_READ in st.session_state:
        return
    st.session_state[state.LINK_READ] = True
    link = parse_params(st.query_params.to_dict(), len(load_cards()))
    if not link.values and not link.notices:
        return
    for param, value in link.values.items():
        if param not in _REPLAYED:
            state.choose(KEYS[param], value)
    st.session_state[state.LINK_PENDING] = link


# What a followed view leaves as the student had it: their screen's presenter view.
_OWN_SCREEN = frozenset({state.PRESENTER})


def open_view(params: dict[str, str]) -> None:
    """Before the page runs: this session moves to the view `params` (a link's query parameters,
    the teacher's view in a live class) as if it had opened that link now. Every linked choice
    goes back to what a fresh visit shows, the view's values are put in place, and `apply_link`
    checks them and writes the generation once the model is loaded (going on with the session's
    own generation when it is the same one, shorter)."""
    link = parse_params(params, len(load_cards()))
    for key in state.LINKED.keys() - _OWN_SCREEN:
        state.reset(key)
    for param, value in link.values.items():
        if param not in _REPLAYED and KEYS[param] not in _OWN_SCREEN:
            state.choose(KEYS[param], value)
    if TOKENS not in link.values:
        session.forget()  # no generation of its own in the view: the one a fresh visit opens on
    st.session_state[state.LINK_READ] = True
    st.session_state[state.LINK_PENDING] = link


def drop_link_model(choice: str) -> bool:
    """When the chosen model did not load: True if it came from a link, which then leaves it out
    with a notice (the caller falls back to the default model)."""
    link = st.session_state.get(state.LINK_PENDING)
    name = link.values.get(MODEL) if link is not None else None
    if not name or choice != name:
        return False
    del link.values[MODEL]
    link.notices.append(f'model "{name}" (could not be loaded here)')
    return True


def apply_link(current: CurrentModel) -> None:
    """On the run that first loads the model after a link was opened: check the link's values
    against the model, reset those that do not fit and set those fitted to it (a token count cut to
    the server's cap, "Max new tokens" raised to the link's length), write the generation again to
    the link's length, select its step, and show the notices (once)."""
    link = st.session_state.pop(state.LINK_PENDING, None)
    if link is None:
        return
    config = current.model.config
    prompt_tokens = len(tokenizer().encode(link.values[PROMPT])) if PROMPT in link.values else None
    fitted = fit_to_model(link, config.n_layer, config.n_head, config.n_positions, prompt_tokens,
                          class_settings().token_cap(config.n_positions))
    for param in link.values.keys() - fitted.values.keys() - set(_REPLAYED):
        state.put(KEYS[param], DEFAULTS[param])
    for param, value in fitted.values.items():  # the controls show what the view is written with
        if param not in _REPLAYED and link.values.get(param) != value:
            state.choose(KEYS[param], value)
    notices = fitted.notices
    values = fitted.values
    if TOKENS in values:
        _replay(current, TOKENS, values[TOKENS], notices)
    elif STEP in values and state.get(state.PROMPT) != state.DEFAULT_PROMPT:
        _replay(current, STEP, values[STEP], notices)  # a link from before `tokens`: up to its step
    session.open_example(current)
    kept = session.current(current)
    if kept is not None:
        if STEP in values:
            session.select_step(min(values[STEP], len(kept.generation.steps)) - 1, chosen=True)
        state.adopt(kept.serial, session.selected_step(kept))  # the link's query and step sampling
    if notices:
        st.warning(notice_text(notices), icon="⚠️")


def _replay(current: CurrentModel, param: str, tokens: int, notices: list[str]) -> None:
    """The link's generation, written again (it is deterministic) until it has `tokens` steps, and
    kept (`param` names the link's parameter in a notice). The session's own generation goes on
    instead when it is the same one, no longer: a follower's, one step behind the teacher's."""
    most = class_settings().token_cap(current.model.config.n_positions)
    settings = kept_settings(most)
    kept = session.last()
    if kept is not None and kept.is_for(current.model, state.get(state.PROMPT), settings) \
            and len(kept.generation.steps) <= tokens:
        generation = kept.generation
    else:
        try:
            generation = session.start(current.model, state.get(state.PROMPT), settings)
        except gpt2viz.PromptError as err:
            notices.append(f"{param} {tokens} (the prompt cannot run: {err})")
            return
        kept = None
    if len(generation.steps) < tokens and not generation.finished:
        with st.spinner(f"Writing the link's generation, {tokens} tokens…"):
            session.generate(current.source, generation, until=tokens)  # a step at a time, as Generate writes
    if kept is None or kept.opened_on:
        session.set_generation(generation)
    if len(generation.steps) < tokens:
        notices.append(f"{param} {tokens} (this generation ends after {len(generation.steps)} tokens)")


def view_values(current: CurrentModel) -> dict[str, Any]:
    """This session's view as link values: every linked choice (those without a default only once
    chosen), and when the pages show a generation, its settings, its length (unless it is the
    example a fresh visit shows) and its selected step (unless the last)."""
    values = {}
    for param, key in KEYS.items():
        if param != STEP and (key in state.DEFAULTS or state.chosen(key)):
            values[param] = state.get(key)
    if values[MODEL] != DEFAULTS[MODEL] and not class_settings().offers(values[MODEL]):
        values[MODEL] = DEFAULTS[MODEL]  # a local model's path stays out of links
    kept = session.current(current)
    if kept is not None:
        values.update(settings_values(kept.generation.settings, float(values[TEMPERATURE])))
        last = len(kept.generation.steps) - 1
        if not session.is_example(kept):
            values[TOKENS] = last + 1
        if session.selected_step(kept) != last:
            values[STEP] = session.selected_step(kept) + 1
    return values


def view_params(current: CurrentModel) -> dict[str, str]:
    """This session's view as a link's query parameters."""
    return to_params(view_values(current))


@dataclass
class _Share:
    current: CurrentModel
    slot: DeltaGenerator
    drawn: str | None = None  # the link the slot shows


def share_box() -> DeltaGenerator:
    """In the sidebar, on every page: a "Share this view" popover with a slot for the link (see
    `show`). A popover keeps the link's code block off the first screen: the browser draws it
    only when the popover opens (bench/README.md, "Serving a class")."""
    with st.popover("Share this view", icon=":material/link:", width="stretch"):
        return st.empty()


def show(current: CurrentModel, box: DeltaGenerator) -> None:
    """The address and the sidebar's `box` (a link with a copy button) set to this view."""
    share = _Share(current, box)
    st.session_state[state.SHARE] = share
    _sync(share)


def refresh() -> None:
    """After the page ran to its end: the address and the link follow what the page changed (a
    new generation, a step). A page that stopped early changed nothing they show."""
    share = st.session_state.pop(state.SHARE, None)
    if share is not None:
        _sync(share)


def network_host() -> str | None:
    """This machine's address on its network, or None. Connecting a UDP socket sends nothing: it
    only asks the kernel which address it would send from."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            host = probe.getsockname()[0]
    except OSError:
        host = socket.gethostbyname(socket.gethostname())
    return None if is_loopback(host) else host


def _sync(share: _Share) -> None:
    params = view_params(share.current)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    page_url = st.context.url or ""
    loopback = is_loopback(urlsplit(page_url).hostname or "")
    address, hint = public_address(page_url, st.get_option("server.address"), os.environ.get(PUBLIC_URL_ENV),
                                   network_host() if loopback else None)
    link = link_for(address, params)
    if link == share.drawn:
        return
    share.drawn = link
    with share.slot.container():
        # A long prompt makes a long link: at most ~8 lines high, the rest scrolls (copy takes all).
        st.code(link, language=None, wrap_lines=True, height=min(200, 40 + 20 * (len(link) // 32)))
        st.caption("Opens this page with the same prompt, generation, settings and choices. The button "
                   "at its top right copies it.")
        if hint:
            st.caption(hint)
        choice = state.get(state.MODEL_CHOICE)
        if choice != DEFAULTS[MODEL] and not class_settings().offers(choice):
            st.caption("The link leaves out the local model: it opens with the default one.")
