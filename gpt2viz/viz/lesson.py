"""The Lesson's figures: pure factories from arrays to Plotly figures (and the token-id boxes as
HTML), one per kind of card. app/lesson/views.py puts each card's live numbers into them."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .candidates import CHOSEN_COLOUR, OTHER_COLOUR, percent
from .colours import BLUE_RED
from .lens import MLP_COLOUR
from .tokens import visible_token

# Each pair told apart by colour alone stays CIE ΔE 40 apart under simulated deuteranopia and
# protanopia (tests/test_colour_vision.py): beside OTHER_COLOUR a dark grey, not #999999 (30 apart);
# a mask's allowed cells a deeper blue than #6fa8dc (39 from HIDDEN_COLOUR); the bold temperature
# light blue, not the light orange #f6b26b that deuteranopia draws 21 from CHOSEN_COLOUR.
UNSCALED_COLOUR = "#555555"
ALLOWED_COLOUR, HIDDEN_COLOUR = "#3d85c6", "#eeeeee"
TEMPERATURE_COLOURS = ("#0b5394", CHOSEN_COLOUR, "#9fc5e8")

_IDS_CSS = (
    ".tok-ids{display:flex;flex-wrap:wrap;gap:6px 4px;font-family:monospace}"
    ".tok-id{display:inline-flex;flex-direction:column;align-items:center;border:1px solid #bbb;"
    "border-radius:4px;background:#eceff1;color:#37474f;padding:2px 5px;white-space:pre;"
    "unicode-bidi:isolate}"
    ".tok-id small{color:#0b3d91;font-size:0.75em}"
)
MAX_ID_BOXES = 300


def token_ids_html(texts: Sequence[str], ids: Sequence[int]) -> str:
    """Each token as a box with its visible text and, below it, its id (the first MAX_ID_BOXES)."""
    shown = zip(texts[:MAX_ID_BOXES], ids[:MAX_ID_BOXES], strict=True)
    boxes = [f"<span class='tok-id' title='position {i}'>{html.escape(visible_token(t))}"
             f"<small>{token_id}</small></span>" for i, (t, token_id) in enumerate(shown)]
    more = f"<span>… and {len(ids) - MAX_ID_BOXES:,} more</span>" if len(ids) > MAX_ID_BOXES else ""
    return f"<style>{_IDS_CSS}</style><div class='tok-ids'>{''.join(boxes)}{more}</div>"


def head_bars_figure(weights: np.ndarray, selected: int, even: float, title: str) -> go.Figure:
    """One bar per head (`weights` [head]), the `selected` head orange, a dashed line at `even`
    (the weight every key would get if attention were spread evenly)."""
    heads = [f"head {h}" for h in range(len(weights))]
    fig = go.Figure(go.Bar(
        x=heads, y=weights, text=[percent(w) for w in weights], textposition="outside",
        marker_color=[CHOSEN_COLOUR if h == selected else OTHER_COLOUR for h in range(len(weights))],
        hovertemplate="%{x}: %{y:.4f}<extra></extra>",
    ))
    fig.add_hline(y=even, line=dict(color="#555555", dash="dash", width=1))
    fig.update_yaxes(title_text="attention weight", tickformat=".0%",
                     range=[0, min(1.0, 1.2 * max(float(weights.max()), even)) or 1.0])
    fig.update_layout(title=dict(text=f"{title}<br><sup>dashed line: the weight of an even spread, "
                                      f"{percent(even)}</sup>"),
                      height=360, margin=dict(l=10, r=10, t=70, b=40))
    return fig


def sharpness_figure(weights: np.ndarray, unscaled_weights: np.ndarray, d_k: int, keys: Sequence[str],
                     title: str) -> go.Figure:
    """The softmax weights [key] over `keys` with the ÷√d_k (what the model uses) and without it."""
    fig = go.Figure([
        go.Bar(x=list(keys), y=weights, name=f"÷ √{d_k} (what GPT-2 does)", marker_color=OTHER_COLOUR,
               hovertemplate="%{x}<br>weight %{y:.4f}<extra></extra>"),
        go.Bar(x=list(keys), y=unscaled_weights, name="without the division", marker_color=UNSCALED_COLOUR,
               hovertemplate="%{x}<br>weight %{y:.4f}<extra></extra>"),
    ])
    fig.update_xaxes(title_text="key token", tickangle=-45)
    fig.update_yaxes(title_text="softmax weight", range=[0, 1], tickformat=".0%")
    fig.update_layout(title=title, barmode="group", height=380,
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig


def masks_figure(causal: np.ndarray, bidirectional: np.ndarray, labels: Sequence[str]) -> go.Figure:
    """Two [query × key] masks side by side: blue where a token may look, grey where it may not."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("GPT-2: causal (as this run used it)", "BERT: bidirectional"))
    scale = [[0, HIDDEN_COLOUR], [1, ALLOWED_COLOUR]]
    for col, mask in enumerate((causal, bidirectional), start=1):
        fig.add_trace(go.Heatmap(
            z=mask.astype(np.float32), x=list(labels), y=list(labels), zmin=0, zmax=1, colorscale=scale,
            showscale=False, xgap=2, ygap=2, text=np.where(mask, "sees", "hidden"),
            hovertemplate="query %{y}<br>key %{x}: %{text}<extra></extra>",
        ), row=1, col=col)
    fig.update_yaxes(autorange="reversed", title_text="query (the token looking)", col=1)
    fig.update_yaxes(autorange="reversed", col=2)
    fig.update_xaxes(title_text="key (the token looked at)", tickangle=-45)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=50, b=40))
    return fig


