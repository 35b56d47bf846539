"""Figures as files: the toolbar's image settings, `fitted` (the look the page and every file
share) and standalone HTML that opens offline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

import gpt2viz
from gpt2viz.viz.export import (
    FONT_FAMILY,
    LIGHT,
    TITLE_PAD,
    fitted,
    plotly_config,
    standalone_html,
    wrap_title,
)
from tests.app_support import uniform_heatmap

PLACEHOLDER = re.compile(r"#0000[0-4]\d\b")  # Streamlit's theme colours, replaced only on its page


def figure_json(page: str) -> dict:
    """The figure (data and layout) a `standalone_html` page draws: the arguments after the div's
    id in its `Plotly.newPlot("id", data, layout, config)`."""
    decoder, at = json.JSONDecoder(), page.index("Plotly.newPlot(")
    parts = []
    for _ in range(2):
        at = page.index(",", at) + 1
        at += len(page[at:at + 100]) - len(page[at:at + 100].lstrip())
        value, at = decoder.raw_decode(page, at)
        parts.append(value)
    return {"data": parts[0], "layout": parts[1]}


@pytest.fixture
def streamlit_theme() -> Iterator[None]:
    """Figures made as in the app, where importing Streamlit makes its placeholder theme Plotly's
    default template."""
    from streamlit.elements.lib.streamlit_plotly_theme import configure_streamlit_plotly_theme

    before = pio.templates.default
    configure_streamlit_plotly_theme()
    assert pio.templates.default == "streamlit"
    yield
    pio.templates.default = before


def heatmap(n: int = 12) -> go.Figure:
    return uniform_heatmap(n, "Layer 3, head 1: attention pattern")


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
    shown = figure_json(page)
    assert shown["data"] == [{"x": ["a", "b"], "z": [[0.25, 0.75]], "type": "heatmap"}]
    assert shown["layout"]["title"]["text"] == "Layer 3, head 1"
    assert '"filename": "gpt2viz-attention_heatmap"' in page


def test_the_file_carries_no_streamlit_placeholders(streamlit_theme) -> None:
    fig = heatmap()
    assert PLACEHOLDER.search(fig.to_json())  # what the file held before: Streamlit's theme
    shown = figure_json(standalone_html(fig, "attention_heatmap"))
    text = json.dumps(shown)
    assert not PLACEHOLDER.search(text)
    template = shown["layout"]["template"]["layout"]
    assert template["paper_bgcolor"] == "white" and template["font"]["family"] == FONT_FAMILY


def test_the_file_makes_room_for_every_label(streamlit_theme) -> None:
    """Every axis sizes its margin to its tick labels and title (Plotly measures them as it draws:
    the browser test checks the drawing); the top margin holds the title's lines."""
    shown = figure_json(standalone_html(heatmap(40), "attention_heatmap"))["layout"]
    axes = [key for key in shown if key.startswith(("xaxis", "yaxis"))]
    assert axes == ["xaxis", "yaxis"] and all(shown[key]["automargin"] is True for key in axes)
    title = shown["title"]
    assert title["text"].count("<br>") == 1  # the title, then the note on masked cells
    assert title["xref"] == title["yref"] == "container" and title["x"] == 0
    assert shown["margin"]["t"] >= TITLE_PAD + 2 * 1.3 * 16 and shown["margin"]["l"] == 10


def test_fitted_leaves_its_figure_alone_and_changes_nothing_twice(streamlit_theme) -> None:
    fig = heatmap()
    before = fig.to_plotly_json()
    once = fitted(fig, title_width=300)
    assert fig.to_plotly_json() == before
    assert fitted(once).to_plotly_json() == once.to_plotly_json()
    assert fitted(once, title_width=300).to_plotly_json() == once.to_plotly_json()


def test_titles_wrap_between_words_and_keep_their_tags() -> None:
    text = ("Overview: how early each position's final choice stands out"
            "<br><sup>framed: the window below</sup>")
    wrapped = wrap_title(text, 26, 500)
    lines = wrapped.split("<br>")
    assert len(lines) == 3 and all(len(re.sub("<[^>]+>", "", line)) <= 500 / (0.55 * 26) for line in lines)
    assert lines[-1] == "<sup>framed: the window below</sup>"
    assert re.sub("<br>|<[^>]+>", " ", wrapped).split() == re.sub("<br>|<[^>]+>", " ", text).split()
    assert wrap_title("short", 26, 500) == "short"


def test_a_legend_above_the_plot_goes_under_the_title() -> None:
    fig = go.Figure([go.Bar(x=["a"], y=[1], name="temperature 0.5"),
                     go.Bar(x=["a"], y=[2], name="temperature 1")])
    fig.update_layout(title="Three temperatures", height=400,
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
    wide, narrow = fitted(fig, title_width=1200).layout, fitted(fig, title_width=300).layout
    assert wide.legend.yref == "container" and wide.legend.x == 0 and wide.legend.yanchor == "top"
    title_bottom = TITLE_PAD + 1.3 * 16
    assert (1 - wide.legend.y) * 400 >= title_bottom  # under the title's line
    assert narrow.margin.t > wide.margin.t  # two rows of legend in a narrow figure


def test_the_template_styles_every_trace_type_the_figures_draw() -> None:
    """LIGHT keeps plotly_white's defaults only for the trace types the figures use (the rest was
    most of every chart's bytes): a figure module that starts drawing another type needs it added."""
    library = Path(gpt2viz.__file__).parent
    files = [*library.rglob("*.py"), *(library.parent / "app").rglob("*.py")]  # the lesson draws too
    sources = "".join(path.read_text() for path in files)
    drawn = {name.lower() for name in re.findall(r"go\.([A-Z][A-Za-z]+)\(", sources)} - {"figure"}
    assert drawn and drawn <= set(LIGHT.to_plotly_json()["data"])
    white = pio.templates["plotly_white"]
    for kind in drawn:
        assert LIGHT.data[kind] == white.data[kind]
