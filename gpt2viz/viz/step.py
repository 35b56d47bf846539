"""One generation step through one block: the new token's vectors, the key/value cache it reads,
its attention over the cached keys, the heads' output, and the MLP — as data, then figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz import GPT2, Trace
from gpt2viz.cached_step import CachedStep

from .candidates import CHOSEN_COLOUR, OTHER_COLOUR
from .colours import BLUE_RED
from .tokens import thinned

NEW_ROW_COLOUR = CHOSEN_COLOUR  # the cache row this step adds


def _row(x) -> np.ndarray:
    return x.detach().float().numpy().astype(np.float32)


@dataclass(frozen=True)
class StepBlock:
    """Layer `layer`, head `head` of a cached step: every vector at the step's one position."""

    layer: int
    head: int
    key_labels: list[str]  # every key position: the cached ones, then the new one
    embed: np.ndarray  # [d_model] token embedding
    pos_embed: np.ndarray  # [d_model] position embedding
    resid_pre: np.ndarray  # [d_model] entering the block
    ln1: np.ndarray  # [d_model] ln_1's output (after its weight and bias): what q, k, v are made from
    q: np.ndarray  # [d_head]
    keys: np.ndarray  # [key, d_head] the cache's rows, the new key last
    values: np.ndarray  # [key, d_head]
    scaled: np.ndarray  # [key] q·k / √d_head, as recorded
    weights: np.ndarray  # [key] softmax, as recorded
    z: np.ndarray  # [d_head] this head's weighted sum of values
    z_heads: np.ndarray  # [d_model] every head's z, concatenated
    attn_out: np.ndarray  # [d_model] W_O · z_heads + b_O
    resid_mid: np.ndarray  # [d_model] after attention is added
    mlp_pre: np.ndarray  # [d_mlp] before GELU
    mlp_post: np.ndarray  # [d_mlp] after GELU
    mlp_out: np.ndarray  # [d_model]
    resid_post: np.ndarray  # [d_model] leaving the block

    @property
    def d_head(self) -> int:
        return self.q.shape[0]

    @property
    def dots(self) -> np.ndarray:
        """[key] q·k before the division by √d_head."""
        return self.scaled * np.sqrt(self.d_head)


def step_block(model: GPT2, step: CachedStep, sequence: Trace, layer: int, head: int,
               labels: Sequence[str]) -> StepBlock:
    """Layer `layer`, head `head` of `step`, made from `sequence` (its cache held the sequence's
    keys and values before the step); `labels` name every position up to the step's."""
    t, n = step.trace, len(step.trace.ids) - 1  # the step's one position is row n (= 0)
    ln_1 = model.h[layer].ln_1  # hook_normalized is before its weight and bias
    q_pos = step.query_position
    keys = np.concatenate([_row(sequence["k", layer][:q_pos, head]), _row(t["k", layer][n:, head])])
    values = np.concatenate([_row(sequence["v", layer][:q_pos, head]), _row(t["v", layer][n:, head])])
    return StepBlock(
        layer=layer, head=head, key_labels=list(labels[: q_pos + 1]),
        embed=_row(t["embed"][n]), pos_embed=_row(t["pos_embed"][n]),
        resid_pre=_row(t["resid_pre", layer][n]),
        ln1=_row(t["normalized", layer, "ln1"][n] * ln_1.weight.detach().cpu() + ln_1.bias.detach().cpu()),
        q=_row(t["q", layer][n, head]), keys=keys, values=values,
        scaled=_row(t["attn_scores", layer][head, n]), weights=_row(t["pattern", layer][head, n]),
        z=_row(t["z", layer][n, head]), z_heads=_row(t["z", layer][n].reshape(-1)),
        attn_out=_row(t["attn_out", layer][n]), resid_mid=_row(t["resid_mid", layer][n]),
        mlp_pre=_row(t["pre", layer][n]), mlp_post=_row(t["post", layer][n]),
        mlp_out=_row(t["mlp_out", layer][n]), resid_post=_row(t["resid_post", layer][n]),
    )


def strips_figure(rows: Sequence[tuple[str, np.ndarray]], title: str, x_title: str = "component",
                  boundaries: int | None = None) -> go.Figure:
    """Vectors of one length as labelled strips, one row each, diverging colours around 0;
    `boundaries` draws a line every that many components (head slices)."""
    names = [name for name, _ in rows]
    z = np.stack([v for _, v in rows]).astype(np.float32)
    fig = go.Figure(go.Heatmap(
        z=z, y=names, x=list(range(z.shape[1])), colorscale=BLUE_RED, zmid=0.0,
        colorbar=dict(thickness=10), hovertemplate="%{y}<br>component %{x}: %{z:.4f}<extra></extra>",
    ))
    if boundaries:
        for b in range(boundaries, z.shape[1], boundaries):
            fig.add_vline(x=b - 0.5, line=dict(color="black", width=1))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=90 + 34 * len(rows), margin=dict(l=10, r=10, t=40, b=40))
    return fig


