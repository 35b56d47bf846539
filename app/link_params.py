"""Shareable links, the pure part: an address's query parameters checked, and a view turned back
into parameters. No session here (see app.share), so every rule is tested without Streamlit.

The page is the address's path; the rest is query parameters, only those that differ from what
a fresh visit shows (a plain visit keeps a clean address):

    http://192.168.1.20:8501/attention?prompt=The%20cat%20sat&tokens=12&step=3&layer=2&head=5

Every widget's parameter comes from `app.state.LINKED` (`prompt`, `model` — a preset or the
bundled model, never a local path —, `layer`, `head`, the sampling settings, each page's choices);
`tokens` is how far the generation went (it is written again, deterministically, to that length,
and sets "Max new tokens" when it needs more than the link asks for), `step` the selected step
and `card_number` the Lesson's card, both counted from 1 as the pages count them (1 = the first
generated token, the first card). Links written before `card_number` named the card as `card`,
counted from 0: they are still read, and open the card they always did.

`parse_params` checks an address's parameters, `fit_to_model` what needs the model, `to_params`
is the inverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from gpt2viz.patching import SITES
from gpt2viz.viz.attention import KINDS
from gpt2viz.viz.mlp import POST, PRE

from . import state
from .class_settings import class_settings
from .settings import MAX_SEED, MAX_TOP_K, TEMPERATURE_RANGE, TOP_P_RANGE

# The query parameters, in the order a link lists them, and the session key each one restores
# (`step` is 1-based here and 0-based in state.STEP; `tokens` restores no key: it is replayed; a
# card is 1-based in the address, and its value here is the index state.LESSON_CARD keeps).
KEYS = {param: key for key, param in state.LINKED.items()}
PROMPT, MODEL, LAYER, HEAD, STEP = (state.LINKED[key] for key in (
    state.PROMPT, state.MODEL_CHOICE, state.LAYER, state.HEAD, state.STEP))
GREEDY, TEMPERATURE, TOP_K, TOP_P, SEED, MAX_NEW_TOKENS = (state.LINKED[key] for key in (
    state.GREEDY, state.TEMPERATURE, state.TOP_K, state.TOP_P, state.SEED, state.MAX_NEW_TOKENS))
TOKENS = "tokens"
CARD = state.LINKED[state.LESSON_CARD]  # counted from 1 in the address; a Link holds the index
OLD_CARD = "card"  # what links wrote before CARD: the card's index, counted from 0 (still read)
DEFAULTS: dict[str, Any] = {param: state.DEFAULTS.get(key) for param, key in KEYS.items()}  # None: no default
DEFAULTS[TOKENS] = None
ORDER = (*list(KEYS)[:list(KEYS).index(STEP)], TOKENS, *list(KEYS)[list(KEYS).index(STEP):])
MAX_PROMPT_CHARS = 10_000  # more than the largest GPT-2 context (1024 tokens) holds of ordinary text
MAX_TEXT_CHARS = 200  # a searched token, a typed distractor, ablated units
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
        n = int(text) if len(text.lstrip("+-")) <= 20 else None  # a longer one is out of range anyway
        if n is None and not text.startswith("-"):
            raise _Unusable("too large")
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
    """A model this server offers (app.class_settings); "" or the server's default is the default."""
    name, offered = raw.strip(), class_settings()
    if offered.models is not None and name == offered.models[0]:
        return ""
    if name and not offered.offers(name):
        raise _Unusable("not offered on this server" if offered.models is not None
                        else "not a model this app knows")
    return name


def _prompt(raw: str) -> str:
    if not raw.strip():
        raise _Unusable("empty")
    if len(raw) > MAX_PROMPT_CHARS:
        raise _Unusable(f"too long for a link: {len(raw):,} characters, at most {MAX_PROMPT_CHARS:,}")
    return raw


def _text(raw: str) -> str:
    if len(raw) > MAX_TEXT_CHARS:
        raise _Unusable(f"too long: {len(raw):,} characters, at most {MAX_TEXT_CHARS}")
    return raw


def _second_prompt(raw: str) -> str:
    if len(raw) > MAX_PROMPT_CHARS:
        raise _Unusable(f"too long for a link: {len(raw):,} characters, at most {MAX_PROMPT_CHARS:,}")
    return raw


