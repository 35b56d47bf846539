"""The next-token candidates of one generation step, as data and as a bar chart."""

from __future__ import annotations

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
    """A d3 tick format in percent with enough decimals for an axis up to `largest`."""
    return ".0%" if largest > 0.05 else ".1%" if largest > 0.005 else ".2%"


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
    fig = go.Figure(go.Bar(
        x=c.probs, y=ranks, orientation="h",
        marker_color=[CHOSEN_COLOUR if i == c.chosen else OTHER_COLOUR for i in range(len(ranks))],
        text=[percent(p) for p in c.probs], textposition="auto",
        customdata=names, hovertemplate="%{customdata}<br>p = %{x:.4f}<extra></extra>",
    ))
    fig.update_yaxes(title_text="candidate token", autorange="reversed",
                     tickmode="array", tickvals=ranks, ticktext=names)
    # Up to 100%, or zoomed in when every candidate is unlikely (an untrained model).
    fig.update_xaxes(title_text="probability", range=[0, min(1.0, 1.25 * max(c.probs))],
                     tickformat=percent_axis(max(c.probs)))
    fig.update_layout(title=title, height=80 + 28 * len(ranks), margin=dict(l=10, r=10, t=50, b=40))
    return fig
