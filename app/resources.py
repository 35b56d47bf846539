"""Things loaded or computed once per process and shared by every session (read-only).

Recordings go through one process-wide `RecordingStore` (`@recording`), which keeps at most
GPT2VIZ_RECORDING_BUDGET_MB of them and drops the least recently used first; the small results
derived from them use `st.cache_resource`.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import streamlit as st
import torch

import gpt2viz
from gpt2viz import GPT2, Trace
from gpt2viz.analysis import induction_scores
from gpt2viz.attribution import (
    DirectLogitAttribution,
    attribution_names,
    direct_logit_attribution,
    saliency,
    saliency_in_bf16,
)
from gpt2viz.budget import RecordingStore, budget_from_env
from gpt2viz.interventions import ablate_heads, ablate_neurons
from gpt2viz.lens import LogitLens, ResidualNorms, final_choice_logits, logit_lens, residual_norms
from gpt2viz.lesson import Lesson
from gpt2viz.step import CachedStep, cached_step, record_sequence
from gpt2viz.viz.attention import HALF_PATTERNS, AttentionOverview, attention_layer_names, attention_overview
from gpt2viz.viz.lesson import CardView, card_view
from gpt2viz.viz.mlp import mlp_layer_names
from gpt2viz.viz.qkv import qkv_layer_names

DEFAULT_SOURCE = ""  # gpt2viz.load_default_model(): $GPT2VIZ_MODEL, else gpt2, else the bundled model

P = ParamSpec("P")
R = TypeVar("R")
_TURN = threading.RLock()
_QUEUE = {"threads": 0}  # threads holding or waiting for the turn
_QUEUE_LOCK = threading.Lock()
_DEPTH = threading.local()  # how deep this thread is in model_turn (a computation may call another)
BUSY_SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005
BUSY_REDRAW_EVERY = 0.5  # seconds between a generation's live redraws while other sessions use the model
IDLE_SWITCH_INTERVAL = sys.getswitchinterval()
PAGE_THREAD_NICE = 10  # the scheduling priority (Linux nice) of a thread at a busy model


def below_the_event_loop() -> None:
    """Run this thread at a lower priority than the server's event loop, which carries every
    session's messages and answers the health endpoint. `model_turn` calls it when a thread comes
    to the model while another is there: with twenty sessions generating and their browsers on
    the same 2 cores, the event loop waited for a core for up to 1.4 s; with their threads at
    nice 10, for 0.65 s at most in five runs (bench/class_load.py). A session alone keeps its
    priority: niced, it let its own browser on the same machine draw ahead of it, and the first
    screen took 0.5 s longer (bench/bench_first_screen.py). Raising a thread's nice needs no
    privilege but lowering it again does, so it holds until the thread ends; Streamlit runs each
    page run in a thread of its own. Linux only: elsewhere this does nothing."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    if os.getpriority(os.PRIO_PROCESS, thread) < PAGE_THREAD_NICE:
        os.setpriority(os.PRIO_PROCESS, thread, PAGE_THREAD_NICE)


def _queue(change: int) -> int:
    """Count the threads at the model, and return the count; while several are, Python hands the
    GIL on every 1 ms instead of 5 ms. With twenty sessions generating, the server's event loop
    otherwise waited up to 1.5 s for it; with one session, the shorter interval slowed the first
    screen by ~0.5 s."""
    with _QUEUE_LOCK:  # counted and set together: two threads cannot leave it in the other's order
        _QUEUE["threads"] += change
        sys.setswitchinterval(BUSY_SWITCH_INTERVAL if _QUEUE["threads"] > 1 else IDLE_SWITCH_INTERVAL)
        return _QUEUE["threads"]


@contextmanager
def model_turn() -> Iterator[None]:
    """The process's one turn at running the model: sessions take turns, step by step, instead of
    all running at once. Twenty sessions' forward passes at once on 2 cores starved the server
    (its health endpoint stalled for over 10 s). Re-entrant: a computation may call another."""
    depth = getattr(_DEPTH, "n", 0)
    if depth == 0 and _queue(+1) > 1:  # a thread counts once, however deeply its computations nest
        below_the_event_loop()  # others are at the model too: the server is busy
    _DEPTH.n = depth + 1
    try:
        with _TURN:
            yield
    finally:
        _DEPTH.n = depth
        if depth == 0:
            _queue(-1)


def threads_at_model() -> int:
    """How many threads hold or wait for the model's turn (this one too, while it is in one)."""
    with _QUEUE_LOCK:
        return _QUEUE["threads"]


