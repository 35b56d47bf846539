"""Why this token: direct logit attribution as a head grid and bars, input saliency and two
continuations side by side, as data steps and figures (no Streamlit)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz.attribution import DirectLogitAttribution

from .candidates import CHOSEN_COLOUR, OTHER_COLOUR
from .tokens import visible_token

NEGATIVE_COLOUR = "#2166ac"


def dla_heads_figure(dla: DirectLogitAttribution, selected: tuple[int, int], title: str) -> go.Figure:
    """Layers down, heads across; red pushes towards the target, blue away, 0 white; every cell
    clickable (its customdata is [layer, head]) and the selected head outlined."""
    values = dla.heads.numpy()
    n_layer, n_head = values.shape
    limit = float(np.abs(values).max()) or 1.0
    cells = [(layer, head) for layer in range(n_layer) for head in range(n_head)]
    fig = go.Figure([
        go.Heatmap(
            z=values, x=list(range(n_head)), y=list(range(n_layer)), colorscale="RdBu_r", zmid=0.0,
            zmin=-limit, zmax=limit, colorbar=dict(title="logit", thickness=10),
            text=[[f"{v:+.2f}" for v in row] for row in values], texttemplate="%{text}",
            textfont=dict(size=11 if n_head <= 12 else 8), hoverinfo="skip",
        ),
        # Heatmaps cannot be selected in Streamlit; an almost invisible marker per cell can.
        go.Scatter(
            x=[h for _, h in cells], y=[la for la, _ in cells], mode="markers", customdata=cells,
            marker=dict(symbol="square", size=max(10, min(30, 360 // max(n_layer, n_head))), opacity=0.01),
            hovertemplate="layer %{customdata[0]}, head %{customdata[1]}: %{text}<br>click to select"
                          "<extra></extra>",
            text=[f"{values[la, h]:+.4f}" for la, h in cells],
        ),
    ])
    layer, head = selected
    fig.add_shape(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                  line=dict(color="black", width=3))
    fig.update_xaxes(title_text="head", dtick=1, showgrid=False, zeroline=False, range=[-0.5, n_head - 0.5])
    fig.update_yaxes(title_text="layer", dtick=1, showgrid=False, zeroline=False, range=[n_layer - 0.5, -0.5])
    fig.update_layout(title=title, clickmode="event+select", dragmode=False, showlegend=False,
                      height=int(min(600, max(240, 100 + 30 * n_layer))), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def dla_parts(dla: DirectLogitAttribution) -> tuple[list[str], list[float]]:
    """(names, values) of every part that is not a head: each MLP, then the rest."""
    names = [f"MLP {layer}" for layer in range(dla.mlps.shape[0])] + list(dla.rest)
    values = [float(v) for v in dla.mlps] + list(dla.rest.values())
    return names, values


def dla_parts_figure(dla: DirectLogitAttribution, actual: float) -> go.Figure:
    """Bars for the MLPs and the other parts, with the heads' sum beside them; the title sets the
    sum of all parts against the model's real logit (difference)."""
    names, values = dla_parts(dla)
    names, values = ["all heads"] + names, [float(dla.heads.sum())] + values
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=[CHOSEN_COLOUR if v > 0 else NEGATIVE_COLOUR for v in values],
        text=[f"{v:+.2f}" for v in values], textposition="outside",
        hovertemplate="%{x}: %{y:+.4f}<extra></extra>",
    ))
    fig.update_yaxes(title_text="push on the logit", zeroline=True, zerolinecolor="black")
    title = f"The parts add up to {dla.total:+.3f}<br>the model's logit (difference) is {actual:+.3f}"
    fig.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=70, b=40))
    return fig


def saliency_html(texts: Sequence[str], values: np.ndarray) -> str:
    """The tokens as boxes tinted by gradient × input (red pushes towards the target, blue away),
    each value on hover. All text is HTML-escaped."""
    limit = float(np.abs(values).max()) or 1.0
    boxes = []
    for i, (text, value) in enumerate(zip(texts, values, strict=True)):
        alpha = min(1.0, abs(float(value)) / limit)
        rgb = "228,87,46" if value > 0 else "33,102,172"
        boxes.append(f'<span class="sal" style="background:rgba({rgb},{alpha:.2f})" '
                     f'title="position {i}: {float(value):+.4f}">{html.escape(visible_token(text))}</span>')
    return f"<style>{_CSS}</style><div class='sal-strip'>{''.join(boxes)}</div>"


@dataclass(frozen=True)
class Branches:
    """Two continuations of one prefix, aligned token by token."""

    prefix: int  # tokens both share before they may differ
    first: list[str]  # token texts after the prefix
    second: list[str]
    diverge: int | None  # index (after the prefix) of the first differing token, None if equal


def branches(prefix: int, first_ids: Sequence[int], second_ids: Sequence[int], token_text) -> Branches:
    """Align two id sequences that share `prefix` ids; `token_text(id)` names a token."""
    a, b = list(first_ids[prefix:]), list(second_ids[prefix:])
    diverge = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if diverge is None and len(a) != len(b):
        diverge = min(len(a), len(b))
    return Branches(prefix, [token_text(i) for i in a], [token_text(i) for i in b], diverge)


def branches_html(br: Branches, names: tuple[str, str]) -> str:
    """Two rows of token boxes; from the first difference on, tokens are outlined."""
    rows = []
    for name, texts in zip(names, (br.first, br.second), strict=True):
        boxes = [f'<span class="sal{" differs" if br.diverge is not None and i >= br.diverge else ""}">'
                 f"{html.escape(visible_token(t))}</span>" for i, t in enumerate(texts)]
        rows.append(f"<div><b>{html.escape(name)}</b> {''.join(boxes)}</div>")
    return f"<style>{_CSS}</style><div class='sal-strip'>{''.join(rows)}</div>"


_CSS = (
    ".sal-strip{line-height:2.2;font-family:monospace;font-size:0.95rem}"
    ".sal{border:1px solid #bbb;border-radius:4px;padding:1px 3px;margin:0 1px;white-space:pre;"
    "unicode-bidi:isolate}"
    f".differs{{outline:2px solid {CHOSEN_COLOUR};outline-offset:1px}}"
    f".sal-strip b{{color:{OTHER_COLOUR}}}"
)
