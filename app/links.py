"""Shareable links: the address holds the view, so a copied link opens the same view elsewhere.

The page is the address's path; the rest is query parameters, only those that differ from the
defaults (a plain visit keeps a clean address):

    http://localhost:8501/attention?prompt=The%20cat%20sat&layer=2&head=5&step=3&greedy=false&seed=7

`prompt`, `model` (a preset or the bundled model; a local path is never put in or read from a link),
`layer`, `head`, `step` (1 = the first generated token, as the pages number steps), and the sampling
settings `greedy`, `temperature`, `top_k`, `top_p`, `seed`, `max_new_tokens`. With `step` the
generation is run again (it is deterministic) up to that step.

The first part of this module is plain Python, testable without Streamlit: `parse_params` checks
an address's parameters, `fit_to_model` what needs the model, `to_params` is the inverse. The
second part connects them to the session: `restore` (streamlit_app.py, before the page runs),
`share_box` and `update` (app.model_picker.current_model, on every page), and `refresh`
(streamlit_app.py, after the page ran to its end).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import gpt2viz

from . import state
from .resources import advance_in_turns

if TYPE_CHECKING:
    from .model_picker import CurrentModel

# The query parameters, in the order a link lists them, and the session key each one restores
# (`step` is 1-based here and 0-based in state.STEP).
PROMPT, MODEL, LAYER, HEAD, STEP = "prompt", "model", "layer", "head", "step"
GREEDY, TEMPERATURE, TOP_K, TOP_P, SEED = "greedy", "temperature", "top_k", "top_p", "seed"
MAX_NEW_TOKENS = "max_new_tokens"
KEYS = {
    PROMPT: state.PROMPT, MODEL: state.MODEL_CHOICE, LAYER: state.LAYER, HEAD: state.HEAD,
    STEP: state.STEP, GREEDY: state.GREEDY, TEMPERATURE: state.TEMPERATURE, TOP_K: state.TOP_K,
    TOP_P: state.TOP_P, SEED: state.SEED, MAX_NEW_TOKENS: state.MAX_NEW_TOKENS,
}
DEFAULTS: dict[str, Any] = {param: state.DEFAULTS.get(key) for param, key in KEYS.items()}  # step: None
MODELS = (gpt2viz.BUNDLED_NAME, *gpt2viz.PRESETS)  # the models a link may name ("" = the default)
MAX_PROMPT_CHARS = 10_000  # more than the largest GPT-2 context (1024 tokens) holds of ordinary text
# The ranges of the sampling widgets (app.run.settings_controls).
TEMPERATURE_RANGE = (0.05, 2.0)
TOP_P_RANGE = (0.05, 1.0)
MAX_TOP_K = 50257
MAX_SEED = 2**31 - 1
_WHOLE = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
          "off": False}
NOTICE = "Some link settings were not usable and were reset: "


class _Unusable(ValueError):
    """A parameter's value cannot be used; the message says why, in a few words."""


def _number_text(x: float) -> str:
    return f"{x:g}"


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not _WHOLE.fullmatch(text):
            raise _Unusable("not a whole number")
        n = int(text) if len(text) <= 20 else None  # a longer one is out of range anyway
        if n is None or n < low or (high is not None and n > high):
            raise _Unusable(f"must be {low}–{high}" if high is not None else f"must be at least {low}")
        return n
    return parse


def _between(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        text = raw.strip()
        if not _NUMBER.fullmatch(text):
            raise _Unusable("not a number")
        x = float(text)
        if not low <= x <= high:
            raise _Unusable(f"must be {_number_text(low)}–{_number_text(high)}")
        return x
    return parse


def _flag(raw: str) -> bool:
    try:
        return _FLAGS[raw.strip().lower()]
    except KeyError:
        raise _Unusable("must be true or false") from None


def _model(raw: str) -> str:
    name = raw.strip()
    if name and name not in MODELS:
        raise _Unusable("not a model this app knows")
    return name


def _prompt(raw: str) -> str:
    if not raw.strip():
        raise _Unusable("empty")
    if len(raw) > MAX_PROMPT_CHARS:
        raise _Unusable(f"too long for a link: {len(raw):,} characters, at most {MAX_PROMPT_CHARS:,}")
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    PROMPT: _prompt, MODEL: _model, LAYER: _whole(0), HEAD: _whole(0), STEP: _whole(1),
    GREEDY: _flag, TEMPERATURE: _between(*TEMPERATURE_RANGE), TOP_K: _whole(0, MAX_TOP_K),
    TOP_P: _between(*TOP_P_RANGE), SEED: _whole(0, MAX_SEED), MAX_NEW_TOKENS: _whole(1),
}


def _shown(raw: str) -> str:
    """A parameter's value as a notice quotes it: a number as it is, anything else in quotes, cut short."""
    if _NUMBER.fullmatch(raw.strip()) and len(raw) <= 24:
        return raw.strip()
    return f'"{raw[:24]}…"' if len(raw) > 24 else f'"{raw}"'


