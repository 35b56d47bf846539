"""Attention: every head's pattern, one head in detail, and each generation step's attention."""

import streamlit as st
import torch

from app import chosen_model, session, state
from app.charts import chart
from app.computations import attention_layer, induction, overview
from app.models import tokenizer
from app.pickers import on_grid_click, pick_head, pick_layer
from app.zoom import zoom_controls
from gpt2viz.analysis import block_max
from gpt2viz.viz.attention import (
    KINDS,
    PATTERN,
    WINDOW,
    attention_heatmap_figure,
    attention_matrix,
    head_grid_figure,
    head_values,
    overview_figure,
    step_rows_figure,
    window_at,
)
from gpt2viz.viz.heads import head_score_map, head_scores_figure

KIND_LABELS = {PATTERN: "pattern (after softmax)", "scores": "scores (before softmax)"}

st.title("Attention")
st.caption("Each head of each layer decides how much every token (query, a row) draws from each "
           "earlier token (key, a column); a row's weights sum to 1. Tokens never see later "
           "tokens: those cells are masked.")
current = chosen_model.current()
ids = tuple(session.analysed_ids_or_stop(current))
labels = session.labels_for(list(ids))
config = current.model.config

layer_column, head_column, kind_column, scale_column = st.columns([1, 1, 2, 2])
layer = pick_layer(config, layer_column)
head = pick_head(config, head_column)
kind = state.widget(kind_column.radio, "Show", KINDS, key=state.ATTN_KIND, format_func=KIND_LABELS.get,
                    horizontal=True)
without_first = state.widget(
    scale_column.toggle, "Colour scale without the first token", key=state.WITHOUT_FIRST,
    disabled=kind != PATTERN,
    help="Many heads rest their attention on the first token when nothing else fits; leaving it out of the "
         "scale shows where the rest of the attention goes.")

trace = attention_layer(current.source, ids, layer)
long = len(ids) > 2 * WINDOW
left, right = st.columns([2, 3])  # the right one drawn first: the pooled grid of every head takes longer
if not long:
    with right:
        chart(st, attention_heatmap_figure, attention_matrix(trace, layer, head, kind, labels),
              without_first=without_first, key="attention_heatmap")
else:
    with right:
        window = zoom_controls(tokenizer().token_texts(list(ids)), labels)
        values = head_values(trace, layer, head, kind)  # once: the overview and the window read it
        pooled = block_max(values)
        chart(st, overview_figure, pooled, kind, f"Layer {layer}, head {head}: all {len(ids)} tokens",
              window_at(*window, len(ids)), key="attention_overview")
        st.caption(f"Each cell is the largest {kind} value of a block of positions (hover for which); "
                   "the red box is the zoom window drawn below with every token.")
summary = overview(current.source, ids)
with left:
    chart(st, head_grid_figure, summary.grid, (layer, head),
          key=state.HEAD_GRID, events=dict(on_select=on_grid_click, selection_mode="points"))
    st.caption(f"{len(ids)} tokens. Each tile keeps the largest weight of each block of cells (at most "
               "24 × 24 blocks); the big chart shows every cell" + (" of the zoom window." if long else "."))
if long:
    matrix = attention_matrix(trace, layer, head, kind, labels, window=window, values=values)
    chart(st, attention_heatmap_figure, matrix, without_first=without_first, key="attention_heatmap")

st.subheader("What each head does")
st.caption("Four standard tests give every head a score from 0 to 1, its mean attention to one kind of "
           "token. **First-token**: to the text's first token, where many GPT-2 heads rest when nothing "
           "else fits. **Previous-token**: to the token just before. **Duplicate-token**: to earlier copies "
           "of the same token. **Induction**: on random tokens repeated twice, to the token that came next "
           "the first time, which lets a model continue a pattern it has seen. The selected head is "
           "outlined.")
ROLES = {"first_token": "First-token score (this text)", "previous_token": "Previous-token score (this text)",
         "duplicate_token": "Duplicate-token score (this text)"}


def show_head_scores(scores: torch.Tensor, title: str, key: str) -> None:
    data = head_score_map(scores, title)
    chart(st, head_scores_figure, data, (layer, head), key=key)
    best_layer, best_head, best = data.best
    st.caption(f"Highest: layer {best_layer}, head {best_head} ({best:.2f}).")


if len(ids) < 2:
    st.info("The scores on this text need at least two tokens.")
scored = [(summary.roles[role], title, f"{role}_scores") for role, title in ROLES.items() if len(ids) > 1]
scored.append((induction(current.source), "Induction score (repeated random tokens)", "induction_scores"))
for start in range(0, len(scored), 2):  # two to a row
    for column, (scores, title, key) in zip(st.columns(2), scored[start:start + 2], strict=False):
        with column:
            show_head_scores(scores, title, key)
if len(ids) > 1 and not summary.roles["duplicate_token"].any():
    st.caption("No token repeats in this text, so every head's duplicate-token score is 0.")

kept = session.current(current)
if kept is not None:
    st.subheader("One generation step")
    st.caption("With a key/value cache, each step runs only the newest token: its query attends "
               "over the keys cached for every earlier position.")
    record = session.step_picker(kept)
    keys = labels[: record.attention_row.shape[2]]
    chart(st, step_rows_figure,
          record.attention_row[layer].float().numpy(), keys, layer, head,
          f"Step {record.index + 1}: query {labels[record.query_position]} → chose {record.text!r}",
          key="step_attention")
