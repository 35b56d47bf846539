"""Q · K · V: one head's attention for one query token, with the model's real numbers."""

import numpy as np
import streamlit as st

from app import state
from app.layer_head import pick_head, pick_layer
from app.model_picker import current_model
from app.resources import attention_trace
from app.sequence import analysed_ids_or_stop, labels_for
from gpt2viz.viz.qkv import head_computation, matrix_figure, score_table, scores_figure, vector_figure


def max_diff(rebuilt: np.ndarray, recorded: np.ndarray) -> float:
    finite = np.isfinite(recorded)
    return float(np.abs(rebuilt[finite] - recorded[finite]).max())


st.title("Q · K · V")
st.caption("Attention(Q, K, V) = softmax(QKᵀ/√d_head)·V for one query token, step by step with the "
           "numbers the model computed: the query is compared with every key, the scores become "
           "weights, and the weights mix the values.")
current = current_model()
ids = analysed_ids_or_stop(current)
labels = labels_for(ids)
config = current.model.config

c1, c2, c3 = st.columns([1, 1, 2])
layer = pick_layer(config, c1)
head = pick_head(config, c2)
positions = list(range(len(ids)))
state.keep_within(state.QUERY, positions, positions[-1])
query = state.widget(c3.selectbox, "Query token", positions, key=state.QUERY, format_func=labels.__getitem__,
                     help="Selecting a generation step sets this to the token whose output predicted it.")

trace = attention_trace(current.source, tuple(ids))
proj = current.model.h[layer].attn.c_proj
c = head_computation(trace, layer, head, query, proj.weight.detach().float().cpu().numpy(),
                     proj.bias.detach().float().cpu().numpy(), labels)
attn = f"blocks.{layer}.attn."

st.latex(r"\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_\mathrm{head}}}"
         r"+ M\right)V")
st.markdown(f"**1. The query** q of {labels[query]!r} (layer {layer}, head {head}, "
            f"d_head = {c.d_head}), from `{attn}hook_q`.")
st.plotly_chart(vector_figure(c.q, "q", "d_head component"), key="q_vector")
st.markdown(f"**2. The keys** K of every position (`{attn}hook_k`); keys after the query are masked.")
st.plotly_chart(matrix_figure(c.keys, c.key_labels, "K (keys)", query), key="k_matrix")
st.markdown(f"**3. Scores**: q·k for each key, ÷ √{c.d_head}, + mask (−∞ on future positions), "
            "then softmax.")
st.dataframe(score_table(c), hide_index=True, height=min(400, 40 + 35 * len(ids)))
st.plotly_chart(scores_figure(c), key="scores")
st.caption(
    f"Rebuilt vs recorded: scores `{attn}hook_attn_scores` max |Δ| = "
    f"{max_diff(c.masked, trace[attn + 'hook_attn_scores'][head, query].numpy()):.2e}; "
    f"weights `{attn}hook_pattern` max |Δ| = "
    f"{max_diff(c.weights, trace[attn + 'hook_pattern'][head, query].numpy()):.2e}."
)
st.markdown(f"**4. The values** V (`{attn}hook_v`), mixed by the weights: z = Σ weight·v.")
st.plotly_chart(matrix_figure(c.values, c.key_labels, "V (values)", query, c.weights), key="v_matrix")
st.plotly_chart(vector_figure(c.z, "z = weights · V", "d_head component"), key="z_vector")
st.caption(f"Rebuilt vs recorded `{attn}hook_z`: max |Δ| = "
           f"{max_diff(c.z, trace[attn + 'hook_z'][query, head].numpy()):.2e}.")
st.markdown(f"**5. All {config.n_head} heads' z concatenated, then projected** by W_O "
            f"(`attn.c_proj`, {config.n_embd} × {config.n_embd}) into the residual stream.")
st.plotly_chart(vector_figure(c.z_heads, "z of every head, concatenated (lines separate heads)",
                              "component", boundaries=c.d_head), key="z_heads")
st.plotly_chart(vector_figure(c.attn_out, "attention output = W_O · z + b_O", "d_model component"),
                key="attn_out")
st.caption(f"Rebuilt vs recorded `blocks.{layer}.hook_attn_out`: max |Δ| = "
           f"{max_diff(c.attn_out, trace[f'blocks.{layer}.hook_attn_out'][query].numpy()):.2e}.")
