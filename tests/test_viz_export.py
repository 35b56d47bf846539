"""Figures as files: the toolbar's image settings and standalone HTML that opens offline."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
import pytest

from gpt2viz.viz.export import plotly_config, standalone_html


def test_toolbar_saves_png_or_svg_with_a_name() -> None:
    assert plotly_config("attention_heatmap") == {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": "gpt2viz-attention_heatmap", "scale": 2}}
    assert plotly_config("x", "svg")["toImageButtonOptions"]["format"] == "svg"
    with pytest.raises(ValueError, match="image_format must be one of"):
        plotly_config("x", "jpeg")


def test_standalone_html_embeds_plotly_and_loads_nothing_else() -> None:
    fig = go.Figure(go.Heatmap(z=[[0.25, 0.75]], x=["a", "b"]), layout=dict(title="Layer 3, head 1"))
    page = standalone_html(fig, "attention_heatmap")
    assert page.startswith("<!doctype html>") and "<title>gpt2viz: attention_heatmap</title>" in page
    assert not re.search(r"<script[^>]+src=", page)  # no CDN, no external script at all
    assert re.search(r"plotly\.js v\d+\.\d+\.\d+", page) and len(page) > 1_000_000  # inline
    data = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{\"title", page, re.S)
    (trace,) = json.loads(data.group(1))
    assert trace == {"x": ["a", "b"], "z": [[0.25, 0.75]], "type": "heatmap"} and "Layer 3, head 1" in page
    assert '"filename": "gpt2viz-attention_heatmap"' in page
