"""Figures as files people keep: the Plotly toolbar's image settings, and a standalone HTML page
that embeds plotly.js (it opens offline, loading nothing from a CDN)."""

from __future__ import annotations

import plotly.graph_objects as go

IMAGE_FORMATS = ("png", "svg")


def plotly_config(name: str, image_format: str = "png") -> dict:
    """Plotly's `config`: the toolbar's camera button saves `gpt2viz-<name>.<format>` at twice
    the screen's resolution, without Plotly's logo."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, not {image_format!r}.")
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": image_format, "filename": f"gpt2viz-{name}", "scale": 2}}


def standalone_html(fig: go.Figure, name: str) -> str:
    """A whole HTML page with `fig` and plotly.js inline (no external script), titled `name`."""
    html = fig.to_html(include_plotlyjs=True, full_html=True, config=plotly_config(name))
    return html.replace("<head>", f"<head><title>gpt2viz: {name}</title>", 1)
