"""What the pages compute from the shared model, once per process: every session reads the same
results (read-only).

Recordings go through one process-wide `RecordingStore` (`@recording`, and the finished
generations' keys and values, `store_key_values`), which keeps at most GPT2VIZ_RECORDING_BUDGET_MB
of them and drops the least recently used first; the small results derived from them use
`st.cache_resource`. Each computation runs the model in `model_turn`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import streamlit as st
import torch

import gpt2viz
from gpt2viz import GPT2, Generation, Trace
from gpt2viz.analysis import AttentionOverview, attention_overview, induction_scores
from gpt2viz.attribution import (
    DirectLogitAttribution,
    attribution_names,
    direct_logit_attribution,
    saliency,
    saliency_in_bf16,
)
from gpt2viz.budget import RecordingStore, budget_from_env
from gpt2viz.cached_step import CachedStep, cached_step, record_sequence, step_over_cache
from gpt2viz.interventions import ablate_heads, ablate_neurons
from gpt2viz.lens import LogitLens, ResidualNorms, final_choice_logits, logit_lens, residual_norms
from gpt2viz.patching import PatchingResult, activation_patching, attribution_patching
from gpt2viz.surprise import Comparison, compare_models
from gpt2viz.viz.attention import HALF_PATTERNS, attention_layer_names
from gpt2viz.viz.mlp import mlp_layer_names
from gpt2viz.viz.qkv import qkv_layer_names

from .lesson.content import Lesson
from .model_turn import model_turn
from .models import load, tokenizer
from .step_worker import take_steps

P = ParamSpec("P")
R = TypeVar("R")


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


@recording("Recording the attention layer…")
def attention_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    """One layer's q, k and float16 pattern (the Attention page; scores are rebuilt from q, k)."""
    return load(source).model.run_with_capture(list(ids), names=attention_layer_names(layer),
                                            record_as=HALF_PATTERNS, with_logits=False)


@recording("Recording the attention layer…")
def qkv_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    """One layer's q, k, v, scores, pattern, z and output in float32 (the Q·K·V page checks them)."""
    return load(source).model.run_with_capture(list(ids), names=qkv_layer_names(layer), with_logits=False)


@recording("Recording the MLP layer…")
def mlp_layer(source: str, ids: tuple[int, ...], layer: int) -> Trace:
    return load(source).model.run_with_capture(list(ids), names=mlp_layer_names(layer), with_logits=False)


@st.cache_resource(show_spinner="Running the model…", max_entries=16)
def next_token_logits(source: str, ids: tuple[int, ...]) -> torch.Tensor:
    """[vocab] the logits after the last of `ids`."""
    with model_turn():
        return load(source).model.next_token_logits(ids)


@st.cache_resource(show_spinner="Pooling every head's pattern…", max_entries=8)
def overview(source: str, ids: tuple[int, ...]) -> AttentionOverview:
    """Every head's pooled pattern and previous-token score (nothing large is kept)."""
    with model_turn():
        return attention_overview(load(source).model, ids)


