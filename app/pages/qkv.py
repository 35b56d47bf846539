"""Q · K · V: one head's attention for one query token, with the model's real numbers."""

import streamlit as st

from app import chosen_model, session
from app.charts import chart
from app.computations import qkv_layer
from app.pickers import pick_head, pick_layer, pick_query
from gpt2viz import act_name
from gpt2viz.viz.qkv import (
    HALF_WIDTH_KEYS,
    HeadComputation,
    head_computation,
    key_window,
    matrix_figure,
    score_table,
    scores_figure,
    strongest_keys,
    vector_figure,
)


def check_caption(computed: HeadComputation, *hooks: str) -> None:
    """One caption with the rebuilt-vs-recorded difference at each of `hooks`."""
    found = {check.hook: check.max_diff for check in computed.checks}
    st.caption("Rebuilt vs recorded: " + "; ".join(f"`{h}` max |Δ| = {found[h]:.2e}" for h in hooks) + ".")


st.title("Q · K · V")
st.caption("Attention(Q, K, V) = softmax(QKᵀ/√d_head)·V for one query token, step by step with the "
           "numbers the model computed: the query is compared with every key, the scores become "
           "weights, and the weights mix the values.")
st.latex(r"\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_\mathrm{head}}}"
         r"+ M\right)V")
current = chosen_model.current()
ids = session.analysed_ids_or_stop(current)
labels = session.labels_for(ids)
config = current.model.config

layer_column, head_column, query_column = st.columns([1, 1, 2])
layer = pick_layer(config, layer_column)
head = pick_head(config, head_column)
query = pick_query(session.current(current), labels, query_column)

computed = head_computation(current.model, qkv_layer(current.source, tuple(ids), layer), layer, head, query,
                            labels)

left, right = st.columns(2)
with left:
    st.markdown(f"**1. The query** q of {labels[query]!r} (layer {layer}, head {head}, "
                f"d_head = {computed.d_head}), from `{act_name('q', layer)}`.")
    chart(st, vector_figure, computed.q, "q", "d_head component", key="q_vector")
with right:
    st.markdown(f"**2. The keys** K of every position (`{act_name('k', layer)}`); keys after the query "
                "are masked.")
    chart(st, matrix_figure, computed.keys, computed.key_labels, "K (keys)", query, key="k_matrix")
st.markdown(f"**3. Scores**: q·k for each key, ÷ √{computed.d_head}, + mask (−∞ on future positions), "
            "then softmax.")
numbers = {name: st.column_config.NumberColumn(format="%.5f") for name in ("q·k", "÷√d_head", "softmax")}
columns = {**numbers, "+ mask": st.column_config.TextColumn(alignment="right")}
shown = key_window(len(ids), query)
if len(ids) <= HALF_WIDTH_KEYS:  # the table and the chart side by side
    left, right = st.columns(2)
    left.dataframe(score_table(computed), hide_index=True, height=min(560, 38 + 35 * len(ids)),
                   column_config=columns)
    chart(right, scores_figure, computed, key="scores")
else:  # the chart across the page, so that its keys' labels have room; then the table of every key
    chart(st, scores_figure, computed, key="scores")
    if len(shown) < len(ids):
        strongest = ", ".join(f"{computed.key_labels[i]} ({computed.weights[i]:.3f})"
                              for i in strongest_keys(computed.weights))
        st.caption(f"The bars show {len(shown)} of the {len(ids):,} keys; the line above them shows every "
                   f"key's weight. Strongest keys: {strongest}. The table below lists every key.")
    st.dataframe(score_table(computed), hide_index=True, height=min(420, 38 + 35 * len(ids)),
                 column_config=columns)
check_caption(computed, act_name("attn_scores", layer), act_name("pattern", layer))
left, right = st.columns(2)
with left:
    st.markdown(f"**4. The values** V (`{act_name('v', layer)}`), mixed by the weights: z = Σ weight·v.")
    chart(st, matrix_figure, computed.values, computed.key_labels, "V (values)", query, computed.weights,
          key="v_matrix")
with right:
    st.markdown("**The result** for this head:")
    chart(st, vector_figure, computed.z, "z = weights · V", "d_head component", key="z_vector")
    check_caption(computed, act_name("z", layer))
st.markdown(f"**5. All {config.n_head} heads' z concatenated, then projected** by W_O "
            f"(`attn.c_proj`, {config.n_embd} × {config.n_embd}) into the residual stream.")
left, right = st.columns(2)
chart(left, vector_figure, computed.z_heads, "z of every head (lines separate heads)", "component",
      boundaries=computed.d_head, key="z_heads")
with right:
    chart(st, vector_figure, computed.attn_out, "attention output = W_O · z + b_O", "d_model component",
          key="attn_out")
    check_caption(computed, act_name("attn_out", layer))