def _card(first: int, cards: int | None) -> Callable[[str], int]:
    """A Lesson card counted from `first` (1 in links, 0 in those written before), read as the index
    the session keeps; `cards`: how many the Lesson has (None: not checked here)."""
    whole = _whole(first)

    def parse(raw: str) -> int:
        index = whole(raw) - first
        if cards is not None and index >= cards:
            if first == 1:
                raise _Unusable(f"the lesson has cards 1–{cards}")
            raise _Unusable(f"this older parameter counts from 0: cards 0–{cards - 1}; {CARD} counts from 1")
        return index
    return parse


def _one_of(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in options:
            raise _Unusable("must be " + " or ".join(options))
        return raw.strip()
    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {  # every parameter of state.LINKED, and `tokens`
    state.PROMPT: _prompt, state.MODEL_CHOICE: _model, state.LAYER: _whole(0), state.HEAD: _whole(0),
    state.ATTN_KIND: _one_of(*KINDS), state.WITHOUT_FIRST: _flag, state.GREEDY: _flag,
    state.TEMPERATURE: _between(*TEMPERATURE_RANGE),
    state.TOP_K: _whole(0, MAX_TOP_K), state.TOP_P: _between(*TOP_P_RANGE), state.SEED: _whole(0, MAX_SEED),
    state.MAX_NEW_TOKENS: _whole(1), state.START_WITH_EOT: _flag, state.STEP: _whole(1),
    state.QUERY: _whole(0),
    state.ZOOM_QUERY: _whole(0), state.ZOOM_KEY: _whole(0), state.FIND_TOKEN: _text,
    state.MLP_STAGE: _one_of(PRE, POST), state.MLP_TOP_N: _whole(1),
    state.STEP_TEMPERATURE: _between(*TEMPERATURE_RANGE), state.STEP_TOP_K: _whole(0, MAX_TOP_K),
    state.STEP_TOP_P: _between(*TOP_P_RANGE), state.DISTRACTOR: _whole(-2, MAX_TOP_K),
    state.DISTRACTOR_TEXT: _text, state.ABLATE_KIND: _one_of(*state.ABLATE_KINDS), state.ABLATE_UNITS: _text,
    state.ABLATE_MODE: _one_of(*state.ABLATE_MODES), state.ABLATE_RERUN: _flag,
    state.FORCED: _whole(0, MAX_TOP_K), state.FRESH_DRAWS: _flag, state.COMPARE_PROMPT: _second_prompt,
    state.COMPARE_MODEL: _model,
    state.PATCH_CLEAN: _second_prompt, state.PATCH_CORRUPTED: _second_prompt, state.PATCH_ANSWER: _text,
    state.PATCH_WRONG: _text, state.PATCH_SITE: _one_of(*SITES),
    state.PATCH_METHOD: _one_of(*state.PATCH_METHODS), state.LESSON_CARD: _card(1, None),
    state.PRESENTER: _flag,
}
PARSERS: dict[str, Callable[[str], Any]] = {state.LINKED[key]: parse for key, parse in _PARSERS.items()}
PARSERS[TOKENS] = _whole(1)


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


def parse_params(params: Mapping[str, str], lesson_cards: int | None = None) -> Link:
    """Check an address's query parameters (unknown ones are ignored); `lesson_cards` is how many
    cards the Lesson has (None: a card is not checked against it). A value that is not usable is
    left out, so its default stands, with a notice. `tokens` beyond the `max_new_tokens` the link
    names raises it (what the link's generation had); a `step` beyond `tokens` (or, without it,
    `max_new_tokens`) becomes the last step."""
    link = Link()
    for param in ORDER:
        parse = _card(1, lesson_cards) if param == CARD else PARSERS[param]
        if param in params:
            _read(link, param, str(params[param]), parse)
    if OLD_CARD in params and CARD not in params:  # a link written before CARD
        _read(link, OLD_CARD, str(params[OLD_CARD]), _card(0, lesson_cards), CARD)
    tokens, asked = link.values.get(TOKENS), link.values.get(MAX_NEW_TOKENS)
    if tokens is not None and asked is not None and tokens > asked:
        link.notices.append(f"{MAX_NEW_TOKENS} {asked} (raised to {tokens}: the link's generation has "
                            f"{tokens} new tokens)")
        link.values[MAX_NEW_TOKENS] = tokens
    step = link.values.get(STEP)
    written = tokens if tokens is not None else link.values.get(MAX_NEW_TOKENS, DEFAULTS[MAX_NEW_TOKENS])
    if step is not None and step > written:
        link.notices.append(f"step {step} (the link's generation has {written} new tokens; showing the last)")
        link.values[STEP] = written
    return link


def _read(link: Link, param: str, raw: str, parse: Callable[[str], Any], into: str | None = None) -> None:
    """`link.values[into or param]` = the parsed value, or a notice that names `param` as the address did."""
    try:
        link.values[into or param] = parse(raw)
    except _Unusable as why:
        shown = "" if param in (PROMPT, state.LINKED[state.COMPARE_PROMPT]) else " " + _shown(raw)
        link.notices.append(f"{param}{shown} ({why})")


def fit_to_model(link: Link, n_layer: int, n_head: int, n_positions: int,
                 prompt_tokens: int | None, token_cap: int | None = None) -> Link:
    """`link` checked against the loaded model's shape; `prompt_tokens` is the length of the link's
    prompt in tokens (None when it gives none); `token_cap` the most new tokens this server allows.
    A prompt that does not fit also drops the step: the view falls back to the default prompt, not
    to another prompt's generation. `tokens` sets "Max new tokens" (the control it stands for) when
    the link's generation is longer than what the link otherwise asks for, within the cap."""
    values, notices = dict(link.values), list(link.notices)
    if token_cap is not None:
        over = [param for param in (MAX_NEW_TOKENS, TOKENS) if values.get(param, 0) > token_cap]
        if over:
            asked = " and ".join(f"{param} {values[param]}" for param in over)
            notices.append(f"{asked} (this server allows at most {token_cap})")
            values.update(dict.fromkeys(over, token_cap))
    for param, count in ((LAYER, n_layer), (HEAD, n_head)):
        if param in values and values[param] >= count:
            notices.append(f"{param} {values.pop(param)} (this model has 0–{count - 1})")
    most = n_positions - 1  # one position stays free for the token written
    if MAX_NEW_TOKENS in values and values[MAX_NEW_TOKENS] > most:
        notices.append(f"{MAX_NEW_TOKENS} {values.pop(MAX_NEW_TOKENS)} (this model writes at most {most})")
    if prompt_tokens is not None and prompt_tokens > most:
        del values[PROMPT]
        values.pop(STEP, None)
        values.pop(TOKENS, None)
        notices.append(f"prompt ({prompt_tokens:,} tokens; this model's context holds {n_positions})")
    if values.get(TOKENS, 0) > values.get(MAX_NEW_TOKENS, DEFAULTS[MAX_NEW_TOKENS]):
        values[MAX_NEW_TOKENS] = min(values[TOKENS], most)
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
    for param in ORDER:
        value = values.get(param)
        if value is not None and value != DEFAULTS[param]:
            params[param] = _param_text(value + 1 if param == CARD else value)
    return params


def link_for(address: str | None, params: Mapping[str, str]) -> str:
    """The page's address with `params` (spaces as %20, which survives being pasted anywhere)."""
    query = urlencode(params, quote_via=quote)
    return (address or "") + ("?" + query if query else "")


PUBLIC_URL_ENV = "GPT2VIZ_PUBLIC_URL"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_ALL_ADDRESSES = {"", "0.0.0.0", "::"}


def is_loopback(host: str) -> bool:
    return host.strip("[]") in _LOOPBACK or host.startswith("127.")


def public_address(page_url: str, listen_address: str | None, public_url: str | None,
                   network_host: str | None) -> tuple[str, str | None]:
    """(the address a share link starts with, a hint for the person sharing it or None).

    `page_url` is the address this browser opened; `listen_address` the server's
    `server.address` (None or empty: every address); `public_url` the GPT2VIZ_PUBLIC_URL setting;
    `network_host` this machine's address on its network (None when it has none). A link must
    open on the students' machines, so an address only this machine can reach is replaced when
    the server can be reached otherwise, and the teacher is told either way."""
    parts = urlsplit(page_url)
    if public_url:
        base = urlsplit(public_url.strip().rstrip("/"))
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, "", "")), None
    if not is_loopback(parts.hostname or ""):
        return page_url, None
    if (listen_address or "").strip() not in _ALL_ADDRESSES:
        return page_url, (f"This server listens only on {listen_address}: other machines cannot open this "
                          f"link. Start it on every address (`make run` does) or set {PUBLIC_URL_ENV}.")
    if network_host is None:
        return page_url, (f"This link names {parts.hostname}, which only this machine can open, and no "
                          f"network address was found: set {PUBLIC_URL_ENV} to the address students use.")
    netloc = f"{network_host}:{parts.port}" if parts.port else network_host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), (
        f"You opened the app as {parts.hostname}: the link uses this machine's network address "
        f"({network_host}) so that students can open it. Set {PUBLIC_URL_ENV} to use another.")
