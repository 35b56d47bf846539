"""The feed-forward layer's activations: tokens × most active neurons, before and after GELU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz import Trace, act_name

from .colours import BLUE_RED
from .tokens import thinned

PRE = "pre"  # mlp.hook_pre: before GELU (TransformerLens short names)
POST = "post"  # mlp.hook_post: after GELU
def mlp_layer_names(layer: int) -> list[str]:
    """What the MLP page records for one layer: before and after GELU."""
    return [act_name(PRE, layer), act_name(POST, layer)]


@dataclass(frozen=True)
class NeuronActivations:
    values: np.ndarray  # [token, neuron] for the selected neurons
    neurons: list[int]  # neuron indices, most active first
    token_labels: list[str]
    stage: str
    layer: int
    width: int  # all neurons in the layer (4 × d_model)


def top_neurons(post: np.ndarray, n: int) -> list[int]:
    """The `n` neurons with the highest activation after GELU on any token, highest first."""
    peak = post.max(axis=0)
    return [int(i) for i in np.argsort(-peak, kind="stable")[:n]]


def neuron_activations(
    trace: Trace, layer: int, stage: str, n: int, labels: Sequence[str]
) -> NeuronActivations:
    """The most active neurons (ranked after GELU, so both stages show the same neurons)."""
    post = trace[POST, layer].numpy()
    acts = post if stage == POST else trace[PRE, layer].numpy()
    neurons = top_neurons(post, n)
    return NeuronActivations(acts[:, neurons].astype(np.float32), neurons, list(labels[: acts.shape[0]]),
                             stage, layer, acts.shape[1])


def top_neurons_per_token(trace: Trace, layer: int, k: int, labels: Sequence[str]) -> dict[str, list]:
    """For each token, its `k` most active neurons after GELU, as table columns."""
    post = trace[POST, layer].numpy()
    order = np.argsort(-post, axis=1, kind="stable")[:, :k]
    table: dict[str, list] = {"token": list(labels[: post.shape[0]])}
    for rank in range(order.shape[1]):
        table[f"#{rank + 1}"] = [f"n{int(j)} ({post[t, j]:.2f})" for t, j in enumerate(order[:, rank])]
    return table


def neuron_heatmap_figure(a: NeuronActivations, max_ticks: int = 40) -> go.Figure:
    """Tokens down, neurons across; diverging colours centred on zero."""
    names = [f"n{i}" for i in a.neurons]
    where = "before GELU (mlp.hook_pre)" if a.stage == PRE else "after GELU (mlp.hook_post)"
    fig = go.Figure(go.Heatmap(
        z=a.values, x=names, y=a.token_labels, colorscale=BLUE_RED, zmid=0.0,
        colorbar=dict(title="activation"),
        hovertemplate="token %{y}<br>neuron %{x}<br>activation %{z:.4f}<extra></extra>",
    ))
    fig.update_xaxes(title_text=f"neuron (top {len(names)} of {a.width})", tickmode="array",
                     tickvals=thinned(names, max_ticks), tickangle=-60)
    fig.update_yaxes(title_text="token", autorange="reversed", tickmode="array",
                     tickvals=thinned(a.token_labels, max_ticks))
    fig.update_layout(title=f"Layer {a.layer} MLP, {where}",
                      height=int(min(900, max(320, 140 + 16 * len(a.token_labels)))),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig
