"""One attention head's computation for one query, rebuilt from the recorded q, k and v:
softmax(q·Kᵀ/√d_head + mask)·V = z, then all heads' z concatenated and projected by W_O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz import GPT2, Trace, act_name

from .attention import MASK_COLOUR, WINDOW, window_around
from .colours import BLUE_RED
from .tokens import thinned


def qkv_layer_names(layer: int) -> list[str]:
    """What `head_computation` reads for one layer."""
    return [act_name(short, layer) for short in ("q", "k", "v", "attn_scores", "pattern", "z", "attn_out")]


@dataclass(frozen=True)
class Check:
    """A rebuilt stage against what the model recorded at that hook point."""

    hook: str  # the full hook name
    max_diff: float  # max |rebuilt − recorded| over the finite entries


@dataclass(frozen=True)
class HeadComputation:
    layer: int
    head: int
    query: int  # absolute position of the query token
    key_labels: list[str]  # every key position, future ones included
    q: np.ndarray  # [d_head]
    keys: np.ndarray  # [key, d_head]
    values: np.ndarray  # [key, d_head]
    dots: np.ndarray  # [key] q·k
    scaled: np.ndarray  # [key] q·k / √d_head
    masked: np.ndarray  # [key] scaled, −∞ on future keys
    weights: np.ndarray  # [key] softmax(masked)
    z: np.ndarray  # [d_head] weights · values
    z_heads: np.ndarray  # [n_embd] every head's z at this query, concatenated
    attn_out: np.ndarray  # [n_embd] W_O · z_heads + b_O
    checks: list[Check]  # scores, pattern, z and attention output, rebuilt vs recorded

    @property
    def d_head(self) -> int:
        return self.q.shape[0]


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64 (−inf entries get weight 0)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _max_diff(rebuilt: np.ndarray, recorded: np.ndarray) -> float:
    finite = np.isfinite(recorded)
    return float(np.abs(rebuilt[finite] - recorded[finite]).max())


def head_computation(model: GPT2, trace: Trace, layer: int, head: int, query: int,
                     labels: Sequence[str]) -> HeadComputation:
    """Rebuild every stage from `trace`'s hook_q/k/v (a full-sequence trace, start 0) and the
    layer's output projection, and check each against what the model recorded.

    `labels` name every position.
    """
    q_all = trace["q", layer].numpy().astype(np.float64)  # [pos, head, d_head]
    k_all = trace["k", layer].numpy().astype(np.float64)
    v_all = trace["v", layer].numpy().astype(np.float64)
    n_key, d_head = k_all.shape[0], k_all.shape[2]
    future = np.arange(n_key) > query
    # All heads at once: [head, key]; the chosen head is one row of it.
    dots = np.einsum("hd,khd->hk", q_all[query], k_all)
    scaled = dots / np.sqrt(d_head)
    masked = np.where(future[None, :], -np.inf, scaled)
    weights = softmax(masked)
    z_heads = np.einsum("hk,khd->hd", weights, v_all)  # [head, d_head]
    z_concat = z_heads.reshape(-1)
    proj = model.h[layer].attn.c_proj  # nn.Linear: weight [out = d_model, in = head·d_head]
    w_o = proj.weight.detach().cpu().double().numpy()
    attn_out = w_o @ z_concat + proj.bias.detach().cpu().double().numpy()
    recorded = {  # short name -> (rebuilt, recorded) for this head and query
        "attn_scores": (masked[head], trace["attn_scores", layer][head, query]),
        "pattern": (weights[head], trace["pattern", layer][head, query]),
        "z": (z_heads[head], trace["z", layer][query, head]),
        "attn_out": (attn_out, trace["attn_out", layer][query]),
    }
    checks = [Check(act_name(short, layer), _max_diff(rebuilt, rec.numpy()))
              for short, (rebuilt, rec) in recorded.items()]
    return HeadComputation(
        layer, head, query, list(labels[:n_key]), q_all[query, head], k_all[:, head], v_all[:, head],
        dots[head], scaled[head], masked[head], weights[head], z_heads[head], z_concat, attn_out, checks,
    )


def score_table(c: HeadComputation) -> dict[str, list]:
    """Per key, each stage's number: the table the page shows. The "+ mask" column is text
    (numbers and −∞), so that every column holds one type."""
    def fmt(x: float) -> str:
        return "−∞" if np.isneginf(x) else f"{x:.5f}"

    return {
        "key": c.key_labels,
        "q·k": [round(float(x), 5) for x in c.dots],
        "÷√d_head": [round(float(x), 5) for x in c.scaled],
        "+ mask": [fmt(x) for x in c.masked],
        "softmax": [round(float(x), 5) for x in c.weights],
    }


def vector_figure(values: np.ndarray, title: str, x_title: str, boundaries: int | None = None) -> go.Figure:
    """A vector as a one-row heatmap; `boundaries` draws a line every that many components."""
    fig = go.Figure(go.Heatmap(
        z=values[None, :].astype(np.float32), x=list(range(values.shape[0])), y=[""], colorscale=BLUE_RED,
        zmid=0.0, colorbar=dict(thickness=10), hovertemplate="component %{x}: %{z:.4f}<extra></extra>",
    ))
    if boundaries:
        for b in range(boundaries, values.shape[0], boundaries):
            fig.add_vline(x=b - 0.5, line=dict(color="black", width=1))
    fig.update_xaxes(title_text=x_title)
    fig.update_layout(title=title, height=170, margin=dict(l=10, r=10, t=40, b=40))
    return fig


def matrix_figure(matrix: np.ndarray, row_labels: Sequence[str], title: str, query: int,
                  weights: np.ndarray | None = None, max_ticks: int = 40) -> go.Figure:
    """Keys or values [key, d_head] as a heatmap; rows after the query are greyed (masked).
    With `weights`, each row's hover also shows the softmax weight it gets."""
    rows = list(row_labels)
    future = np.arange(len(rows)) > query
    extra = "" if weights is None else "<br>weight %{customdata:.4f}"
    # float32 throughout: at 1,024 keys a [key, d_head] array is 256 KB as float32, twice as float64
    custom = None if weights is None else np.repeat(weights[:, None].astype(np.float32), matrix.shape[1], 1)
    fig = go.Figure([
        go.Heatmap(z=np.where(future[:, None], np.nan, matrix).astype(np.float32), y=rows,
                   x=list(range(matrix.shape[1])), colorscale=BLUE_RED, zmid=0.0, customdata=custom,
                   colorbar=dict(thickness=10),
                   hovertemplate="%{y}<br>component %{x}: %{z:.4f}" + extra + "<extra></extra>"),
        go.Heatmap(z=np.broadcast_to(np.where(future, 1.0, np.nan).astype(np.float32)[:, None], matrix.shape),
                   y=rows, x=list(range(matrix.shape[1])), showscale=False,
                   colorscale=[[0, MASK_COLOUR], [1, MASK_COLOUR]],
                   hovertemplate="%{y}: after the query, masked<extra></extra>"),
    ])
    fig.update_xaxes(title_text="d_head component")
    fig.update_yaxes(title_text="key position", autorange="reversed", tickmode="array",
                     tickvals=thinned(rows, max_ticks))
    fig.update_layout(title=title, height=int(min(600, max(220, 100 + 16 * len(rows)))),
                      margin=dict(l=10, r=10, t=40, b=40))
    return fig


