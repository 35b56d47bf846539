"""Figures on narrow screens: the layouts `fitted` puts in a figure for narrower widths (titles
rewrapped, the figure taller by the lines they gained, category labels thinned to what fits), and
the page's part of it (app/layout.py: the stylesheet's screens section and its script)."""

from __future__ import annotations

import math
import re

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.layout import FOLD_BELOW, MODEBAR_ROW, screens_css, screens_script
from gpt2viz.viz import narrow
from gpt2viz.viz.export import CHAR_WIDTH, TITLE_PAD, fitted
from gpt2viz.viz.tokens import thinned
from tests.app_support import uniform_heatmap

TAG = re.compile(r"<[^>]+>")


def chosen(fig: go.Figure, width: float) -> dict:
    """What the page's script applies to `fig` drawn `width` px wide (app/static/screens.js)."""
    layouts = fig.layout.meta["narrow"]
    want = dict(layouts["wide"])
    for below, update in layouts["below"]:
        if width < below:
            want = {**layouts["wide"], **update}
    return want


def token_heatmap(n: int) -> go.Figure:
    labels = [f"{i}:tok{i}" for i in range(n)]
    fig = go.Figure(go.Heatmap(z=[[0.0] * n] * n, x=labels, y=labels))
    fig.update_xaxes(tickmode="array", tickvals=thinned(labels, 30), tickangle=-60)
    fig.update_layout(title="Layer 0, head 0: attention pattern of every query over every key", height=500)
    return fig


def test_the_wide_layout_is_the_figures_own() -> None:
    fig = fitted(token_heatmap(30))
    wide = fig.layout.meta["narrow"]["wide"]
    assert wide["title.text"] == fig.layout.title.text and wide["margin.t"] == fig.layout.margin.t
    assert fig.layout.height == 500 and wide["xaxis.tickmode"] == "array"
    assert chosen(fig, 1600) == wide


def test_a_long_title_wraps_to_the_width_and_the_plot_makes_room_for_its_lines() -> None:
    fig = fitted(token_heatmap(30))
    size = 16
    for width in (900, 700, 500, 390, 300):
        want = chosen(fig, width)
        lines = want["title.text"].split("<br>")
        room = width - 2 * TITLE_PAD
        assert all(len(TAG.sub("", line)) * CHAR_WIDTH * size <= room for line in lines), width
        assert want["margin.t"] >= int(TITLE_PAD * 2 + 1.3 * size * len(lines))
        first_line = (1 - want["title.y"]) * fig.layout.height  # its baseline, px from the top: it stays put
        assert abs(first_line - (TITLE_PAD + size)) < 0.1
    assert chosen(fig, 300)["margin.t"] > fig.layout.margin.t
    assert "height" not in fig.layout.meta["narrow"]["wide"]  # the page keeps a figure's height


def test_subplot_titles_wrap_in_their_columns_and_shrink_to_their_longest_word() -> None:
    fig = make_subplots(rows=1, cols=4, subplot_titles=("logits", "÷ temperature", "kept by top-k / top-p",
                                                        "probability"))
    for col in range(1, 5):
        fig.add_trace(go.Bar(x=[1, 2], y=["a", "b"], orientation="h"), row=1, col=col)
    fig.update_layout(title="Sampling")
    shown = fitted(fig)
    wide, narrow_ = chosen(shown, 1600), chosen(shown, 360)
    assert wide["annotations[2].text"] == "kept by top-k / top-p"
    assert narrow_["annotations[2].text"].count("<br>") >= 1
    assert narrow_["annotations[1].font.size"] < wide["annotations[1].font.size"]
    assert narrow_["margin.t"] > wide["margin.t"]  # the wrapped titles' lines above the plot


def test_category_labels_thin_to_what_fits() -> None:
    fig = fitted(token_heatmap(60))
    own_stride = 2  # thinned(60 labels, 30)
    strides = []
    for width in (1300, 900, 600, 390):
        want = chosen(fig, width)
        strides.append(want["xaxis.dtick"] if want["xaxis.tickmode"] == "linear" else own_stride)
        if want["xaxis.tickmode"] == "linear":
            assert want["xaxis.tick0"] == 0
            length = width - narrow.side_px(fig)
            assert math.ceil(60 / want["xaxis.dtick"]) * narrow.SLANTED_SPACING * 12 <= length
    assert strides == sorted(strides) and strides[-1] > own_stride


def test_an_axis_with_its_own_texts_keeps_every_kth() -> None:
    fig = go.Figure(go.Heatmap(z=[[0.0] * 40], x=list(range(40))))
    fig.update_xaxes(tickmode="array", tickvals=list(range(40)), ticktext=[f"t{i}" for i in range(40)],
                     tickangle=-45)
    want = chosen(fitted(fig), 390)
    k = want["xaxis.tickvals"][1]
    assert k > 1 and want["xaxis.tickvals"] == list(range(0, 40, k))
    assert want["xaxis.ticktext"] == [f"t{i}" for i in range(0, 40, k)]


def test_a_figure_that_fits_every_width_carries_nothing() -> None:
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    fig.update_layout(title="Two bars")
    assert fitted(fig).layout.meta is None


def test_layouts_keep_only_what_changes() -> None:
    wide = {"a": 1, "b": 2}
    at_width = [(400, {"a": 1, "b": 2}), (360, {"a": 1, "b": 3}), (320, {"a": 1, "b": 3}),
                (280, {"a": 4, "b": 3})]
    assert narrow.layouts(wide, at_width) == [[400, {"b": 3}], [320, {"a": 4, "b": 3}]]


def test_fitted_is_still_unchanged_by_a_second_pass() -> None:
    for fig in (token_heatmap(45), uniform_heatmap(20)):
        once = fitted(fig)
        assert fitted(once).to_plotly_json() == once.to_plotly_json()
        assert once.layout.meta["narrow"]["below"]


def test_the_screens_section_and_script_carry_the_codes_values() -> None:
    css = screens_css()
    assert css.startswith("<style>") and "$" not in css and f"top: -{MODEBAR_ROW}px" in css
    assert f"(max-width: {FOLD_BELOW - 1}px)" in css
    code = screens_script()
    assert code.startswith("<script>") and f"const FOLD_BELOW = {FOLD_BELOW};" in code and "$" not in code