@dataclass
class Link:
    """What an address asks for: `values` (parameter → checked value, only those given and usable)
    and `notices` (one short phrase per parameter that was not usable)."""

    values: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def parse_params(params: Mapping[str, str]) -> Link:
    """Check an address's query parameters (unknown ones are ignored). A value that is not usable
    is left out, so its default stands, with a notice. A `step` beyond `max_new_tokens` becomes
    the last step."""
    link = Link()
    for param, parse in _PARSERS.items():
        if param not in params:
            continue
        raw = str(params[param])
        try:
            link.values[param] = parse(raw)
        except _Unusable as why:
            shown = "" if param == PROMPT else " " + _shown(raw)
            link.notices.append(f"{param}{shown} ({why})")
    step, most = link.values.get(STEP), link.values.get(MAX_NEW_TOKENS, DEFAULTS[MAX_NEW_TOKENS])
    if step is not None and step > most:
        link.notices.append(f"step {step} (the link asks for {most} new tokens; showing the last)")
        link.values[STEP] = most
    return link


def fit_to_model(link: Link, n_layer: int, n_head: int, n_positions: int,
                 prompt_tokens: int | None) -> Link:
    """`link` checked against the loaded model's shape; `prompt_tokens` is the length of the link's
    prompt in tokens (None when it gives none). A prompt that does not fit also drops the step: the
    view falls back to the default prompt, not to another prompt's generation."""
    values, notices = dict(link.values), list(link.notices)
    for param, count in ((LAYER, n_layer), (HEAD, n_head)):
        if param in values and values[param] >= count:
            notices.append(f"{param} {values.pop(param)} (this model has 0–{count - 1})")
    most = n_positions - 1  # one position stays free for the token written
    if MAX_NEW_TOKENS in values and values[MAX_NEW_TOKENS] > most:
        notices.append(f"{MAX_NEW_TOKENS} {values.pop(MAX_NEW_TOKENS)} (this model writes at most {most})")
    if prompt_tokens is not None and prompt_tokens > most:
        del values[PROMPT]
        values.pop(STEP, None)
        notices.append(f"prompt ({prompt_tokens:,} tokens; this model's context holds {n_positions})")
    return Link(values, notices)


def notice_text(notices: list[str]) -> str:
    return NOTICE + "; ".join(notices) + "."


def settings_values(settings: Mapping[str, Any], temperature: float) -> dict[str, Any]:
    """The link's sampling parameters for a generation's `settings` (gpt2viz.Generation.settings);
    `temperature` stands for a greedy one's (which does not use it)."""
    greedy = settings["temperature"] == 0
    return {
        GREEDY: greedy,
        TEMPERATURE: temperature if greedy else settings["temperature"],
        TOP_K: settings["top_k"] or 0,
        TOP_P: settings["top_p"] if settings["top_p"] is not None else 1.0,
        SEED: settings["seed"],
        MAX_NEW_TOKENS: settings["max_new_tokens"],
    }


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def to_params(values: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters for a view (parameter → value, as `parse_params` returns them): only
    the values that differ from the defaults, in a fixed order. The inverse of `parse_params`."""
    params = {}
    for param in KEYS:
        value = values.get(param)
        if value is not None and value != DEFAULTS[param]:
            params[param] = _param_text(value)
    return params


def link_for(address: str | None, params: Mapping[str, str]) -> str:
    """The page's address with `params` (spaces as %20, which survives being pasted anywhere)."""
    query = urlencode(params, quote_via=quote)
    return (address or "") + ("?" + query if query else "")


# --- the session ------------------------------------------------------------------------------


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
    from .resources import tokenizer  # app.resources is heavy: not loaded before a link needs it

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
    # app.run and app.sequence import app.model_picker, which imports this module.
    from .run import kept_settings, start
    from .sequence import select_step

    try:
        run = start(current.model, state.get(state.PROMPT), kept_settings())
    except gpt2viz.PromptError as err:
        notices.append(f"step {step} (the prompt cannot run: {err})")
        return
    with st.spinner(f"Writing the link's generation up to step {step}…"):
        advance_in_turns(run, until=step)  # a step at a time, as the Generate page writes
    st.session_state[state.RUN] = run
    select_step(run, len(run.steps) - 1)
    if len(run.steps) < step:
        notices.append(f"step {step} (this generation ends after {len(run.steps)} tokens)")


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
    # app.run and app.sequence import app.model_picker, which imports this module.
    from .run import DEFAULT_SETTINGS
    from .sequence import session_run

    values = {param: state.get(key) for param, key in KEYS.items() if param != STEP}
    if values[MODEL] not in (DEFAULTS[MODEL], *MODELS):
        values[MODEL] = DEFAULTS[MODEL]  # a local model's path stays out of links
    run = session_run(current)
    if run is not None:
        values.update(settings_values(run.settings, float(values[TEMPERATURE])))
        last, index = len(run.steps) - 1, state.get(state.STEP)
        index = index if index in range(last + 1) else last
        example = (run.finished and index == last and run.prompt == DEFAULTS[PROMPT]
                   and run.settings == DEFAULT_SETTINGS.generate_kwargs())
        if not example:
            values[STEP] = index + 1
    return values


def share_box() -> DeltaGenerator:
    """In the sidebar, on every page: a "Share this view" popover with a slot for the link (see
    `update`). A popover, not the link itself: the code block is drawn in the browser only when it
    opens (drawn on every page load, it cost about 0.3 s of the first screen)."""
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
