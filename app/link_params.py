"""Shareable links, the pure part: an address's query parameters checked, and a view turned back
into parameters. No session here (see app.share), so every rule is tested without Streamlit.

The page is the address's path; the rest is query parameters, only those that differ from the
defaults (a plain visit keeps a clean address):

    http://localhost:8501/attention?prompt=The%20cat%20sat&layer=2&head=5&step=3&greedy=false&seed=7

`prompt`, `model` (a preset or the bundled model; a local path is never put in or read from a link),
`layer`, `head`, `step` (1 = the first generated token, as the pages number steps), and the sampling
settings `greedy`, `temperature`, `top_k`, `top_p`, `seed`, `max_new_tokens`. With `step` the
generation is run again (it is deterministic) up to that step.

`parse_params` checks an address's parameters, `fit_to_model` what needs the model, `to_params`
is the inverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import gpt2viz

from . import state
from .settings import MAX_SEED, MAX_TOP_K, TEMPERATURE_RANGE, TOP_P_RANGE

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