def mlp_widths_figure(inp: np.ndarray, hidden: np.ndarray, out: np.ndarray, title: str) -> go.Figure:
    """The feed-forward layer drawn to scale: its input and output (d_model wide) above and below
    its hidden neurons (d_mlp wide), one cell per number, each with its own colour range."""
    width = hidden.shape[0]
    rows = (("in (d_model)", inp), ("hidden neurons (d_mlp)", hidden), ("out (d_model)", out))
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=[name for name, _ in rows])
    for row, (name, values) in enumerate(rows, start=1):
        peak = float(np.abs(values).max()) or 1.0
        fig.add_trace(go.Heatmap(z=values[None, :].astype(np.float32), x=list(range(values.shape[0])),
                                 y=[""], colorscale=BLUE_RED, zmin=-peak, zmax=peak, showscale=False,
                                 hovertemplate=f"{name}<br>%{{x}}: %{{z:.4f}}<extra></extra>"),
                      row=row, col=1)
    fig.update_xaxes(range=[-0.5, width - 0.5], showgrid=False)
    fig.update_xaxes(title_text="component", row=3, col=1)
    fig.update_yaxes(showgrid=False, showticklabels=False)
    fig.update_layout(title=title, height=380, margin=dict(l=10, r=10, t=70, b=40))
    return fig


def block_pushes_figure(attn: np.ndarray, mlp: np.ndarray, embeddings: float, title: str) -> go.Figure:
    """Each block's attention and MLP push on one logit (bars), after the embeddings' share, with
    the running total (line)."""
    n_layer = len(attn)
    x = ["embeddings"] + [f"block {i}" for i in range(n_layer)]
    running = embeddings + np.cumsum(attn + mlp)
    fig = go.Figure([
        go.Bar(x=x, y=[embeddings] + [0.0] * n_layer, name="embeddings", marker_color="#bbbbbb",
               hovertemplate="embeddings %{y:.3f}<extra></extra>"),
        go.Bar(x=x[1:], y=attn, name="attention", marker_color=OTHER_COLOUR,
               hovertemplate="%{x} attention %{y:.3f}<extra></extra>"),
        go.Bar(x=x[1:], y=mlp, name="feed-forward", marker_color=MLP_COLOUR,
               hovertemplate="%{x} feed-forward %{y:.3f}<extra></extra>"),
        go.Scatter(x=x, y=[embeddings, *running], name="running total", mode="lines+markers",
                   line=dict(color=CHOSEN_COLOUR), hovertemplate="%{x}: total %{y:.3f}<extra></extra>"),
    ])
    fig.add_hline(y=0, line=dict(color="#555555", width=1))
    fig.update_yaxes(title_text="push on the logit")
    fig.update_layout(title=title, barmode="group", height=400,
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig


def temperatures_figure(texts: Sequence[str], temperatures: Sequence[float], probs: np.ndarray,
                        title: str) -> go.Figure:
    """The likeliest tokens' probabilities `probs` [temperature, token] at each temperature,
    grouped by token (`texts`, their text; the numbers are in the hover: as labels they would crowd
    the narrow bars)."""
    labels = [f"{i + 1}. {html.escape(visible_token(s), quote=False)}" for i, s in enumerate(texts)]
    fig = go.Figure([
        go.Bar(x=labels, y=probs[i],
               name=f"temperature {temp:g}" + (" (the model's own)" if temp == 1 else ""),
               marker_color=TEMPERATURE_COLOURS[i % len(TEMPERATURE_COLOURS)],
               hovertemplate="%{x}<br>p %{y:.4f}<extra></extra>")
        for i, temp in enumerate(temperatures)
    ])
    fig.update_yaxes(title_text="probability", tickformat=".0%",
                     range=[0, min(1.0, 1.2 * float(probs.max())) or 1.0])
    fig.update_layout(title=title, barmode="group", height=400,
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig
