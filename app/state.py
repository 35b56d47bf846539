"""Every session-state key the app uses, with its default and its share-link parameter. Pages
share state only through these.

A widget drawn with `widget()` has its value remembered under "<key>.remembered", which outlives
the widget: a value chosen on one page (the layer, the head, the selected step) is still chosen on
the others. Read and set these values with `get` and `put` (a value the app sets) or `choose` (a
value the person chose), never through the widget key. Every widget's key is in `LINKED` (its
share-link parameter) or in `NOT_LINKED` (why not): `widget()` refuses any other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
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
GENERATION_SERIAL = "generation_serial"  # how many generations this session has had

# Selections shared by all pages
STEP = "step"  # index of the selected generation step
LAYER = "layer"
HEAD = "head"
QUERY = "query"  # absolute position of the query token on the Q·K·V page
QUERY_STEP = "query_step"  # follow mark: the (generation serial, step index) QUERY was set for
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
STEP_SAMPLING_FOR = "step_sampling_for"  # follow mark: the generation serial these controls were set for
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
FRESH_DRAWS = "fresh_draws"  # bool: a sampled forced branch draws new random numbers, not the original's
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
LOADED = "loaded"  # app.models.CurrentModel: this run's model, loaded before the page runs
MEMORY_BOX = "memory_box"  # the sidebar's slot for the recordings' memory line, refreshed when the page ends
SHARE = "share"  # this run's "Share this view" box in the sidebar, refreshed when the page ends
CHOSEN = "chosen"  # the keys whose value the person chose (not a value the app worked out)
# Live class (app.live_class, app.class_rounds)
LEADING = "leading"  # bool: this session leads the class (its browser gave the teacher's key)
FOLLOW = "follow_teacher"  # the "Follow the teacher" switch
FOLLOWED = "followed"  # the teacher's (page, view) this session was last moved to
CLASS_SEEN = "class_seen"  # this run's read of the class: app.live_class.Seen
PUBLISHED = "published"  # the teacher's (page, view) last published to the class
KEY_REFUSED = "key_refused"  # the refusal of a wrong teacher key, shown once
TEACHER_KEY_INPUT = "teacher_key_input"  # the "Lead the class" box (emptied when sent)
GUESS_INPUT = "guess_input"  # the "Your guess for the next word" box
GUESSER = "guesser"  # a random id this session's guesses are kept under (no names)
ROUND_PROBS = "round_probs"  # the teacher's open round: (round id, the model's probabilities [vocab])

# The one module that writes each key (tests/test_state_owners.py reads the source for it). A
# widget's module owns its key; a link's values are put in place by app.share; this module keeps
# the mechanism's own keys (INTERNAL).
OWNERS: dict[str, str] = {
    **dict.fromkeys([PROMPT, EXAMPLE, START_WITH_EOT], "app.pages.generate"),
    **dict.fromkeys([MODEL_CHOICE, LOCAL_PATH, LOADED], "app.chosen_model"),
    **dict.fromkeys([GREEDY, TEMPERATURE, TOP_K, TOP_P, SEED, MAX_NEW_TOKENS], "app.sampling_controls"),
    **dict.fromkeys([GENERATION, GENERATION_SERIAL, STEP], "app.session"),
    **dict.fromkeys([LAYER, HEAD, QUERY, QUERY_STEP], "app.pickers"),
    **dict.fromkeys([ATTN_KIND, WITHOUT_FIRST, HEAD_GRID], "app.pages.attention"),
    **dict.fromkeys([MLP_STAGE, MLP_TOP_N], "app.pages.mlp"),
    **dict.fromkeys([ZOOM_QUERY, ZOOM_KEY, FIND_TOKEN, ZOOM_FOUND], "app.zoom"),
    **dict.fromkeys([STEP_TEMPERATURE, STEP_TOP_K, STEP_TOP_P, STEP_SAMPLING_FOR], "app.step_sampling"),
    **dict.fromkeys([DISTRACTOR, DISTRACTOR_TEXT, ABLATE_KIND, ABLATE_UNITS, ABLATE_MODE, ABLATE_RERUN,
                     FORCED, FRESH_DRAWS, COMPARE_PROMPT], "app.why_sections"),
    DLA_GRID: "app.pages.why",
    COMPARE_MODEL: "app.compare_models",
    **dict.fromkeys([PATCH_CLEAN, PATCH_CORRUPTED, PATCH_ANSWER, PATCH_WRONG, PATCH_SITE, PATCH_METHOD],
                    "app.pages.patching"),
    LESSON_CARD: "app.pages.lesson",
    PRESENTER: "app.presenter",
    IMAGE_FORMAT: "app.charts",
    **dict.fromkeys([LINK_READ, LINK_PENDING, SHARE], "app.share"),
    MEMORY_BOX: "app.memory",
    CHOSEN: "app.state",
    **dict.fromkeys([LEADING, FOLLOW, FOLLOWED, CLASS_SEEN, PUBLISHED, KEY_REFUSED, TEACHER_KEY_INPUT],
                    "app.live_class"),
    **dict.fromkeys([GUESS_INPUT, GUESSER, ROUND_PROBS], "app.class_rounds"),
}
INTERNAL = frozenset({CHOSEN})  # written by this module's functions only

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
    FRESH_DRAWS: False,
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
    FRESH_DRAWS: "fresh_draws",
    COMPARE_PROMPT: "compare", COMPARE_MODEL: "compare_model", PATCH_CLEAN: "clean",
    PATCH_CORRUPTED: "corrupted", PATCH_ANSWER: "answer",
    PATCH_WRONG: "wrong", PATCH_SITE: "site", PATCH_METHOD: "method", LESSON_CARD: "card_number",
    PRESENTER: "presenter",
}
NOT_LINKED: dict[str, str] = {
    IMAGE_FORMAT: "how this browser saves figures, not what it shows",
    LOCAL_PATH: "a path on the teacher's machine (the link opens the default model instead)",
    FOLLOW: "whether this browser follows the teacher, not what it shows",
}


def _remembered(key: str) -> str:
    return key + ".remembered"


def get(key: str) -> Any:
    return st.session_state.get(_remembered(key), DEFAULTS.get(key))


def put(key: str, value: Any) -> None:
    """Set a value the app worked out (a default for this sequence, a step's query)."""
    st.session_state[_remembered(key)] = value
    st.session_state.setdefault(CHOSEN, set()).discard(key)


def choose(key: str, value: Any) -> None:
    """Set a value as the person's choice: it goes into share links even where it has no default."""
    st.session_state[_remembered(key)] = value
    st.session_state.setdefault(CHOSEN, set()).add(key)


def reset(key: str) -> None:
    """Back to what a fresh visit shows: the default, or for a key without one, nothing chosen."""
    st.session_state.pop(_remembered(key), None)
    st.session_state.pop(key, None)
    st.session_state.setdefault(CHOSEN, set()).discard(key)


def chosen(key: str) -> bool:
    return key in st.session_state.get(CHOSEN, set())


def _remember(key: str) -> None:
    choose(key, st.session_state[key])


def widget(draw: Callable[..., Any], label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """`draw(label, *args, key=key, **kwargs)` (e.g. st.selectbox) showing the remembered value."""
    if key not in LINKED and key not in NOT_LINKED:
        raise KeyError(f"The widget key {key!r} has no share-link parameter: add it to app.state.LINKED "
                       "(or to NOT_LINKED, saying why a link leaves it out).")
    if _remembered(key) in st.session_state or key in DEFAULTS:
        st.session_state[key] = get(key)
    return draw(label, *args, key=key, on_change=_remember, args=(key,), **kwargs)


# Keys whose value follows the generation shown (or its selected step): when another is shown,
# their owner sets them afresh. Each group has a follow mark, the key that holds what the values
# were set for: a generation's serial, or a (serial, step index) pair.
FOLLOWERS: dict[str, tuple[tuple[str, ...], str]] = {
    QUERY_STEP: ((QUERY,), "step"),
    STEP_SAMPLING_FOR: ((STEP_TEMPERATURE, STEP_TOP_K, STEP_TOP_P), "generation"),
}


def _mark(mark_key: str, serial: int, step: int | None) -> Hashable:
    return (serial, step) if FOLLOWERS[mark_key][1] == "step" else serial


def follows(mark_key: str, serial: int, step: int | None = None) -> bool:
    """Whether the values under `mark_key` were set for generation `serial` (and `step`)."""
    return st.session_state.get(mark_key) == _mark(mark_key, serial, step)


def follow(mark_key: str, serial: int, step: int | None = None) -> None:
    """The values under `mark_key` are now set for generation `serial` (and `step`)."""
    st.session_state[mark_key] = _mark(mark_key, serial, step)


def adopt(serial: int, step: int) -> None:
    """Values a person chose before their generation existed (a link's) belong to it: every group
    of followers with a chosen value follows generation `serial` at `step`, so it is not reset."""
    for mark_key, (keys, _) in FOLLOWERS.items():
        if any(chosen(key) for key in keys):
            follow(mark_key, serial, step)


def fit_choice(key: str, options: Sequence[Any], fallback: Any) -> None:
    """Before the widget on `key` is drawn: reset its value to `fallback` when it is no longer
    one of `options` (a smaller model, a shorter sequence). A key with no default (a position, a
    token of this sequence) shows `fallback` until the person chooses: a fresh visit works out the
    same value, so a share link can leave it out."""
    if get(key) not in options or (key not in DEFAULTS and not chosen(key)):
        put(key, fallback)