HALF_WIDTH_KEYS = 24  # keys whose labels (slanted) fit a scores chart half the page wide


def key_window(n_keys: int, query: int, size: int = WINDOW) -> range:
    """The keys the scores chart draws one by one: all of them up to 2 × `size`, else the `size`
    keys ending at the query (from key 0 for an early query), as the Attention page's window."""
    if n_keys <= 2 * size:
        return range(n_keys)
    first, _ = window_around(query, n_keys, size)
    return range(first, first + size)


def strongest_keys(weights: np.ndarray, k: int = 3) -> list[int]:
    """The `k` key positions with the largest softmax weight, largest first (earlier on a tie)."""
    order = sorted(range(len(weights)), key=lambda i: (-float(weights[i]), i))
    return [i for i in order[:k] if weights[i] > 0]


def scores_figure(c: HeadComputation, size: int = WINDOW) -> go.Figure:
    """The scaled scores q·k/√d_head per key (masked keys as grey −∞ markers) and their softmax
    weights, one labelled bar per key. Past 2 × `size` keys only the `key_window` is drawn so,
    under a line of every key's weight with that window shaded and the strongest keys marked;
    the title says which keys are shown."""
    n = len(c.key_labels)
    shown = key_window(n, c.query, size)
    keys = c.key_labels[shown.start:shown.stop]
    scaled, weights = c.scaled[shown.start:shown.stop], c.weights[shown.start:shown.stop]
    future = np.isneginf(c.masked[shown.start:shown.stop])
    long = len(shown) < n
    titles = ("scaled score q·k/√d_head (+ mask)", "softmax weight")
    if long:
        titles = ("softmax weight of every key, by position (shaded: the keys drawn below)", *titles)
    fig = make_subplots(rows=len(titles), cols=1, vertical_spacing=0.1 if long else 0.08,
                        shared_xaxes=not long, subplot_titles=titles,
                        row_heights=[0.26, 0.37, 0.37] if long else None)
    top = 2 if long else 1  # the row of the scores
    fig.add_trace(go.Bar(x=keys, y=np.where(future, np.nan, scaled), name="q·k/√d",
                         marker_color="#6fa8dc", hovertemplate="key %{x}<br>score %{y:.4f}<extra></extra>"),
                  row=top, col=1)
    fig.add_trace(go.Scatter(x=[k for k, f in zip(keys, future, strict=True) if f],
                             y=[0.0] * int(future.sum()), mode="markers+text", text="−∞",
                             textposition="top center", name="masked (−∞)",
                             marker=dict(color=MASK_COLOUR, symbol="x", size=9),
                             hovertemplate="key %{x}: masked, −∞<extra></extra>"),
                  row=top, col=1)
    fig.add_trace(go.Bar(x=keys, y=weights, name="softmax", marker_color="#e4572e",
                         hovertemplate="key %{x}<br>weight %{y:.4f}<extra></extra>"),
                  row=top + 1, col=1)
    # Every key of the window gets its label, upright; a few keys' labels slant.
    few = len(keys) <= HALF_WIDTH_KEYS
    ticks, angle, font = (keys, -60, None) if few else (thinned(keys, size), -90, dict(size=10))
    for row in (top, top + 1):
        fig.update_xaxes(type="category", tickmode="array", tickvals=ticks, tickangle=angle, tickfont=font,
                         row=row, col=1)
    if long:  # the score and weight rows share their keys; only the lower one is labelled
        fig.update_xaxes(matches="x3", showticklabels=False, row=top, col=1)
    fig.update_xaxes(title_text="key position", row=top + 1, col=1)
    fig.update_yaxes(title_text="score", row=top, col=1)
    fig.update_yaxes(title_text="weight", rangemode="tozero", row=top + 1, col=1)
    if long:
        _overview(fig, c, shown)
        later = n - 1 - c.query
        masked = ("" if not later else "; the key after the query is masked" if later == 1
                  else f"; the {later:,} keys after the query are masked")
        title = (f"Keys {shown.start}–{shown.stop - 1} of {n:,}: the {len(shown)} up to the query "
                 f"{c.key_labels[c.query]}{masked}")
    else:
        title = f"All {n} keys of the query {c.key_labels[c.query]}"
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=720 if long else 540,
                      showlegend=False, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def _overview(fig: go.Figure, c: HeadComputation, shown: range) -> None:
    """Row 1: every visible key's weight as a line over positions, the window shaded, the keys
    after the query greyed and the strongest keys marked with their label and weight."""
    n = len(c.key_labels)
    visible = np.arange(c.query + 1)
    fig.add_trace(go.Scatter(x=visible, y=c.weights[: c.query + 1].astype(np.float32), mode="lines",
                             line=dict(color="#e4572e", width=1), fill="tozeroy", name="every key",
                             customdata=c.key_labels[: c.query + 1],
                             hovertemplate="key %{customdata}<br>weight %{y:.4f}<extra></extra>"),
                  row=1, col=1)
    best = strongest_keys(c.weights)
    # A label for each strongest key not next to a stronger one (they would overlap), on the side
    # of its point that has room.
    labelled: list[int] = []
    for i in best:
        if all(abs(i - j) > n / 12 for j in labelled):
            labelled.append(i)
    text = [f"{c.key_labels[i]} ({c.weights[i]:.2f})" if i in labelled else "" for i in best]
    fig.add_trace(go.Scatter(x=best, y=[float(c.weights[i]) for i in best], mode="markers+text", text=text,
                             textposition=["top left" if i > 0.75 * n else "top right" if i < 0.25 * n
                                           else "top center" for i in best],
                             customdata=[f"{c.key_labels[i]}: {c.weights[i]:.4f}" for i in best],
                             textfont=dict(size=11), cliponaxis=False,
                             marker=dict(color="#333333", size=6), name="strongest keys",
                             hovertemplate="strongest: key %{customdata}<extra></extra>"),
                  row=1, col=1)
    fig.add_vrect(x0=shown.start - 0.5, x1=shown.stop - 0.5, fillcolor="#6fa8dc", opacity=0.25,
                  line_width=0, row=1, col=1)
    if c.query < n - 1:
        fig.add_vrect(x0=c.query + 0.5, x1=n - 0.5, fillcolor=MASK_COLOUR, opacity=0.6, line_width=0,
                      row=1, col=1)
    fig.update_xaxes(range=[-0.5, n - 0.5], row=1, col=1)
    fig.update_yaxes(title_text="weight", range=[0, 1.35 * float(c.weights.max())], row=1, col=1)
