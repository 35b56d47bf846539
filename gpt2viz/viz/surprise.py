"""Two models on the same text: per token, which one expected it more (in bits)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from gpt2viz.surprise import Comparison

FIRST_COLOUR, SECOND_COLOUR = "#2b6cb0", "#e4572e"


def comparison_figure(c: Comparison, labels: Sequence[str]) -> go.Figure:
    """One bar per token (the first has none: nothing came before it): the bits of surprise the
    first model saves over the second, above zero where the first expected the token more."""
    if len(labels) != len(c.ids):
        raise ValueError(f"{len(labels)} labels for {len(c.ids)} tokens.")
    gained = c.bits_gained
    shown = [(label, bits) for label, bits in zip(labels, gained, strict=True) if bits is not None]
    first, second = c.mean_bits()
    fig = go.Figure(go.Bar(
        x=[label for label, _ in shown], y=[bits for _, bits in shown],
        marker_color=[FIRST_COLOUR if bits >= 0 else SECOND_COLOUR for _, bits in shown],
        hovertemplate="%{x}: %{y:+.2f} bits<extra></extra>",
    ))
    fig.update_xaxes(title_text="token", tickangle=-60)
    fig.update_yaxes(title_text=f"bits saved by {c.names[0]}", zeroline=True)
    fig.update_layout(title=f"{c.names[0]} ({first:.2f} bits a token) against {c.names[1]} ({second:.2f}): "
                            "up where the first expected the token more",
                      height=420, showlegend=False, margin=dict(l=10, r=10, t=60, b=10))
    return fig
