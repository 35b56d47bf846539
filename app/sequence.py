"""The token sequence the analysis pages show: this session's generation, else the prompt."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import gpt2viz
from gpt2viz import Generation, Step
from gpt2viz.viz.tokens import token_labels

from . import state
from .model_picker import CurrentModel
from .resources import tokenizer
from .run import matches


def session_run(current: CurrentModel) -> Generation | None:
    """This session's generation, if it is for the current model and prompt."""
    run = st.session_state.get(state.RUN)
    if run is not None and run.steps and matches(run, current.model, state.get(state.PROMPT)):
        return run
    return None


def analysed_ids(current: CurrentModel) -> list[int]:
    """Prompt + generated tokens; raises gpt2viz.PromptError for a prompt that cannot run."""
    run = session_run(current)
    if run is not None:
        return run.ids
    return gpt2viz.encode_prompt(current.model, tokenizer(), state.get(state.PROMPT), reserve=0)


def analysed_ids_or_stop(current: CurrentModel) -> list[int]:
    """`analysed_ids`, or the prompt's problem shown as a warning and the page stopped."""
    try:
        return analysed_ids(current)
    except gpt2viz.PromptError as err:
        st.warning(str(err))
        st.stop()


def labels_for(ids: list[int]) -> list[str]:
    return token_labels(tokenizer().token_texts(ids))


def step_selector(run: Generation) -> Step:
    """The shared step picker (same key on every page); returns the selected step. A newly
    selected step also becomes the Q·K·V page's query (`_query_follows`)."""
    options = list(range(len(run.steps)))
    state.keep_within(state.STEP, options, options[-1])
    if len(options) == 1:
        record = run.steps[0]
    else:
        record = run.steps[state.widget(
            st.select_slider, "Generation step", options, key=state.STEP,
            format_func=lambda i: f"{i + 1}: {run.steps[i].text!r}",
        )]
    _query_follows(run, record.index)
    return record


def select_step(run: Generation, index: int) -> None:
    """Make step `index` of `run` the selected one, as the step selector does (a link opened on a
    step)."""
    state.put(state.STEP, index)
    _query_follows(run, index)


def _query_follows(run: Generation, index: int) -> None:
    """A newly selected step also becomes the Q·K·V page's query: the position that predicted its token."""
    step_key = (id(run), index)
    if state.get(state.QUERY_STEP) != step_key:
        state.put(state.QUERY_STEP, step_key)
        state.put(state.QUERY, run.steps[index].query_position)


@dataclass(frozen=True)
class Explained:
    """The position a page explains: the selected generation step's, else the prompt's last."""

    ids: list[int]  # the whole sequence (prompt + generated, or the prompt)
    position: int  # the position whose output predicts the next token
    run: Generation | None
    step: Step | None  # the selected step, None without a generation


def explained_position(current: CurrentModel) -> Explained:
    """The shared step selector's choice, or the prompt's last token when nothing was generated
    (a prompt problem is shown and stops the page)."""
    run = session_run(current)
    if run is not None:
        step = step_selector(run)
        return Explained(run.ids, step.query_position, run, step)
    ids = analysed_ids_or_stop(current)
    return Explained(ids, len(ids) - 1, None, None)
