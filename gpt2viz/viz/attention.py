"""Attention patterns and scores: one head as a large query × key heatmap, every head as a grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz import Trace

from .tokens import thinned

PATTERN = "pattern"  # after softmax
SCORES = "scores"  # before softmax: q·k / √d_head with the causal mask
KINDS = (PATTERN, SCORES)
MASK_COLOUR = "#c8c8c8"
_SHORT = {PATTERN: "pattern", SCORES: "attn_scores"}  # TransformerLens short names


@dataclass(frozen=True)
class AttentionMatrix:
    values: np.ndarray  # [query, key] float32; NaN where masked
    masked: np.ndarray  # [query, key] bool; True where the causal mask hides the key
    query_labels: list[str]
    key_labels: list[str]
    kind: str
    title: str


def future_mask(n_query: int, n_key: int, start: int = 0) -> np.ndarray:
    """[query, key] True where key j lies after query start+i: the future the model cannot see
    (the opposite of `gpt2viz.model.causal_mask`, which is True where attention is allowed)."""
    return np.arange(n_key)[None, :] > (start + np.arange(n_query))[:, None]


def attention_matrix(
    trace: Trace, layer: int, head: int, kind: str, labels: Sequence[str]
) -> AttentionMatrix:
    """The selected head's pattern or scores over `trace`; `labels` names every key position."""
    values = trace[_SHORT[kind], layer][head].numpy().astype(np.float32)
    masked = future_mask(*values.shape, start=trace.start)
    values = np.where(masked, np.nan, values).astype(np.float32)
    q_labels = list(labels[trace.start:trace.start + values.shape[0]])
    return AttentionMatrix(values, masked, q_labels, list(labels[: values.shape[1]]), kind,
                           f"Layer {layer}, head {head}: attention {kind}")


def masked_region_path(n_query: int, n_key: int, start: int = 0) -> str:
    """SVG path (in cell-index coordinates) around the masked cells: the staircase above the
    diagonal where key j > query start+i."""
    points = [(n_key - 0.5, -0.5)]
    for i in range(n_query):
        x = min(start + i + 0.5, n_key - 0.5)
        points += [(x, i - 0.5), (x, i + 0.5)]
    points.append((n_key - 0.5, n_query - 0.5))
    return "M " + " L ".join(f"{x},{y}" for x, y in points) + " Z"


def attention_heatmap_figure(m: AttentionMatrix, max_ticks: int = 30) -> go.Figure:
    """Query rows × key columns. Masked cells are NaN in the heatmap, and a grey staircase
    drawn under it (plus a note) marks them as masked rather than zero."""
    pattern = m.kind == PATTERN
    values = go.Heatmap(
        z=m.values, x=m.key_labels, y=m.query_labels, name=m.kind,
        colorscale="Viridis" if pattern else "RdBu_r", zmid=None if pattern else 0.0,
        zmin=0.0 if pattern else None, zmax=1.0 if pattern else None,
        colorbar=dict(title="weight" if pattern else "score"),
        hovertemplate="query %{y}<br>key %{x}<br>" + m.kind + " %{z:.4f}<extra></extra>",
    )
    fig = go.Figure(values)
    if m.masked.any():
        n_query, n_key = m.masked.shape
        start = n_key - n_query  # a trace of new positions over cached keys
        fig.add_shape(type="path", path=masked_region_path(n_query, n_key, start), layer="below",
                      fillcolor=MASK_COLOUR, line=dict(width=0), name="masked")
        fig.add_annotation(
            x=1, y=1, xref="paper", yref="paper", xanchor="right", yanchor="top",
            text="grey = masked (future keys: score −∞, weight 0)", showarrow=False,
            bgcolor="rgba(255,255,255,0.85)",
        )
    fig.update_xaxes(title_text="key (attended-to token)", tickmode="array",
                     tickvals=thinned(m.key_labels, max_ticks), tickangle=-60, showgrid=False)
    fig.update_yaxes(title_text="query (attending token)", autorange="reversed", tickmode="array",
                     tickvals=thinned(m.query_labels, max_ticks), showgrid=False)
    height = int(min(900, max(360, 140 + 14 * len(m.query_labels))))
    fig.update_layout(title=m.title, height=height, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def pooled(matrix: np.ndarray, size: int) -> np.ndarray:
    """Shrink a [q, k] matrix to at most [size, size] by NaN-aware block means."""
    rows, cols = matrix.shape
    r_starts = np.linspace(0, rows, min(rows, size) + 1).astype(int)[:-1]
    c_starts = np.linspace(0, cols, min(cols, size) + 1).astype(int)[:-1]
    known = ~np.isnan(matrix)

    def block_sums(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(x, r_starts, axis=0), c_starts, axis=1)

    counts = block_sums(known.astype(np.float32))
    sums = block_sums(np.where(known, matrix, 0.0).astype(np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)


@dataclass(frozen=True)
class HeadGrid:
    image: np.ndarray  # every head's pooled pattern tiled: [layers*(tile+1)-1, heads*(tile+1)-1]
    tile: int
    n_layer: int
    n_head: int

    def centre(self, layer: int, head: int) -> tuple[float, float]:
        """(x, y) of a head's tile centre in image coordinates."""
        step = self.tile + 1
        return head * step + (self.tile - 1) / 2, layer * step + (self.tile - 1) / 2


def head_grid(trace: Trace, n_layer: int, n_head: int, tile: int = 24) -> HeadGrid:
    """All heads' patterns, each pooled to `tile` × `tile` (fewer when the sequence is shorter)."""
    first = trace["pattern", 0]
    tile = min(tile, first.shape[1], first.shape[2])
    step = tile + 1
    image = np.full((n_layer * step - 1, n_head * step - 1), np.nan, dtype=np.float32)
    for layer in range(n_layer):
        pattern = trace["pattern", layer].numpy()
        masked = future_mask(pattern.shape[1], pattern.shape[2], trace.start)
        for head in range(n_head):
            block = pooled(np.where(masked, np.nan, pattern[head]), tile)
            image[layer * step:layer * step + tile, head * step:head * step + tile] = block
    return HeadGrid(image, tile, n_layer, n_head)


def head_grid_figure(grid: HeadGrid, selected: tuple[int, int]) -> go.Figure:
    """The grid as one heatmap, a clickable marker on each tile, the selected head outlined."""
    cells = [(layer, head) for layer in range(grid.n_layer) for head in range(grid.n_head)]
    centres = [grid.centre(layer, head) for layer, head in cells]
    fig = go.Figure([
        go.Heatmap(z=grid.image, colorscale="Viridis", zmin=0.0, zmax=1.0, showscale=False,
                   hoverinfo="skip", name="patterns"),
        go.Scatter(
            x=[c[0] for c in centres], y=[c[1] for c in centres], mode="markers", name="heads",
            marker=dict(symbol="square", size=max(8, min(28, 300 // max(grid.n_layer, grid.n_head))),
                        opacity=0.01, color="white"),
            customdata=[[layer, head] for layer, head in cells],
            hovertemplate="layer %{customdata[0]}, head %{customdata[1]}<br>click to select<extra></extra>",
        ),
    ])
    x, y = grid.centre(*selected)
    half = grid.tile / 2 + 0.3
    fig.add_shape(type="rect", x0=x - half, x1=x + half, y0=y - half, y1=y + half,
                  line=dict(color="#e4572e", width=3))
    step = grid.tile + 1
    fig.update_xaxes(title_text="head", tickmode="array", showgrid=False, zeroline=False,
                     tickvals=[h * step + (grid.tile - 1) / 2 for h in range(grid.n_head)],
                     ticktext=[str(h) for h in range(grid.n_head)])
    fig.update_yaxes(title_text="layer", tickmode="array", showgrid=False, zeroline=False,
                     autorange="reversed", scaleanchor="x",
                     tickvals=[la * step + (grid.tile - 1) / 2 for la in range(grid.n_layer)],
                     ticktext=[str(la) for la in range(grid.n_layer)])
    fig.update_layout(title="Every head's pattern (click one)", clickmode="event+select",
                      dragmode=False, showlegend=False,
                      height=grid_height(grid.n_layer),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def grid_height(n_layer: int) -> int:
    """Pixels for the head grid: about 60 per layer (a 4-layer model's tiles stay readable), at
    most 800 (gpt2-xl's 48 layers)."""
    return int(min(800, max(380, 80 + 60 * n_layer)))


def step_rows_height(n_head: int) -> int:
    """Pixels for the step-rows chart: 30 per head plus the title and the slanted key labels."""
    return int(200 + 30 * n_head)


def selected_head(points: Sequence[dict]) -> tuple[int, int] | None:
    """(layer, head) from a Plotly selection event on `head_grid_figure`'s markers."""
    for point in points:
        data = point.get("customdata")
        if data is not None and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def step_rows_figure(rows: np.ndarray, key_labels: Sequence[str], layer: int, head: int,
                     title: str, max_ticks: int = 40) -> go.Figure:
    """One generation step's query over all cached keys: heads × keys for one layer, with the
    selected head's row outlined. `rows` is [head, key]."""
    heads = [f"head {h}" for h in range(rows.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=rows.astype(np.float32), x=list(key_labels), y=heads, colorscale="Viridis", zmin=0.0,
        zmax=1.0, colorbar=dict(title="weight"),
        hovertemplate="%{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
    ))
    fig.add_shape(type="rect", xref="x domain", x0=0, x1=1, y0=head - 0.5, y1=head + 0.5,
                  line=dict(color="#e4572e", width=2))
    fig.update_xaxes(title_text="cached key", tickmode="array", tickangle=-60,
                     tickvals=thinned(list(key_labels), max_ticks))
    fig.update_yaxes(title_text=f"layer {layer} head", autorange="reversed")
    fig.update_layout(title=title, height=step_rows_height(rows.shape[0]),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig
