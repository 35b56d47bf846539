"""The Generate page's comparison of two models that share the tokenizer on the same text."""

from __future__ import annotations

import streamlit as st

import gpt2viz
from gpt2viz.viz.surprise import comparison_figure

from . import state
from .charts import chart
from .chosen_model import model_choices, source_of
from .class_settings import class_settings
from .computations import model_comparison
from .models import CurrentModel
from .session import labels_for


def comparison_section(current: CurrentModel, ids: list[int]) -> None:
    """A picker of a second model; once one is picked, both models' surprise at every token."""
    offered = class_settings()
    others = [source_of(choice, offered) for choice in model_choices(offered) if choice]
    others = [name for name in others if name != current.source and name != current.model.name]
    if not others:
        return
    state.fit_choice(state.COMPARE_MODEL, ["", *others], "")
    second = state.widget(st.selectbox, "Compare with another model on the same text", ["", *others],
                          key=state.COMPARE_MODEL, format_func=lambda name: name or "no other model",
                          help="Both read the same tokens (they share GPT-2's tokenizer); the chart says "
                               "which expected each token more.")
    if not second:
        return
    try:
        comparison = model_comparison(current.source, second, tuple(ids))
    except (gpt2viz.LoadError, ValueError) as err:
        st.warning(f"Could not compare with {second}: {err}")
        return
    chart(st, comparison_figure, comparison, labels_for(comparison.ids), key="model_comparison")
    if len(comparison.ids) < len(ids):
        st.caption(f"Scored on the first {len(comparison.ids)} tokens: the smaller model's context.")
