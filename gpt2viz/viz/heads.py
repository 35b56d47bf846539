"""Head roles: one score per (layer, head) — previous-token or induction — as a small heatmap.

The scores come from `gpt2viz.analysis`; this module only shapes them for display and builds the
figure, with the best head named and the selected head outlined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from gpt2viz.analysis import best_head


@dataclass(frozen=True)
class HeadScores:
    values: np.ndarray  # [layer, head] float32 in [0, 1]
    title: str
    best: tuple[int, int, float]  # layer, head, score


def head_score_map(scores: torch.Tensor, title: str) -> HeadScores:
    """A [layer, head] score tensor with its title and its best head."""
    if scores.dim() != 2:
        raise ValueError(f"Head scores are [layer, head]; got shape {tuple(scores.shape)}.")
    return HeadScores(scores.float().numpy().astype(np.float32), title, best_head(scores))


def head_scores_figure(s: HeadScores, selected: tuple[int, int]) -> go.Figure:
    """Layers down, heads across, every cell labelled with its score; the selected head outlined."""
    n_layer, n_head = s.values.shape
    fig = go.Figure(go.Heatmap(
        z=s.values, x=list(range(n_head)), y=list(range(n_layer)), zmin=0.0, zmax=1.0,
        colorscale="Viridis", colorbar=dict(title="score", thickness=10),
        text=[[f"{v:.2f}" for v in row] for row in s.values], texttemplate="%{text}",
        textfont=dict(size=11 if n_head <= 12 else 8),
        hovertemplate="layer %{y}, head %{x}: %{z:.3f}<extra></extra>",
    ))
    layer, head = selected
    fig.add_shape(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                  line=dict(color="#e4572e", width=3))
    fig.update_xaxes(title_text="head", dtick=1, showgrid=False, zeroline=False)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(title=s.title, height=int(min(560, max(220, 90 + 28 * n_layer))),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig
