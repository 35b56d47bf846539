"""The sampling chain of one step, as Transformer Explainer shows it: logits → ÷ temperature →
kept by top-k / top-p → probability, for the candidates with the highest logits."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from gpt2viz.sampling import SamplingStages

from .candidates import CHOSEN_COLOUR, OTHER_COLOUR, percent, percent_axis
from .tokens import visible_token

CUT_COLOUR = "#5f5f5f"  # dark grey: a light one comes within ΔE 40 of OTHER_COLOUR under protanopia
CHOSEN_BAND = "rgba(228, 87, 46, 0.12)"  # CHOSEN_COLOUR, faint, behind the chosen row
COLUMNS = ("logits", "÷ temperature", "kept by top-k / top-p", "probability")


class TokenTexts(Protocol):
    """Names tokens, as `gpt2viz.GPT2Tokenizer` does."""

    def token_text(self, token_id: int) -> str: ...


@dataclass(frozen=True)
class SamplingChain:
    ids: list[int]  # highest logit first; a chosen token outside the top n comes last
    labels: list[str]  # visible token text
    logits: np.ndarray  # [row] float32
    scaled: np.ndarray  # [row] logits ÷ temperature
    kept: np.ndarray  # [row] bool: left after top-k and top-p
    probs: np.ndarray  # [row] the probability drawn from (0 where cut)
    chosen: int | None  # row of the chosen token
    shown_mass: float  # probability the shown rows carry together
    n_kept: int  # tokens kept in the whole vocabulary


def chain_data(
    stages: SamplingStages, tok: TokenTexts, chosen: int | None, n: int = 10
) -> SamplingChain:
    """The `n` highest-logit candidates at every stage (ties in vocabulary order), plus the
    `chosen` token id as a last row when it is not among them."""
    if n < 1:
        raise ValueError(f"n must be a positive number of rows, not {n}.")
    order = stages.logits.float().sort(descending=True, stable=True).indices
    ids = [int(i) for i in order[:n]]
    if chosen is not None and chosen not in ids:
        ids.append(chosen)

    def column(values: torch.Tensor) -> np.ndarray:
        return values[ids].detach().float().cpu().numpy()

    probs = column(stages.probs)
    return SamplingChain(
        ids=ids,
        labels=[visible_token(tok.token_text(i)) for i in ids],
        logits=column(stages.logits),
        scaled=column(stages.scaled),
        kept=stages.kept[ids].cpu().numpy().astype(bool),
        probs=probs,
        chosen=None if chosen is None else ids.index(chosen),
        shown_mass=float(probs.sum()),
        n_kept=int(stages.kept.sum()),
    )


def bar_floor(values: np.ndarray) -> float:
    """Where logit bars start: a little below the lowest shown value. Softmax ignores a shift of
    all logits, so only differences matter, and GPT-2's logits are often all negative."""
    low, high = float(values.min()), float(values.max())
    return low - (0.15 * (high - low) or 1.0)


def sampling_chain_figure(c: SamplingChain, title: str) -> go.Figure:
    """Four columns sharing the candidate rows (highest logit on top): the logits, the logits
    ÷ temperature (bars from `bar_floor`), kept or cut by top-k / top-p, and the probability
    drawn from. The chosen row is orange in every column, on a faint orange band, and named
    "◀ chosen"."""
    n = len(c.ids)
    rows = [f"#{i + 1}" for i in range(n)]  # keyed by rank: equal texts stay separate rows
    names = [html.escape(lab, quote=False) + ("  ◀ chosen" if i == c.chosen else "")
             for i, lab in enumerate(c.labels)]
    hover = [f"{name}<br>id {i}<br>logit {lo:.3f}<br>÷ T {s:.3f}<br>p {p:.4g}"
             for name, i, lo, s, p in zip(names, c.ids, c.logits, c.scaled, c.probs, strict=True)]

    def colours(live: np.ndarray) -> list[str]:
        """Orange for the chosen row, else blue where `live` and grey where cut."""
        return [CHOSEN_COLOUR if i == c.chosen else OTHER_COLOUR if ok else CUT_COLOUR
                for i, ok in enumerate(live)]

    everywhere = np.ones(n, dtype=bool)
    fig = make_subplots(rows=1, cols=4, shared_yaxes=True, horizontal_spacing=0.03,
                        column_widths=[1.0, 1.0, 0.55, 1.3], subplot_titles=COLUMNS)
    common = dict(y=rows, customdata=hover, hovertemplate="%{customdata}<extra></extra>")
    for col, (name, values) in enumerate([(COLUMNS[0], c.logits), (COLUMNS[1], c.scaled)], start=1):
        base = bar_floor(values)
        fig.add_trace(go.Bar(x=values - base, base=base, orientation="h", name=name,
                             marker_color=colours(everywhere), text=[f"{v:.2f}" for v in values],
                             textposition="auto", **common), row=1, col=col)
        fig.update_xaxes(range=[base, float(values.max()) + 0.05 * (float(values.max()) - base)],
                         row=1, col=col)
    fig.add_trace(go.Scatter(
        x=np.zeros(n), mode="markers+text", name=COLUMNS[2],
        marker=dict(symbol=["circle" if k else "x-thin-open" for k in c.kept], size=13,
                    color=colours(c.kept), line=dict(width=2, color=colours(c.kept))),
        text=["kept" if k else "cut" for k in c.kept], textposition="middle right",
        textfont=dict(color=["#333333" if k else "#999999" for k in c.kept]), **common,
    ), row=1, col=3)
    fig.add_trace(go.Bar(x=c.probs, orientation="h", name=COLUMNS[3], marker_color=colours(c.kept),
                         text=[percent(p) if k else "cut" for p, k in zip(c.probs, c.kept, strict=True)],
                         textposition=["auto" if p > 0 else "outside" for p in c.probs], **common),
                  row=1, col=4)
    if c.chosen is not None:
        fig.add_shape(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=c.chosen - 0.5,
                      y1=c.chosen + 0.5, fillcolor=CHOSEN_BAND, line=dict(width=0), layer="below")
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=rows, ticktext=names,
                     showgrid=False)
    fig.update_yaxes(title_text="candidate token", row=1, col=1)
    fig.update_xaxes(visible=False, range=[-0.4, 2.2], row=1, col=3)
    top = float(c.probs.max())
    fig.update_xaxes(range=[0, min(1.0, 1.3 * top) or 1.0], row=1, col=4,
                     tickformat=percent_axis(top))
    note = (f"these {n} rows carry {percent(c.shown_mass)} of the probability · "
            f"{c.n_kept:,} token{'s' if c.n_kept != 1 else ''} kept in all")
    fig.update_layout(title=dict(text=f"{title}<br><sup>{note}</sup>"), showlegend=False,
                      bargap=0.25, height=int(130 + 26 * n), margin=dict(l=10, r=10, t=90, b=30))
    return fig
