"""The residual stream across depth: the logit lens as a points × positions heatmap, and the
size of the stream and of what each sub-layer adds at one position."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpt2viz.lens import LogitLens, ResidualNorms

from .candidates import CHOSEN_COLOUR, OTHER_COLOUR, percent
from .sampling import TokenTexts
from .tokens import visible_token

CELL_CHARS = 8  # a cell shows at most this many characters of its top-1 token
MLP_COLOUR = "#93c47d"


def escape(text: str) -> str:
    """Token text safe in Plotly's pseudo-HTML labels (which do not decode &quot;)."""
    return html.escape(text, quote=False)


def lens_window(n_positions: int, current: int, width: int = 12) -> list[int]:
    """`width` consecutive positions holding `current`: the ones ending at it when there are
    enough before it, else the first `width`; all of them when the sequence is shorter."""
    if not 0 <= current < n_positions:
        raise ValueError(f"current must lie in 0..{n_positions - 1}, not {current}.")
    if width < 1:
        raise ValueError(f"width must be a positive number of positions, not {width}.")
    first = max(0, min(current - width + 1, n_positions - width))
    return list(range(first, min(n_positions, first + width)))


def shortened(text: str, chars: int = CELL_CHARS) -> str:
    """`text` cut to `chars` characters, the last one an ellipsis when cut."""
    return text if len(text) <= chars else text[:chars - 1] + "…"


@dataclass(frozen=True)
class LensGrid:
    z: np.ndarray  # [point, pos] float32: the top-1 probability
    text: list[list[str]]  # [point][pos] the top-1 token, visible and shortened
    hover: list[list[str]]  # [point][pos] lines "rank. token  p": the top-k, then the final token
    x_labels: list[str]  # one per position: the input token read there
    y_labels: list[str]  # one per point, embeddings first, the model's output last
    positions: list[int]  # absolute positions of the columns
    final_token_probs: np.ndarray  # [point, pos] float32: the finally chosen token's probability


def lens_grid(lens: LogitLens, tok: TokenTexts, input_labels: Sequence[str]) -> LensGrid:
    """The lens shaped for a heatmap; `input_labels` names the input token at each of
    `lens.positions` (e.g. from `token_labels`)."""
    if len(input_labels) != len(lens.positions):
        raise ValueError(f"{len(lens.positions)} positions but {len(input_labels)} input labels.")
    shown = set(lens.top_ids.flatten().tolist()) | set(lens.final_ids.tolist())
    names = {i: visible_token(tok.token_text(i)) for i in shown}
    top_ids = lens.top_ids.tolist()  # [point][pos][k]
    top_probs = lens.top_probs.tolist()
    final = lens.final_token_probs.tolist()  # [point][pos]
    finals = [names[i] for i in lens.final_ids.tolist()]

    def lines(point: int, pos: int) -> str:
        ranked = zip(top_ids[point][pos], top_probs[point][pos], strict=True)
        return "\n".join([f"{r + 1}. {names[i]}  {percent(p)}" for r, (i, p) in enumerate(ranked)]
                         + [f"final choice {finals[pos]}: {percent(final[point][pos])}"])

    n_point, n_pos = lens.final_token_probs.shape
    hover = [[lines(point, pos) for pos in range(n_pos)] for point in range(n_point)]
    return LensGrid(
        z=lens.top_probs[:, :, 0].float().numpy().astype(np.float32),
        text=[[shortened(names[cell[0]]) for cell in row] for row in top_ids],
        hover=hover,
        x_labels=list(input_labels),
        y_labels=list(lens.labels),
        positions=list(lens.positions),
        final_token_probs=lens.final_token_probs.float().numpy().astype(np.float32),
    )


