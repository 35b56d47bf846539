"""Why this token: direct logit attribution as a head grid and bars, input saliency (a strip and a
ranked list) and two continuations side by side, as data steps and figures (no Streamlit)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz.attribution import DirectLogitAttribution

from .attention import WINDOW
from .candidates import CHOSEN_COLOUR
from .colours import BLUE_RED, ink_on, over_white
from .tokens import visible_token

NEGATIVE_COLOUR = "#2166ac"
# The saliency strip's full colours: red towards the target, blue away. Each box's text is black or
# white, whichever reads better on its tint (the page's dark text on full blue was 2.3:1).
TOWARDS_RGB, AWAY_RGB = (228, 87, 46), (33, 102, 172)
ROW_NAME_COLOUR = "#0b5394"  # the branches' names: 8:1 on white (#6fa8dc was 2.5:1)


def dla_heads_figure(dla: DirectLogitAttribution, selected: tuple[int, int], title: str) -> go.Figure:
    """Layers down, heads across; red pushes towards the target, blue away, 0 white; every cell
    clickable (its customdata is [layer, head]) and the selected head outlined."""
    values = dla.heads.numpy()
    n_layer, n_head = values.shape
    limit = float(np.abs(values).max()) or 1.0
    cells = [(layer, head) for layer in range(n_layer) for head in range(n_head)]
    fig = go.Figure([
        go.Heatmap(
            z=values, x=list(range(n_head)), y=list(range(n_layer)), colorscale=BLUE_RED, zmid=0.0,
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


def saliency_scale(values: np.ndarray) -> float:
    """The |value| that gets full colour in the saliency strip: the largest among the tokens
    before the explained one (the last), whose own value often dwarfs them all. With no earlier
    token, the explained token's own."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    earlier = values[:-1]
    limit = float(earlier.max()) if earlier.size else 0.0
    return limit or float(values.max()) or 1.0


def saliency_window(n: int, size: int = WINDOW) -> range:
    """The positions the saliency strip shows of `n`: all of them up to 2 × `size`, else the last
    `size`, ending at the explained token."""
    return range(0 if n <= 2 * size else n - size, n)


def saliency_html(texts: Sequence[str], values: np.ndarray, shown: range | None = None) -> str:
    """The tokens as boxes tinted by gradient × input (red pushes towards the target, blue away),
    each value on hover. `values` ends at the explained token, which is outlined; the colour scale
    is `saliency_scale`'s (so the explained token may lie beyond it, at full colour). `shown` (a
    range of positions, default all) leaves out earlier tokens, counted at the start. All text is
    HTML-escaped."""
    limit = saliency_scale(values)
    shown = range(len(values)) if shown is None else shown
    explained = len(values) - 1
    boxes = [f"<span class='sal-more'>… {shown.start:,} earlier tokens</span>"] if shown.start else []
    for i in shown:
        value = float(values[i])
        alpha = round(min(1.0, abs(value) / limit), 2)  # as the style writes it
        rgb = TOWARDS_RGB if value > 0 else AWAY_RGB
        ink = ink_on(over_white(rgb, alpha))
        tint = f"background:rgba({','.join(map(str, rgb))},{alpha:.2f});color:{ink}"
        css, note = "sal", ""
        if i == explained:
            css += " sal-explained"
            note = " (the explained token" + ("; beyond the colour scale)" if abs(value) > limit else ")")
        shown_text = html.escape(visible_token(texts[i]))
        boxes.append(f'<span class="{css}" style="{tint}" '
                     f'title="position {i}: {value:+.4f}{note}">{shown_text}</span>')
    return f"<style>{_CSS}</style><div class='sal-strip'>{''.join(boxes)}</div>"


def saliency_caption(values: np.ndarray) -> str:
    """What the strip's colours mean, with the numbers of this strip (Markdown)."""
    limit, own = saliency_scale(values), float(values[-1])
    if len(values) < 2:
        return f"Full colour: |gradient × input| = {limit:.4f}."
    text = (f"Full colour: |gradient × input| = {limit:.4f}, the largest among the earlier tokens. The "
            f"explained token (outlined) scores {own:+.4f}")
    return text + (f", {abs(own) / limit:.1f}× that: drawn at full colour." if abs(own) > limit else ".")


@dataclass(frozen=True)
class Influence:
    """One input token's gradient × input."""

    position: int
    text: str
    value: float  # > 0 pushed towards the target, < 0 away


def ranked_saliency(texts: Sequence[str], values: np.ndarray, k: int = 15) -> list[Influence]:
    """The `k` tokens before the explained one (the last of `values`) with the largest
    |gradient × input|, largest first (the earlier position first on a tie)."""
    values = np.asarray(values, dtype=np.float64)[:-1]
    order = sorted(range(values.shape[0]), key=lambda i: (-abs(values[i]), i))[:k]
    return [Influence(i, texts[i], float(values[i])) for i in order]


def ranked_saliency_figure(rows: Sequence[Influence], title: str) -> go.Figure:
    """Horizontal bars, the largest |value| on top; red pushes towards the target, blue away. Each
    bar is named by its position and token, and shows its signed value."""
    names = [f"{r.position} {visible_token(r.text)}" for r in rows]
    values = [r.value for r in rows]
    limit = max((abs(v) for v in values), default=1.0) or 1.0
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h",
        marker_color=[CHOSEN_COLOUR if v > 0 else NEGATIVE_COLOUR for v in values],
        text=[f"{v:+.4f}" for v in values], cliponaxis=False,
        # a long bar holds its number; a short one has it beside it, where the axis leaves room
        textposition=["inside" if abs(v) >= 0.5 * limit else "outside" for v in values],
        insidetextanchor="middle",
        customdata=["towards the target" if v > 0 else "away from it" for v in values],
        hovertemplate="position %{y}: %{x:+.5f}<br>%{customdata}<extra></extra>",
    ))
    low, high = min([0.0, *values]), max([0.0, *values])
    pad = 0.45 * limit  # room for the numbers beside the short bars, on the side(s) with bars
    fig.update_xaxes(title_text="gradient × input", range=[low - (pad if low < 0 else 0.1 * limit),
                                                           high + (pad if high > 0 else 0.1 * limit)],
                     zeroline=True, zerolinecolor="black")
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=names, ticktext=names,
                     type="category")
    fig.update_layout(title=title, height=int(110 + 24 * max(1, len(rows))), showlegend=False,
                      margin=dict(l=10, r=10, t=50, b=40))
    return fig


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
    ".sal-explained{outline:2px solid #333;outline-offset:1px}"
    ".sal-more{color:#595959;margin-right:6px;font-style:italic;white-space:nowrap;font-family:sans-serif}"
    f".differs{{outline:2px solid {CHOSEN_COLOUR};outline-offset:1px}}"
    f".sal-strip b{{color:{ROW_NAME_COLOUR}}}"
)
