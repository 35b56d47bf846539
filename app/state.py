"""Every session-state key the app uses, with its default and its share-link parameter. Pages
share state only through these.

A widget drawn with `widget()` keeps its value in a copy under "<key>.kept", which outlives the
widget: a value chosen on one page (the layer, the head, the selected step) is still chosen on
the others. Read and set these values with `get` and `put` (a value the app sets) or `choose` (a
value the person chose), never through the widget key. Every widget's key is in `LINKED` (its
share-link parameter) or in `NOT_LINKED` (why not): `widget()` refuses any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

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
START_WITH_EOT = "start_with_eot"  # bool: the prompt starts with <|endoftext|>, as texts did in training
GENERATION = "generation"  # app.session.SessionGeneration: this session's generation, or absent
GENERATION_SERIAL = "generation_serial"  # how many generations this session has kept

# Selections shared by all pages
STEP = "step"  # index of the selected generation step
LAYER = "layer"
HEAD = "head"
QUERY = "query"  # absolute position of the query token on the Q·K·V page
QUERY_STEP = "query_step"  # (generation serial, step index) QUERY was last set to follow
ATTN_KIND = "attn_kind"  # gpt2viz.viz.attention.PATTERN or SCORES
WITHOUT_FIRST = "without_first"  # bool: the pattern's colour scale leaves the first token out
MLP_STAGE = "mlp_stage"  # gpt2viz.viz.mlp.PRE or POST
MLP_TOP_N = "mlp_top_n"
HEAD_GRID = "head_grid"  # the clickable grid chart's selection
ZOOM_QUERY = "zoom_query"  # first query position of the Attention page's zoom window (long contexts)
ZOOM_KEY = "zoom_key"  # its first key position
FIND_TOKEN = "find_token"  # text searched for among the tokens, to move the zoom window
ZOOM_FOUND = "zoom_found"  # the search result picked (a position)
# Inside a step: sampling controls that redraw the chain from the step's logits
STEP_TEMPERATURE = "step_temperature"
STEP_TOP_K = "step_top_k"  # 0 = off
STEP_TOP_P = "step_top_p"  # 1.0 = off
STEP_SAMPLING_FOR = "step_sampling_for"  # serial of the generation these controls were reset to
# Why this token?
DISTRACTOR = "distractor"  # token id of the distractor, or why_sections.TYPED / NONE
DISTRACTOR_TEXT = "distractor_text"  # the typed distractor token
ABLATE_KIND = "ablate_kind"  # one of ABLATE_KINDS
ABLATE_KINDS = ("selected head", "heads", "neurons")
ABLATE_UNITS = "ablate_units"  # typed "layer.index" pairs
ABLATE_MODE = "ablate_mode"  # one of ABLATE_MODES
ABLATE_MODES = ("zero", "mean")
ABLATE_RERUN = "ablate_rerun"  # bool: also re-run the whole generation with the ablation
FORCED = "forced"  # token id the branch is forced to take
COMPARE_PROMPT = "compare_prompt"
DLA_GRID = "dla_grid"  # the attribution heatmap's selection
COMPARE_MODEL = "compare_model"  # the model the Generate page scores the text with too ("": none)
# Patching
PATCH_CLEAN = "patch_clean"  # the prompt whose activations are put in
PATCH_CORRUPTED = "patch_corrupted"  # the prompt that is run, one activation replaced at a time
PATCH_ANSWER = "patch_answer"  # the clean run's next token (text of one token)
PATCH_WRONG = "patch_wrong"  # the corrupted run's
PATCH_SITE = "patch_site"  # one of gpt2viz.patching.SITES
PATCH_METHOD = "patch_method"  # one of PATCH_METHODS
PATCH_METHODS = ("both", "exact", "attribution")
# Lesson and presenter view
LESSON_CARD = "lesson_card"  # index of the lesson card shown
PRESENTER = "presenter"  # bool: large fonts and figures, fewer controls, for a projector
IMAGE_FORMAT = "image_format"  # what the figures' camera button saves: "png" or "svg"
# Shareable links (app.share)
LINK_READ = "link_read"  # True once this session has read its address's query parameters
LINK_PENDING = "link_pending"  # the address's settings, checked against the model once it is loaded
MEMORY_BOX = "memory_box"  # the sidebar's slot for the recordings' memory line, refreshed when the page ends
SHARE = "share"  # this run's "Share this view" box in the sidebar, refreshed when the page ends
CHOSEN = "chosen"  # the keys whose value the person chose (not a value the app worked out)

DEFAULT_PROMPT = "I love the color black, I hope someday to have a cat like that."
DEFAULTS: dict[str, Any] = {
    PROMPT: DEFAULT_PROMPT,
    GREEDY: True,
    TEMPERATURE: 0.8,
    TOP_K: 0,
    TOP_P: 1.0,
    SEED: 0,
    MAX_NEW_TOKENS: 20,
    START_WITH_EOT: False,
    LAYER: 0,
    HEAD: 0,
    ATTN_KIND: "pattern",
    WITHOUT_FIRST: False,
    FIND_TOKEN: "",
    MLP_STAGE: "post",
    MLP_TOP_N: 32,
    STEP_TEMPERATURE: 1.0,
    STEP_TOP_K: 0,
    STEP_TOP_P: 1.0,
    ABLATE_KIND: "selected head",
    ABLATE_UNITS: "",
    ABLATE_MODE: "zero",
    ABLATE_RERUN: False,
    DISTRACTOR_TEXT: "",
    COMPARE_PROMPT: "",
    COMPARE_MODEL: "",
    PATCH_CLEAN: "When Mary and John went to the store, John gave a drink to",
    PATCH_CORRUPTED: "When Mary and John went to the store, Mary gave a drink to",
    PATCH_ANSWER: " Mary",
    PATCH_WRONG: " John",
    PATCH_SITE: "resid_pre",
    PATCH_METHOD: "both",
    LESSON_CARD: 0,
    PRESENTER: False,
    IMAGE_FORMAT: "png",
    MODEL_CHOICE: "",
    LOCAL_PATH: "",
}


# Each widget's share-link parameter, in the order a link lists them. Keys without a default (the
# value depends on the sequence: a position, a token) go into a link only once chosen.
LINKED: dict[str, str] = {
    PROMPT: "prompt", MODEL_CHOICE: "model", LAYER: "layer", HEAD: "head", ATTN_KIND: "kind",
    WITHOUT_FIRST: "without_first",
    GREEDY: "greedy", TEMPERATURE: "temperature", TOP_K: "top_k", TOP_P: "top_p", SEED: "seed",
    MAX_NEW_TOKENS: "max_new_tokens", START_WITH_EOT: "eot", STEP: "step", QUERY: "query",
    ZOOM_QUERY: "zoom_query", ZOOM_KEY: "zoom_key", FIND_TOKEN: "find", MLP_STAGE: "mlp_stage",
    MLP_TOP_N: "neurons",
    STEP_TEMPERATURE: "step_temperature", STEP_TOP_K: "step_top_k", STEP_TOP_P: "step_top_p",
    DISTRACTOR: "distractor", DISTRACTOR_TEXT: "distractor_text", ABLATE_KIND: "ablate",
    ABLATE_UNITS: "units", ABLATE_MODE: "ablate_mode", ABLATE_RERUN: "ablate_rerun", FORCED: "forced",
    COMPARE_PROMPT: "compare", COMPARE_MODEL: "compare_model", PATCH_CLEAN: "clean",
    PATCH_CORRUPTED: "corrupted", PATCH_ANSWER: "answer",
    PATCH_WRONG: "wrong", PATCH_SITE: "site", PATCH_METHOD: "method", LESSON_CARD: "card",
    PRESENTER: "presenter",
}
NOT_LINKED: dict[str, str] = {
    IMAGE_FORMAT: "how this browser saves figures, not what it shows",
    LOCAL_PATH: "a path on the teacher's machine (the link opens the default model instead)",
}


def _kept(key: str) -> str:
    return key + ".kept"


def get(key: str) -> Any:
    return st.session_state.get(_kept(key), DEFAULTS.get(key))


def put(key: str, value: Any) -> None:
    """Set a value the app worked out (a default for this sequence, a step's query)."""
    st.session_state[_kept(key)] = value
    st.session_state.setdefault(CHOSEN, set()).discard(key)


def choose(key: str, value: Any) -> None:
    """Set a value as the person's choice: it goes into share links even where it has no default."""
    st.session_state[_kept(key)] = value
    st.session_state.setdefault(CHOSEN, set()).add(key)


def chosen(key: str) -> bool:
    return key in st.session_state.get(CHOSEN, set())


def _keep(key: str) -> None:
    choose(key, st.session_state[key])


def widget(draw: Callable[..., Any], label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """`draw(label, *args, key=key, **kwargs)` (e.g. st.selectbox) showing the kept value."""
    if key not in LINKED and key not in NOT_LINKED:
        raise KeyError(f"The widget key {key!r} has no share-link parameter: add it to app.state.LINKED "
                       "(or to NOT_LINKED, saying why a link leaves it out).")
    if _kept(key) in st.session_state or key in DEFAULTS:
        st.session_state[key] = get(key)
    return draw(label, *args, key=key, on_change=_keep, args=(key,), **kwargs)


def keep_within(key: str, options: Sequence[Any], fallback: Any) -> None:
    """Before the widget on `key` is drawn: reset its value to `fallback` when it is no longer
    one of `options` (a smaller model, a shorter sequence). A key with no default (a position, a
    token of this sequence) shows `fallback` until the person chooses: a fresh visit works out the
    same value, so a share link can leave it out."""
    if get(key) not in options or (key not in DEFAULTS and not chosen(key)):
        put(key, fallback)
