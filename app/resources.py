"""Things loaded or computed once per process and shared by every session (read-only)."""

from __future__ import annotations

import streamlit as st
import torch

import gpt2viz
from gpt2viz import GPT2, Trace
from gpt2viz.analysis import induction_scores
from gpt2viz.lens import LogitLens, ResidualNorms, logit_lens, residual_norms
from gpt2viz.step import CachedStep, cached_step, record_sequence
from gpt2viz.viz.attention import HeadGrid, head_grid
from gpt2viz.viz.mlp import MLP_NAMES
from gpt2viz.viz.qkv import QKV_NAMES

DEFAULT_SOURCE = ""  # gpt2viz.load_default_model(): $GPT2VIZ_MODEL, else gpt2, else the bundled model


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def load(source: str) -> tuple[GPT2, str | None]:
    """(model, why the default fell back to the bundled model or None). Raises gpt2viz.LoadError
    with a readable message."""
    if source == DEFAULT_SOURCE:
        return gpt2viz.load_default_model()
    return gpt2viz.load_model(source), None


@st.cache_resource
def tokenizer() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


@st.cache_resource(show_spinner="Recording the attention layers…", max_entries=4)
def attention_trace(source: str, ids: tuple[int, ...]) -> Trace:
    """q, k, v, scores, pattern, z and attention output of every layer, for one sequence."""
    return load(source)[0].run_with_capture(list(ids), names=QKV_NAMES)


@st.cache_resource(show_spinner="Recording the MLP layers…", max_entries=4)
def mlp_trace(source: str, ids: tuple[int, ...]) -> Trace:
    return load(source)[0].run_with_capture(list(ids), names=MLP_NAMES)


@st.cache_resource(max_entries=4)
def attention_grid(source: str, ids: tuple[int, ...]) -> HeadGrid:
    config = load(source)[0].config
    return head_grid(attention_trace(source, ids), config.n_layer, config.n_head)


@st.cache_resource(show_spinner="Measuring induction heads on repeated random tokens…", max_entries=2)
def induction(source: str) -> torch.Tensor:
    """Every head's induction score, [layer, head]: 4 random blocks of up to 50 tokens, each repeated
    (the test of the model card), shortened to fit a small context."""
    model = load(source)[0]
    return induction_scores(model, seq_len=min(50, (model.config.n_positions - 1) // 2))


@st.cache_resource(show_spinner="Recording the residual stream, keys and values…", max_entries=4)
def sequence_trace(source: str, ids: tuple[int, ...]) -> Trace:
    """The whole sequence's residual stream and every layer's keys and values (gpt2viz.step)."""
    return record_sequence(load(source)[0], list(ids))


@st.cache_resource(max_entries=4)
def sequence_norms(source: str, ids: tuple[int, ...]) -> ResidualNorms:
    return residual_norms(sequence_trace(source, ids), load(source)[0].config.n_layer)


@st.cache_resource(show_spinner="Running the step over the key/value cache…", max_entries=8)
def inside_step(source: str, ids: tuple[int, ...], query_position: int) -> CachedStep:
    """Position `query_position` of `ids` re-run over the cache (later positions play no part:
    the recording of the whole sequence serves every step)."""
    return cached_step(load(source)[0], sequence_trace(source, ids), query_position)


@st.cache_resource(show_spinner="Reading the residual stream through the unembedding…", max_entries=8)
def lens_at(source: str, ids: tuple[int, ...], positions: tuple[int, ...]) -> LogitLens:
    """The logit lens at the given positions only (each position costs a full unembedding per point)."""
    return logit_lens(load(source)[0], sequence_trace(source, ids), positions=positions)
