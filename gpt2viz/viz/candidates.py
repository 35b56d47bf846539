"""The next-token candidates of one generation step, as data and as a bar chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from .tokens import visible_token

CHOSEN_COLOUR = "#e4572e"
OTHER_COLOUR = "#6fa8dc"


def percent(p: float) -> str:
    """A probability for people, always in percent: 12.3%, 0.05%, or <0.01% for what would round
    to nothing (the exact value is in the hover)."""
    if p >= 0.001:
        return f"{p:.1%}"
    return f"{p:.2%}" if p >= 0.0001 else "<0.01%"


def percent_axis(largest: float) -> str:
    """A d3 tick format in percent with enough decimals for an axis up to `largest` (one more
    for each tenth: .0% above 5%, .1% above 0.5%, … up to .6%)."""
    decimals = 0
    while largest <= 0.05 * 10.0 ** -decimals and decimals < 6:
        decimals += 1
    return f".{decimals}%"


def percent_ticks(upper: float, most: int = 6) -> tuple[float, str]:
    """(dtick, d3 tick format) for a probability axis from 0 to `upper`: a step of 1, 2 or 5 × 10ⁿ
    giving at most `most` steps, and just enough decimals in percent that no two ticks read the
    same (Plotly's own ticks can be finer than the format: 0.00%, 0.01%, 0.01%)."""
    raw = max(upper, 1e-12) / most
    exponent = math.floor(math.log10(raw))
    steps = (float(f"{m}e{exponent + e}") for e in (0, 1) for m in (1, 2, 5))
    step = next(s for s in steps if s >= raw * (1 - 1e-9))
    decimals = max(0, math.ceil(-math.log10(step * 100) - 1e-9))
    return step, f".{decimals}%"


@dataclass(frozen=True)
class Candidates:
    labels: list[str]  # visible token text, highest probability first
    probs: list[float]
    chosen: int  # index of the chosen token in `labels`


def step_candidates(
    top: Sequence[tuple[int, str, float]], chosen_id: int, chosen_text: str, chosen_prob: float
) -> Candidates:
    """The top candidates; a sampled token outside the top list is appended as the last bar."""
    ids = [t[0] for t in top]
    labels = [visible_token(t[1]) for t in top]
    probs = [float(t[2]) for t in top]
    if chosen_id in ids:
        return Candidates(labels, probs, ids.index(chosen_id))
    return Candidates([*labels, visible_token(chosen_text)], [*probs, float(chosen_prob)], len(labels))


def candidates_figure(c: Candidates, title: str) -> go.Figure:
    """Horizontal bars, highest on top; the chosen token is orange and marked "chosen"."""
    # Bars are keyed by rank so that two candidates with the same text stay separate.
    ranks = [f"#{i + 1}" for i in range(len(c.labels))]
    names = [f"{lab}  ◀ chosen" if i == c.chosen else lab for i, lab in enumerate(c.labels)]
    # Up to 100%, or zoomed in when every candidate is unlikely (an untrained model).
    upper = min(1.0, 1.25 * max(c.probs)) or 1.0
    chosen = [i == c.chosen for i in range(len(ranks))]
    fig = go.Figure(go.Bar(
        x=c.probs, y=ranks, orientation="h",
        marker=dict(color=[CHOSEN_COLOUR if ch else OTHER_COLOUR for ch in chosen],
                    # outlined, so that a chosen token too unlikely for a visible bar still has a mark
                    line=dict(color=[CHOSEN_COLOUR if ch else "rgba(0,0,0,0)" for ch in chosen], width=2)),
        text=[percent(p) for p in c.probs], cliponaxis=False,
        # a short bar has no room for its number inside: it goes beside the bar
        textposition=["auto" if p >= 0.2 * upper else "outside" for p in c.probs],
        customdata=names, hovertemplate="%{customdata}<br>p = %{x:.6f}<extra></extra>",
    ))
    fig.update_yaxes(title_text="candidate token", autorange="reversed",
                     tickmode="array", tickvals=ranks, ticktext=names)
    dtick, tickformat = percent_ticks(upper)
    fig.update_xaxes(title_text="probability", range=[0, upper], tick0=0, dtick=dtick, tickformat=tickformat)
    fig.update_layout(title=title, height=80 + 28 * len(ranks), margin=dict(l=10, r=10, t=50, b=40))
    return fig