def window_rows(n_rows: int, window: int) -> range:
    """The last `window` rows of `n_rows` (all when there are fewer): the cache around the step."""
    return range(max(0, n_rows - window), n_rows)


def kv_cache_figure(matrix: np.ndarray, labels: Sequence[str], title: str, window: int = 40) -> go.Figure:
    """The cache of one head as [position × d_head]: the rows reused from earlier steps, and the
    row this step added (the last) outlined. Long caches show their last `window` rows."""
    rows = window_rows(matrix.shape[0], window)
    shown = [labels[i] for i in rows]
    fig = go.Figure(go.Heatmap(
        z=matrix[rows.start:rows.stop].astype(np.float32), y=shown, x=list(range(matrix.shape[1])),
        colorscale=BLUE_RED, zmid=0.0, colorbar=dict(thickness=10),
        hovertemplate="%{y}<br>component %{x}: %{z:.4f}<extra></extra>",
    ))
    last = len(shown) - 1
    fig.add_shape(type="rect", xref="x domain", x0=0, x1=1, y0=last - 0.5, y1=last + 0.5,
                  line=dict(color=NEW_ROW_COLOUR, width=3))
    fig.update_xaxes(title_text="d_head component")
    fig.update_yaxes(title_text="cached position", autorange="reversed", tickmode="array",
                     tickvals=thinned(shown, 20))
    fig.update_layout(title=dict(text=f"{title}<br><sup>outlined: the row this step added</sup>"),
                      height=int(min(560, 120 + 14 * len(shown))),
                      margin=dict(l=10, r=10, t=40, b=40))
    return fig


def step_scores_figure(b: StepBlock, window: int = 40) -> go.Figure:
    """The new query against every cached key: q·k, ÷ √d_head, softmax (last `window` keys)."""
    keys = window_rows(len(b.key_labels), window)
    x = [b.key_labels[i] for i in keys]
    sl = slice(keys.start, keys.stop)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("q·k", f"÷ √{b.d_head} = {np.sqrt(b.d_head):.2f}", "softmax weight"))
    for row, (values, colour, name) in enumerate(
            ((b.dots[sl], "#9fc5e8", "q·k"), (b.scaled[sl], OTHER_COLOUR, "scaled"),
             (b.weights[sl], CHOSEN_COLOUR, "weight")), start=1):
        hover = "key %{x}<br>" + name + " %{y:.4f}<extra></extra>"
        bar = go.Bar(x=x, y=values, marker_color=colour, name=name, hovertemplate=hover)
        fig.add_trace(bar, row=row, col=1)
    fig.update_xaxes(tickmode="array", tickvals=thinned(x, 30), tickangle=-60)
    fig.update_yaxes(rangemode="tozero", row=3, col=1)
    fig.update_layout(height=480, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def top_neurons_figure(b: StepBlock, n: int = 16) -> go.Figure:
    """The `n` neurons most active after GELU at this position: after (bars) and before (dots)."""
    order = np.argsort(-b.mlp_post, kind="stable")[:n]
    names = [f"n{i}" for i in order]
    fig = go.Figure([
        go.Bar(x=names, y=b.mlp_post[order], name="after GELU", marker_color=CHOSEN_COLOUR,
               hovertemplate="%{x}<br>after GELU %{y:.4f}<extra></extra>"),
        go.Scatter(x=names, y=b.mlp_pre[order], name="before GELU", mode="markers",
                   marker=dict(color="black", symbol="diamond", size=8),
                   hovertemplate="%{x}<br>before GELU %{y:.4f}<extra></extra>"),
    ])
    fig.update_xaxes(title_text=f"neuron (top {len(names)} of {b.mlp_post.shape[0]})")
    fig.update_yaxes(title_text="activation")
    fig.update_layout(title=f"Layer {b.layer} MLP at this position", height=300,
                      legend=dict(orientation="h", y=1.12), margin=dict(l=10, r=10, t=60, b=40))
    return fig


def cache_overview_figure(b: StepBlock, window: int = 40) -> go.Figure:
    """The query's softmax weight over every cached position (light even at 1,024 keys), with
    the window the detailed charts show shaded."""
    n = len(b.weights)
    shown = window_rows(n, window)
    fig = go.Figure(go.Scatter(
        x=list(range(n)), y=b.weights, mode="lines", line=dict(color=CHOSEN_COLOUR, width=1.5),
        fill="tozeroy", customdata=b.key_labels,
        hovertemplate="%{customdata}<br>weight %{y:.4f}<extra></extra>",
    ))
    fig.add_vrect(x0=shown.start - 0.5, x1=shown.stop - 0.5, fillcolor=OTHER_COLOUR, opacity=0.15,
                  line_width=0)
    fig.update_xaxes(title_text="cached position", range=[-0.5, n - 0.5])
    fig.update_yaxes(title_text="weight", rangemode="tozero")
    title = f"Where head {b.head}'s query looks across all {n} keys (shaded: the keys shown below)"
    fig.update_layout(title=title, height=220, margin=dict(l=10, r=10, t=40, b=40))
    return fig
