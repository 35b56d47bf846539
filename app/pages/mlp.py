"""MLP: the feed-forward layer's neurons, before and after GELU."""

import streamlit as st

from app import chosen_model, session, state
from app.charts import chart
from app.computations import mlp_layer
from app.pickers import pick_layer
from gpt2viz.viz.mlp import POST, PRE, neuron_activations, neuron_heatmap_figure, top_neurons_per_token

STAGES = {PRE: "before GELU (hook_pre)", POST: "after GELU (hook_post)"}

st.title("MLP")
current = chosen_model.current()
config = current.model.config
width = config.d_mlp // config.n_embd
st.caption(f"After attention, each token goes alone through a feed-forward layer {width}× "
           f"wider than the model ({config.d_mlp} neurons): a linear map, the GELU non-linearity, "
           "and a map back. Here are the neurons that fire most.")
ids = session.analysed_ids_or_stop(current)
labels = session.labels_for(ids)

layer_column, stage_column, count_column = st.columns([1, 2, 2])
layer = pick_layer(config, layer_column)
stage = state.widget(stage_column.radio, "Activations", list(STAGES), key=state.MLP_STAGE,
                     format_func=STAGES.get, horizontal=True)
most = min(128, config.d_mlp)
state.fit_choice(state.MLP_TOP_N, range(4, most + 1), min(32, most))
top_n = state.widget(count_column.slider, "Neurons shown", 4, most, key=state.MLP_TOP_N)

trace = mlp_layer(current.source, tuple(ids), layer)
chart(st, neuron_heatmap_figure, neuron_activations(trace, layer, stage, top_n, labels), key="mlp_heatmap")
st.markdown("**Top neurons per token** (after GELU)")
st.dataframe(top_neurons_per_token(trace, layer, 5, labels), hide_index=True)