class LiveRedraw:
    """When a generation's live view is redrawn, asked between its steps: after every step while
    the session has the model to itself; at most every `busy_every` seconds while other sessions
    wait for it. Each redraw makes the browser render the page again: with twenty sessions
    generating on one machine, redrawing on every step kept some 40 tasks queued for its 2 cores,
    and the server's event loop waited behind them for up to 1.4 s (bench/class_load.py)."""

    def __init__(self, busy_every: float = BUSY_REDRAW_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._busy_every = busy_every
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and threads_at_model() > 0 and now - self._last < self._busy_every:
            return False
        self._last = now
        return True


def advance_in_turns(run: gpt2viz.Generation, until: int | None = None) -> None:
    """Advance `run` to its end, or until it has `until` steps, taking the model's turn for one
    step at a time: other sessions' steps interleave with these."""
    while not run.finished and (until is None or len(run.steps) < until):
        with model_turn():
            run.advance()


@st.cache_resource
def recordings() -> RecordingStore:
    """The process's store of recordings, GPT2VIZ_RECORDING_BUDGET_MB in size."""
    return RecordingStore(budget_from_env())


def recording(spinner: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Keep the results of the decorated function in the budgeted store, keyed by its name and
    arguments; `spinner` shows while one is computed."""
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def kept(*args: P.args, **kwargs: P.kwargs) -> R:
            key = (fn.__name__, args, tuple(sorted(kwargs.items())))
            found, value = recordings().lookup(key)
            if found:
                return value

            def compute() -> R:
                with st.spinner(spinner):
                    return fn(*args, **kwargs)
            with model_turn():  # taken before the store's per-key wait: one lock order, no deadlock
                return recordings().get(key, compute)
        return kept
    return decorate


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def load(source: str) -> tuple[GPT2, str | None]:
    """(model, why the default fell back to the bundled model or None). Raises gpt2viz.LoadError
    with a readable message. Once a model is loaded, the process's heap is settled (`settle_heap`)."""
    loaded = gpt2viz.load_default_model() if source == DEFAULT_SOURCE else (gpt2viz.load_model(source), None)
    settle_heap()
    return loaded


def settle_heap() -> None:
    """Move every object alive now (the imported libraries, the model) out of the cyclic garbage
    collector's sight with gc.freeze(). Full collections then scan only what sessions made since.
    Each one holds the GIL, and with it the server's event loop: in the 20-session bench
    (bench/class_load.py) they took up to 0.55 s each, 66 times, and the health endpoint stalled
    past 1 s; frozen, up to 0.2 s. Frozen objects are still freed when their last reference goes."""
    gc.collect()
    gc.freeze()


@st.cache_resource
def tokenizer() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


@recording("Recording the attention layer…")
def attention_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    """One layer's q, k and float16 pattern (the Attention page; scores are rebuilt from q, k)."""
    return load(source)[0].run_with_capture(list(ids), names=attention_layer_names(layer),
                                            keep_as=HALF_PATTERNS, keep_logits=False)


@recording("Recording the attention layer…")
def qkv_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    """One layer's q, k, v, scores, pattern, z and output in float32 (the Q·K·V page checks them)."""
    return load(source)[0].run_with_capture(list(ids), names=qkv_layer_names(layer), keep_logits=False)


@recording("Recording the MLP layer…")
def mlp_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    return load(source)[0].run_with_capture(list(ids), names=mlp_layer_names(layer), keep_logits=False)


@st.cache_resource(show_spinner="Running the model…", max_entries=16)
def next_token_logits(source: str, ids: tuple[int, ...]) -> torch.Tensor:
    """[vocab] the logits after the last of `ids`."""
    with model_turn():
        return load(source)[0].next_token_logits(ids)


@st.cache_resource(show_spinner="Pooling every head's pattern…", max_entries=8)
def overview(source: str, ids: tuple[int, ...]) -> AttentionOverview:
    """Every head's pooled pattern and previous-token score (nothing large is kept)."""
    with model_turn():
        return attention_overview(load(source)[0], ids)


@st.cache_resource(show_spinner="Measuring induction heads on repeated random tokens…", max_entries=2)
def induction(source: str) -> torch.Tensor:
    """Every head's induction score, [layer, head]: 4 random blocks of up to 50 tokens, each repeated
    (the test of the model card), shortened to fit a small context."""
    with model_turn():
        model = load(source)[0]
        return induction_scores(model, seq_len=min(50, (model.config.n_positions - 1) // 2))


@recording("Recording the residual stream, keys and values…")
def sequence_trace(source: str, ids: tuple[int, ...]) -> Trace:
    """The whole sequence's residual stream and every layer's keys and values (gpt2viz.step)."""
    return record_sequence(load(source)[0], list(ids))


@st.cache_resource(max_entries=4)
def lens_overview(source: str, ids: tuple[int, ...]) -> torch.Tensor:
    """[point, pos] the final choice's logit at every depth (gpt2viz.lens.final_choice_logits)."""
    with model_turn():
        return final_choice_logits(load(source)[0], sequence_trace(source, ids))


@st.cache_resource(max_entries=4)
def sequence_norms(source: str, ids: tuple[int, ...]) -> ResidualNorms:
    return residual_norms(sequence_trace(source, ids), load(source)[0].config.n_layer)


@recording("Running the step over the key/value cache…")
def inside_step(source: str, ids: tuple[int, ...], query_position: int) -> CachedStep:
    """Position `query_position` of `ids` re-run over the cache (later positions play no part:
    the recording of the whole sequence serves every step)."""
    return cached_step(load(source)[0], sequence_trace(source, ids), query_position)


@recording("Reading the residual stream through the unembedding…")
def lens_at(source: str, ids: tuple[int, ...], positions: tuple[int, ...]) -> LogitLens:
    """The logit lens at the given positions only (each position costs a full unembedding per point)."""
    return logit_lens(load(source)[0], sequence_trace(source, ids), positions=positions)


@recording("Recording what each head and MLP wrote…")
def attribution_trace(source: str, ids: tuple[int, ...]) -> Trace:
    model = load(source)[0]
    return model.run_with_capture(list(ids), names=attribution_names(model.config.n_layer))


@st.cache_resource(show_spinner="Computing gradients × inputs…", max_entries=8)
def input_saliency(source: str, ids: tuple[int, ...], position: int, target: int,
                   distractor: int | None) -> torch.Tensor:
    with model_turn():
        return saliency(load(source)[0], list(ids), position, target, distractor,
                        bf16=saliency_in_bf16(position))


def ablation_edits(model: GPT2, units: tuple[tuple[int, int], ...], kind: str, mode: str) -> dict:
    """The edits that switch off `units`, heads or neurons (ValueError for one that does not exist)."""
    ablate = ablate_heads if kind == "heads" else ablate_neurons
    return ablate(list(units), mode, config=model.config)


@st.cache_resource(max_entries=16)
def attribution(source: str, ids: tuple[int, ...], position: int, target: int,
                distractor: int | None) -> DirectLogitAttribution:
    """Direct logit attribution of one position (no model run: it reads `attribution_trace`)."""
    return direct_logit_attribution(load(source)[0], attribution_trace(source, ids), position, target,
                                    distractor)


@st.cache_resource(show_spinner="Re-running with the ablation…", max_entries=8)
def ablated_logits(source: str, ids: tuple[int, ...], units: tuple[tuple[int, int], ...], kind: str,
                   mode: str) -> torch.Tensor:
    """[vocab] the last position's logits with `units` (heads or neurons) ablated."""
    with model_turn():
        model = load(source)[0]
        edits = ablation_edits(model, units, kind, mode)
        return model.next_token_logits(ids, edits)


@st.cache_resource(show_spinner="Writing the other continuation…", max_entries=8)
def continuation(source: str, ids: tuple[int, ...], settings: tuple[tuple[str, object], ...],
                 ablation: tuple[tuple[tuple[int, int], ...], str, str] | None = None) -> list[int]:
    """Prompt + generated ids of a generation from `ids` with `settings` (and an ablation:
    (units, "heads" | "neurons", mode)). A mean ablation generates without the cache (see
    gpt2viz.interventions)."""
    model, edits, use_cache = load(source)[0], None, True
    if ablation is not None:
        units, kind, mode = ablation
        edits = ablation_edits(model, units, kind, mode)
        use_cache = mode == "zero"
    g = gpt2viz.Generation(model, tokenizer(), list(ids), record=False, edits=edits, use_cache=use_cache,
                           **dict(settings))
    advance_in_turns(g)
    return g.ids


@st.cache_resource(show_spinner=False, max_entries=2)
def lesson(source: str, prompt: str) -> Lesson:
    """The lesson for this model and prompt; it runs the model lazily, card by card."""
    return Lesson(load(source)[0], tokenizer(), prompt)


@st.cache_resource(show_spinner="Running the model for the lesson…", max_entries=64)
def lesson_card(source: str, prompt: str, card_id: str) -> CardView:
    """One lesson card's numbers, figure and note for this model and prompt."""
    with model_turn():  # the lesson's recordings are made here, when a card first needs them
        return card_view(lesson(source, prompt), card_id)