@st.cache_resource(show_spinner="Measuring induction heads on repeated random tokens…", max_entries=2)
def induction(source: str) -> torch.Tensor:
    """Every head's induction score, [layer, head]: 4 random blocks of up to 50 tokens, each repeated
    (the test of the model card), shortened to fit a small context."""
    with model_turn():
        model = load(source).model
        return induction_scores(model, seq_len=min(50, (model.config.n_positions - 1) // 2))


@recording("Recording the residual stream, keys and values…")
def sequence_trace(source: str, ids: tuple[int, ...]) -> Trace:
    """The whole sequence's residual stream and every layer's keys and values (gpt2viz.cached_step)."""
    return record_sequence(load(source).model, list(ids))


@st.cache_resource(max_entries=4)
def lens_overview(source: str, ids: tuple[int, ...]) -> torch.Tensor:
    """[point, pos] the final choice's logit at every depth (gpt2viz.lens.final_choice_logits)."""
    with model_turn():
        return final_choice_logits(load(source).model, sequence_trace(source, ids))


@st.cache_resource(max_entries=4)
def sequence_norms(source: str, ids: tuple[int, ...]) -> ResidualNorms:
    return residual_norms(sequence_trace(source, ids), load(source).model.config.n_layer)


@recording("Running the step over the key/value cache…")
def inside_step(source: str, ids: tuple[int, ...], query_position: int) -> CachedStep:
    """Position `query_position` of `ids` re-run over the cache (later positions play no part:
    the recording of the whole sequence serves every step)."""
    return cached_step(load(source).model, sequence_trace(source, ids), query_position)


@recording("Reading the residual stream through the unembedding…")
def lens_at(source: str, ids: tuple[int, ...], positions: tuple[int, ...]) -> LogitLens:
    """The logit lens at the given positions only (each position costs a full unembedding per point)."""
    return logit_lens(load(source).model, sequence_trace(source, ids), positions=positions)


def store_key_values(source: str, generation: Generation) -> None:
    """A finished generation's keys and values (it was made with `retain_cache`), moved into the
    recording store under its ids: `explained_step` then runs one position over them instead of the
    whole sequence, and their memory counts against the budget, dropped first when oldest."""
    if generation.finished:
        key_values = generation.release_key_values()
        if key_values is not None:
            recordings().get(("key_values", source, tuple(generation.ids)), lambda: key_values)


@recording("Running the step…")
def explained_step(source: str, ids: tuple[int, ...], position: int) -> Trace:
    """What direct logit attribution reads at position `position` of `ids`, logits too, run alone
    over the keys and values of the positions before it: a finished generation's own
    (`store_key_values`) while the store holds them, else those of a recording of the sequence."""
    found, key_values = recordings().lookup(("key_values", source, ids))
    model = load(source).model
    if not found:
        key_values = sequence_trace(source, ids)
    names = attribution_names(model.config.n_layer)
    return step_over_cache(model, key_values, position, ids[position], names)


@st.cache_resource(show_spinner="Computing gradients × inputs…", max_entries=8)
def input_saliency(source: str, ids: tuple[int, ...], position: int, target: int,
                   distractor: int | None) -> torch.Tensor:
    with model_turn():
        return saliency(load(source).model, list(ids), position, target, distractor,
                        bf16=saliency_in_bf16(position))


def ablation_edits(model: GPT2, units: tuple[tuple[int, int], ...], kind: str, mode: str) -> dict:
    """The edits that switch off `units`, heads or neurons (ValueError for one that does not exist)."""
    ablate = ablate_heads if kind == "heads" else ablate_neurons
    return ablate(list(units), mode, config=model.config)


@st.cache_resource(max_entries=16)
def attribution(source: str, ids: tuple[int, ...], position: int, target: int,
                distractor: int | None) -> DirectLogitAttribution:
    """Direct logit attribution of one position (no model run: it reads `explained_step`)."""
    return direct_logit_attribution(load(source).model, explained_step(source, ids, position), position,
                                    target, distractor)


@st.cache_resource(show_spinner="Re-running with the ablation…", max_entries=8)
def ablated_logits(source: str, ids: tuple[int, ...], units: tuple[tuple[int, int], ...], kind: str,
                   mode: str) -> torch.Tensor:
    """[vocab] the last position's logits with `units` (heads or neurons) ablated."""
    with model_turn():
        model = load(source).model
        edits = ablation_edits(model, units, kind, mode)
        return model.next_token_logits(ids, edits)


@st.cache_resource(show_spinner="Writing the other continuation…", max_entries=8)
def continuation(source: str, ids: tuple[int, ...], settings: tuple[tuple[str, object], ...],
                 ablation: tuple[tuple[tuple[int, int], ...], str, str] | None = None,
                 first_draw: int = 0) -> list[int]:
    """Prompt + generated ids of a generation from `ids` with `settings` (and an ablation:
    (units, "heads" | "neurons", mode)), its first step drawing with the random number of step
    `first_draw` (gpt2viz.Generation). A mean ablation generates without the cache (see
    gpt2viz.interventions)."""
    model, edits, use_cache = load(source).model, None, True
    if ablation is not None:
        units, kind, mode = ablation
        edits = ablation_edits(model, units, kind, mode)
        use_cache = mode == "zero"
    branch = gpt2viz.Generation(model, tokenizer(), list(ids), record=False, edits=edits, use_cache=use_cache,
                                first_draw=first_draw, **dict(settings))
    take_steps(branch)
    return branch.ids


@st.cache_resource(show_spinner="Patching the corrupted run…", max_entries=16)
def patching(source: str, clean: tuple[int, ...], corrupted: tuple[int, ...], answer: int, wrong: int,
             site: str, method: str) -> PatchingResult:
    """One patching grid (gpt2viz.patching): "exact" runs a patched pass per cell, "attribution"
    estimates every cell from one backward pass."""
    run = activation_patching if method == "exact" else attribution_patching
    with model_turn():
        return run(load(source).model, list(clean), list(corrupted), answer, wrong, site)


@st.cache_resource(show_spinner="Scoring the text with both models…", max_entries=8)
def model_comparison(first: str, second: str, ids: tuple[int, ...]) -> Comparison:
    """Each token's probability under both models (gpt2viz.surprise.compare_models)."""
    with model_turn():
        return compare_models(load(first).model, load(second).model, ids)


def full_recording(source: str, ids: tuple[int, ...]) -> Trace:
    """Every hook point of the sequence (for a download: made when clicked, not kept)."""
    with model_turn():
        return load(source).model.run_with_capture(list(ids))


@st.cache_resource(show_spinner=False, max_entries=2)
def lesson(source: str, prompt: str) -> Lesson:
    """The lesson for this model and prompt: its numbers, computed card by card when first needed
    (in the model's turn), and kept with it. The cards' figures are built from them at each run."""
    return Lesson(load(source).model, tokenizer(), prompt, turn=model_turn)
