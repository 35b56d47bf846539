"""A "what comes next?" round as a bar chart: the class's guesses beside the model's top candidates."""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..guesses import RoundTally
from .candidates import CHOSEN_COLOUR, percent, percent_ticks
from .tokens import visible_token

# Told apart by lightness as well as hue, so that they stay apart under colour blindness and in
# grey: a light bar, a dark bar for a token both guessed and in the model's list, and the drawn
# token's outline in the project's "chosen" orange, between the two (CIE L* about 80, 35 and 56).
PLAIN_COLOUR = "#b7c9dc"
SHARED_COLOUR = "#0b5394"
DRAWN_COLOUR = CHOSEN_COLOUR
NO_OUTLINE = "rgba(0,0,0,0)"
NO_GUESSES = "No guesses yet"
DRAWN_MARK = "  ◀ drawn"


def round_figure(tally: RoundTally, drawn: int | None = None, title: str = "What comes next?") -> go.Figure:
    """Two panels of horizontal bars, most at the top: how many students guessed each token, and the
    model's probability of each of its top candidates. A token in both is dark in both; `drawn` (the
    id of the token the model wrote, once revealed) is outlined and named "◀ drawn" wherever it is."""
    counts = {g.token_id: g.count for g in tally.guesses}
    model_probs = {c.token_id: c.prob for c in tally.model}
    shared = counts.keys() & model_probs.keys()
    # Both panels are as many rows high, so that their bars are as thick and start at the top.
    rows = max(len(tally.guesses), len(tally.model), 1)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2,
                        subplot_titles=("The class's guesses", f"The model's top {len(tally.model)}"))

    def labels(ids: list[int], texts: list[str]) -> list[str]:
        shown = [html.escape(visible_token(t), quote=False) for t in texts]
        return [f"<b>{s}{DRAWN_MARK}</b>" if i == drawn else s for i, s in zip(ids, shown, strict=True)]

    def marker(ids: list[int]) -> dict:
        return dict(color=[SHARED_COLOUR if i in shared else PLAIN_COLOUR for i in ids],
                    line=dict(color=[DRAWN_COLOUR if i == drawn else NO_OUTLINE for i in ids], width=3))

    if tally.guesses:
        ids = [g.token_id for g in tally.guesses]
        names = labels(ids, [g.text for g in tally.guesses])
        values = [g.count for g in tally.guesses]
        upper = 1.25 * max(values)
        hover = [f"{name}<br>{n} of {tally.answered} guesses ({percent(n / tally.answered)})"
                 + (f"<br>the model: {percent(model_probs[i])}" if i in model_probs else "")
                 for name, n, i in zip(names, values, ids, strict=True)]
        _add_bars(fig, 1, ids, names, values, [str(n) for n in values], upper, marker(ids), hover)
        fig.update_xaxes(title_text="students", range=[0, upper], tick0=0, dtick=_count_step(upper),
                         tickformat="d", row=1, col=1)
    else:
        fig.update_xaxes(visible=False, row=1, col=1)
        fig.update_yaxes(visible=False, row=1, col=1)
        # in paper units: Plotly draws no annotation placed on a hidden axis
        (left, right), (bottom, top) = fig.layout.xaxis.domain, fig.layout.yaxis.domain
        fig.add_annotation(text=NO_GUESSES, xref="paper", yref="paper", x=(left + right) / 2,
                           y=(bottom + top) / 2, xanchor="center", yanchor="middle", showarrow=False,
                           font=dict(size=16, color="#555555"))

    ids = [c.token_id for c in tally.model]
    names = labels(ids, [c.text for c in tally.model])
    probs = [c.prob for c in tally.model]
    upper = min(1.0, 1.25 * max(probs, default=0.0)) or 1.0
    hover = [f"{name}<br>p = {p:.6f} ({percent(p)})"
             + (f"<br>guessed by {counts[i]} of {tally.answered}" if i in counts else "")
             for name, p, i in zip(names, probs, ids, strict=True)]
    _add_bars(fig, 2, ids, names, probs, [percent(p) for p in probs], upper, marker(ids), hover)
    dtick, tickformat = percent_ticks(upper)
    fig.update_xaxes(title_text="probability", range=[0, upper], tick0=0, dtick=dtick, tickformat=tickformat,
                     row=1, col=2)

    fig.update_yaxes(range=[rows - 0.5, -0.5])  # highest at the top, row by row
    note = _note(tally, drawn, shared, counts, model_probs)
    fig.update_layout(title=dict(text=f"{title}<br><sup>{note}</sup>"), showlegend=False,
                      height=130 + 28 * rows, margin=dict(l=10, r=10, t=90, b=40))
    return fig


def _add_bars(fig: go.Figure, col: int, ids: list[int], names: list[str], values: list[float],
              text: list[str], upper: float, marker: dict, hover: list[str]) -> None:
    # Rows are keyed by rank, not text: two tokens that look alike stay two bars.
    ranks = [f"#{r + 1}" for r in range(len(ids))]
    fig.add_trace(go.Bar(
        x=values, y=ranks, orientation="h", name=("guesses", "model")[col - 1], marker=marker,
        text=text, cliponaxis=False,
        # a short bar has no room for its number inside: it goes beside the bar
        textposition=["auto" if v >= 0.2 * upper else "outside" for v in values],
        customdata=hover, hovertemplate="%{customdata}<extra></extra>",
    ), row=1, col=col)
    fig.update_yaxes(tickmode="array", tickvals=ranks, ticktext=names, row=1, col=col)


def _count_step(upper: float, most: int = 6) -> int:
    """A whole tick step of 1, 2 or 5 × 10ⁿ giving at most `most` steps from 0 to `upper`."""
    raw = max(upper / most, 1.0)
    exponent = math.floor(math.log10(raw))
    return next(m * 10**e for e in (exponent, exponent + 1) for m in (1, 2, 5) if m * 10**e >= raw)


def _note(tally: RoundTally, drawn: int | None, shared: set[int], counts: dict[int, int],
          model_probs: dict[int, float]) -> str:
    """The line under the title: how many answered, what the dark bars are, where the drawn token is."""
    parts = [f"{tally.answered} guess{'es' if tally.answered != 1 else ''}"]
    if shared:
        parts.append(f"dark bars: guessed and in the model's top {len(tally.model)}")
    if drawn is not None:
        seen = drawn in counts or drawn in model_probs
        parts.append("◀ drawn: the token the model wrote" if seen
                     else "the model wrote a token no one guessed, outside its top list")
    return " · ".join(parts)