def logit_lens_figure(g: LensGrid, current: int | None) -> go.Figure:
    """Points down (embeddings on top, the model's output last) × positions across; each cell
    names its top-1 token, coloured by its probability; hover lists the top-k. The `current`
    position's column (absolute; must be shown) is outlined."""
    n_point, n_pos = g.z.shape
    hover = [[f"{escape(g.x_labels[pos])} · {escape(g.y_labels[point])}<br>"
              + escape(g.hover[point][pos]).replace("\n", "<br>") for pos in range(n_pos)]
             for point in range(n_point)]
    fig = go.Figure(go.Heatmap(
        z=g.z, x=list(range(n_pos)), y=list(range(n_point)), zmin=0.0, zmax=1.0,
        colorscale="Viridis", colorbar=dict(title=dict(text="top-1 p", side="right"), thickness=12),
        text=[[escape(t) for t in row] for row in g.text], texttemplate="%{text}",
        textfont=dict(size=11 if n_pos <= 12 else 9), xgap=1, ygap=1,
        customdata=hover, hovertemplate="%{customdata}<extra></extra>",
    ))
    if current is not None:
        if current not in g.positions:
            raise ValueError(f"Position {current} is not shown; the columns are {g.positions}.")
        col = g.positions.index(current)
        fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=-0.5, y1=n_point - 0.5,
                      line=dict(color=CHOSEN_COLOUR, width=3))
    y_text = [escape(lab) for lab in g.y_labels]
    y_text[-1] += " = output"
    fig.update_xaxes(title_text="position and input token (each column predicts the next token)",
                     tickmode="array", tickvals=list(range(n_pos)),
                     ticktext=[escape(lab) for lab in g.x_labels], tickangle=-45, showgrid=False,
                     zeroline=False)
    fig.update_yaxes(tickmode="array", tickvals=list(range(n_point)), ticktext=y_text,
                     autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(title="Logit lens: the top next-token guess at every point of the residual stream",
                      height=int(min(1000, max(340, 170 + 30 * n_point))),
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


OVERVIEW_COLUMNS = 256  # a 1,024-token overview keeps every 4th column's block maximum


def column_maxima(values: np.ndarray, columns: int) -> tuple[list[int], np.ndarray]:
    """(first position of each block, [row, block] maxima): at most `columns` blocks of equal
    width, so a long sequence's overview stays light and still shows every peak."""
    n = values.shape[1]
    width = -(-n // columns)  # ceil
    starts = list(range(0, n, width))
    return starts, np.maximum.reduceat(values, starts, axis=1).astype(np.float32)


def lens_overview_figure(logits: np.ndarray, labels: Sequence[str], window: Sequence[int],
                         current: int) -> go.Figure:
    """The whole sequence at once: [point × position] coloured by the logit of the model's final
    choice at each depth (no token text: too many columns), the detailed window shaded and the
    current position marked. `labels` name the points, top to bottom."""
    n_point, n_pos = logits.shape
    starts, z = column_maxima(logits, OVERVIEW_COLUMNS)
    fig = go.Figure(go.Heatmap(
        z=z, x=starts, y=list(range(n_point)), colorscale="Viridis",
        colorbar=dict(title=dict(text="logit", side="right"), thickness=12),
        hovertemplate="from position %{x}<br>%{customdata}<br>logit of the final choice %{z:.2f}"
                      "<extra></extra>",
        customdata=[[labels[point]] * len(starts) for point in range(n_point)],
    ))
    fig.add_vrect(x0=min(window) - 0.5, x1=max(window) + 0.5, line=dict(color="white", width=2))
    fig.add_vline(x=current, line=dict(color=CHOSEN_COLOUR, width=2))
    fig.update_xaxes(title_text="position", range=[-0.5, n_pos - 0.5], showgrid=False, zeroline=False)
    fig.update_yaxes(tickmode="array", tickvals=list(range(n_point)), ticktext=[escape(x) for x in labels],
                     autorange="reversed", showgrid=False, zeroline=False)
    title = "Overview: how early each position's final choice stands out (framed: the window below)"
    fig.update_layout(title=title, height=int(min(600, max(260, 120 + 16 * n_point))),
                      margin=dict(l=10, r=10, t=50, b=40))
    return fig


def residual_norms_figure(norms: ResidualNorms, position: int, start: int = 0) -> go.Figure:
    """At one absolute `position` (column `position - start` of the norms): the residual
    stream's norm at every point (top) and the norm of what each attention and MLP sub-layer
    added to reach that point (bottom), on a shared x axis of points."""
    col = position - start
    if not 0 <= col < norms.resid.shape[1]:
        raise ValueError(f"Position {position} is outside the norms' positions "
                         f"{start}..{start + norms.resid.shape[1] - 1}.")
    labels = list(norms.labels)
    n_layer = norms.attn.shape[0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14, row_heights=[0.5, 0.5],
                        subplot_titles=("‖residual stream‖ at each point",
                                        "‖what each sub-layer added‖"))
    fig.add_trace(go.Scatter(x=labels, y=norms.resid[:, col].float().numpy(), mode="lines+markers",
                             name="residual stream", line=dict(color="#444444"),
                             hovertemplate="%{x}<br>‖resid‖ %{y:.3f}<extra></extra>"), row=1, col=1)
    for name, added, colour, at in (("attention", norms.attn, OTHER_COLOUR, 1),
                                    ("MLP", norms.mlp, MLP_COLOUR, 2)):
        fig.add_trace(go.Bar(x=labels[at::2], y=added[:, col].float().numpy(), name=name,
                             marker_color=colour,
                             hovertemplate=f"%{{x}}<br>{name} added ‖·‖ %{{y:.3f}}<extra></extra>"),
                      row=2, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels, tickangle=-45)
    fig.update_yaxes(title_text="L2 norm", rangemode="tozero")
    # the legend at the right (Plotly's place): above the plot it met the top subplot's title
    fig.update_layout(title=f"Residual stream at position {position}", barmode="overlay",
                      height=int(min(800, max(540, 420 + 14 * n_layer))),
                      margin=dict(l=10, r=10, t=70, b=10))
    return fig
