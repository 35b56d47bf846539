"""Attention patterns and scores: one head as a large query × key heatmap (at long contexts a
max-pooled overview of the whole pattern plus a labelled zoom window), every head as a grid.

What the Attention page records is one layer at a time (`attention_layer_names`), the patterns
in float16 (`HALF_PATTERNS`); a head's scores are recomputed from its q and k on demand, and the
head grid comes from `gpt2viz.analysis.attention_overview`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz import Trace, act_name
from gpt2viz.analysis import HeadGrid, Overview
from gpt2viz.model import attention_scores, causal_mask

from .colours import BLUE_RED
from .tokens import thinned

PATTERN = "pattern"  # after softmax
SCORES = "scores"  # before softmax: q·k / √d_head with the causal mask
KINDS = (PATTERN, SCORES)
MASK_COLOUR = "#c8c8c8"
MASK_NOTE = "grey = masked (future keys: score −∞, weight 0)"
WINDOW = 64  # positions per side of the labelled zoom window at long contexts
HALF_PATTERNS = {act_name("pattern", "*"): lambda t: t.half()}  # Recorder record_as: display precision


def attention_layer_names(layer: int) -> list[str]:
    """What the Attention page records for one layer: q and k (for the scores) and the pattern."""
    return [act_name(short, layer) for short in ("q", "k", "pattern")]


def scores_from_qk(trace: Trace, layer: int, head: int) -> np.ndarray:
    """[query, key] q·k / √d_head of one head, recomputed from the recorded hook_q and hook_k of a
    whole-sequence trace (start 0) by the model's own `attention_scores`; float32, −inf on the
    keys after the query."""
    if trace.start != 0:
        raise ValueError("Scores are rebuilt from q and k of every position: record the whole sequence "
                         "(start 0), not a step over a key/value cache.")
    q = trace["q", layer][None, :, head:head + 1].float()  # [1, pos, 1, d_head]
    k = trace["k", layer][None, :, head:head + 1].float()  # [1, pos, 1, d_head]
    allowed = causal_mask(0, q.shape[1], q.device)[None]  # [1, pos, pos]
    return attention_scores(q, k, allowed)[0, 0].numpy()  # [query, key], −inf on future keys


@dataclass(frozen=True)
class AttentionMatrix:
    values: np.ndarray  # [query, key] float32; NaN where masked
    masked: np.ndarray  # [query, key] bool; True where the causal mask hides the key
    query_labels: list[str]
    key_labels: list[str]
    kind: str
    title: str
    query_offset: int = 0  # position of the first query minus that of the first key
    first_key: int = 0  # position of the first key column


def future_mask(n_query: int, n_key: int, start: int = 0) -> np.ndarray:
    """[query, key] True where key j lies after query start+i: the future the model cannot see
    (the opposite of `gpt2viz.model.causal_mask`, which is True where attention is allowed)."""
    return np.arange(n_key)[None, :] > (start + np.arange(n_query))[:, None]


def head_values(trace: Trace, layer: int, head: int, kind: str) -> np.ndarray:
    """[query, key] float32 pattern (recorded) or scores (rebuilt from q and k) of one head, NaN
    where the causal mask hides the key."""
    if kind == PATTERN:
        values = trace["pattern", layer][head].float().numpy()
    else:
        values = scores_from_qk(trace, layer, head)
    return np.where(future_mask(*values.shape, start=trace.start), np.nan, values).astype(np.float32)


def attention_matrix(
    trace: Trace, layer: int, head: int, kind: str, labels: Sequence[str],
    window: tuple[int, int] | None = None, values: np.ndarray | None = None,
) -> AttentionMatrix:
    """The selected head's pattern or scores over `trace`; `labels` names every key position.
    `window` = (first query, first key) shows only `WINDOW` × `WINDOW` positions from there.
    `values`: `head_values` of the same head and kind, when the caller already has them."""
    values = head_values(trace, layer, head, kind) if values is None else values
    q0, k0 = trace.start, 0
    title = f"Layer {layer}, head {head}: attention {kind}"
    if window is not None:
        rows, cols = window_at(*window, values.shape[0])
        values = values[rows.start - trace.start:rows.stop - trace.start, cols.start:cols.stop]
        q0, k0 = rows.start, cols.start
        title += f" (queries {rows.start}–{rows.stop - 1}, keys {cols.start}–{cols.stop - 1})"
    masked = np.isnan(values) & future_mask(*values.shape, start=q0 - k0)
    q_labels = list(labels[q0:q0 + values.shape[0]])
    return AttentionMatrix(values, masked, q_labels, list(labels[k0:k0 + values.shape[1]]), kind, title,
                           q0 - k0, k0)


def weight_scale_top(m: AttentionMatrix, without_first: bool) -> float:
    """The top of a pattern's colour scale: 1, or with `without_first` the largest weight on any
    key but the sequence's first, so that a head that rests its attention there does not leave
    every other cell dark (the first token's own cells then saturate)."""
    if not without_first or m.first_key > 0 or m.values.shape[1] < 2:
        return 1.0
    rest = m.values[:, 1:]
    top = float(np.nanmax(rest)) if np.isfinite(rest).any() else 0.0
    return top if top > 0 else 1.0


def window_at(first_query: int, first_key: int, n: int, size: int = WINDOW) -> tuple[range, range]:
    """(query rows, key columns) of a zoom window of at most size × size over n positions,
    moved back inside the sequence when it would run past the end."""
    def span(first: int) -> range:
        start = max(0, min(first, n - size))
        return range(start, min(n, start + size))

    return span(first_query), span(first_key)


def window_around(position: int, n: int, size: int = WINDOW) -> tuple[int, int]:
    """(first query, first key) of the window whose bottom row is `position` (or as near as
    fits): that token's attention to the `size` positions up to it."""
    first = max(0, min(position - size + 1, n - size))
    return first, first


def find_positions(texts: Sequence[str], query: str) -> list[int]:
    """Positions whose token text contains `query` (case-insensitive; surrounding spaces of the
    query are ignored, so "cat" finds " cat")."""
    needle = query.strip().lower()
    if not needle:
        return []
    return [i for i, text in enumerate(texts) if needle in text.lower()]


def overview_figure(o: Overview, kind: str, title: str,
                    window: tuple[range, range] | None = None) -> go.Figure:
    """The pooled matrix over position axes (hover gives each block's positions); `window`
    outlines the zoom window."""
    pattern = kind == PATTERN
    row_ends = np.append(o.row_starts[1:], o.n_rows) - 1
    col_ends = np.append(o.col_starts[1:], o.n_cols) - 1
    custom = np.stack(np.broadcast_arrays(o.row_starts[:, None], row_ends[:, None],
                                          o.col_starts[None, :], col_ends[None, :]), axis=-1)
    fig = go.Figure(go.Heatmap(
        z=o.values, x=o.col_starts, y=o.row_starts, customdata=custom, name=kind,
        colorscale="Viridis" if pattern else BLUE_RED, zmid=None if pattern else 0.0,
        zmin=0.0 if pattern else None, zmax=1.0 if pattern else None,
        colorbar=dict(title="max weight" if pattern else "max score"),
        hovertemplate="queries %{customdata[0]}–%{customdata[1]}<br>keys %{customdata[2]}–"
                      "%{customdata[3]}<br>max " + kind + " %{z:.4f}<extra></extra>",
    ))
    if window is not None:
        rows, cols = window
        fig.add_shape(type="rect", x0=cols.start - 0.5, x1=cols.stop - 0.5, y0=rows.start - 0.5,
                      y1=rows.stop - 0.5, line=dict(color="#e4572e", width=2), name="zoom window")
    fig.update_xaxes(title_text="key position", showgrid=False)
    fig.update_yaxes(title_text="query position", autorange="reversed", showgrid=False)
    fig.update_layout(title=title, height=560, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def masked_region_path(n_query: int, n_key: int, start: int = 0) -> str:
    """SVG path (in cell-index coordinates) around the masked cells: the staircase above the
    diagonal where key j > query start+i."""
    points = [(n_key - 0.5, -0.5)]
    for i in range(n_query):
        x = min(max(start + i + 0.5, -0.5), n_key - 0.5)
        points += [(x, i - 0.5), (x, i + 0.5)]
    points.append((n_key - 0.5, n_query - 0.5))
    return "M " + " L ".join(f"{x},{y}" for x, y in points) + " Z"


def attention_heatmap_figure(m: AttentionMatrix, max_ticks: int = 30,
                             without_first: bool = False) -> go.Figure:
    """Query rows × key columns. Masked cells are NaN in the heatmap, and a grey staircase
    drawn under it (and a note under the title) marks them as masked rather than zero. A pattern's
    colour scale may leave the first token out (`weight_scale_top`)."""
    pattern = m.kind == PATTERN
    top = weight_scale_top(m, without_first) if pattern else None
    values = go.Heatmap(
        z=m.values, x=m.key_labels, y=m.query_labels, name=m.kind,
        colorscale="Viridis" if pattern else BLUE_RED, zmid=None if pattern else 0.0,
        zmin=0.0 if pattern else None, zmax=top,
        colorbar=dict(title="weight" if pattern else "score"),
        hovertemplate="query %{y}<br>key %{x}<br>" + m.kind + " %{z:.4f}<extra></extra>",
    )
    fig = go.Figure(values)
    title = m.title
    if top is not None and top < 1.0:
        title += f"<br><sup>Colour scale up to {top:.2f}, the largest weight on any other token: the first "
        title += "token's cells are brighter than the scale shows</sup>"
    if m.masked.any():
        n_query, n_key = m.masked.shape
        fig.add_shape(type="path", path=masked_region_path(n_query, n_key, m.query_offset), layer="below",
                      fillcolor=MASK_COLOUR, line=dict(width=0), name="masked")
        title += f"<br><sup>{MASK_NOTE}</sup>"  # under the title: a note on the plot would hide cells
    fig.update_xaxes(title_text="key (attended-to token)", tickmode="array",
                     tickvals=thinned(m.key_labels, max_ticks), tickangle=-60, showgrid=False)
    fig.update_yaxes(title_text="query (attending token)", autorange="reversed", tickmode="array",
                     tickvals=thinned(m.query_labels, max_ticks), showgrid=False)
    height = int(min(900, max(360, 140 + 14 * len(m.query_labels))))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=70, b=10))
    return fig


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
    # constrain="domain": the square grid narrows its axis, so the layer labels stay beside the tiles
    fig.update_xaxes(title_text="head", tickmode="array", showgrid=False, zeroline=False, constrain="domain",
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
