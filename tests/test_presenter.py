"""Presenter view's figures, without a browser: larger text, labels thinned to what fits, titles
wrapped, stacked subplots spaced for the larger text (tests/test_browser_presenter.py checks the
drawing)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from app.presenter import BASE_FONT_PX, PRESENTER_STYLE, SIDE_BY_SIDE, presenter_css
from app.stylesheet import script, section
from gpt2viz.viz.export import CHAR_WIDTH
from gpt2viz.viz.heads import HeadScores, head_scores_figure
from gpt2viz.viz.projector import (
    FIGURE_MIN_WIDTH,
    GAPS_AT_MOST,
    HEIGHT_SCALE,
    MAX_HEIGHT,
    MIN_HEIGHT,
    SIDE_MARGINS,
    SLANTED_SPACING,
    SUBTITLE_FONT,
    TICK_FONT,
    TITLE_FONT,
    enlarged,
    for_projector,
    projector_height,
    respaced_rows,
    row_gap_px,
    row_ticks,
    slanted_ticks,
)
from tests.app_support import uniform_heatmap


def heatmap(n: int = 8) -> go.Figure:
    return uniform_heatmap(n, "Layer 0, head 0: attention pattern")


def test_enlarged_is_a_larger_copy() -> None:
    fig = heatmap(8)
    before = fig.to_plotly_json()
    big = enlarged(fig)
    assert fig.to_plotly_json() == before
    assert big.layout.font.size == 20 and big.layout.title.font.size == TITLE_FONT
    assert big.layout.xaxis.tickfont.size == big.layout.yaxis.tickfont.size == TICK_FONT
    assert MIN_HEIGHT <= big.layout.height <= MAX_HEIGHT
    assert enlarged(fig, height=450).layout.height == 450


def test_long_token_axes_are_thinned_to_what_fits_the_larger_font() -> None:
    fig = heatmap(64)
    assert len(fig.layout.xaxis.tickvals) == 22  # the normal view's every 3rd label
    big = enlarged(fig)
    x, y = big.layout.xaxis, big.layout.yaxis
    assert x.tickmode == y.tickmode == "auto" and x.tickvals is None and y.tickvals is None
    # x: slanted labels, as many as fit the narrowest figure at their spacing; y: Plotly counts
    # the axis's pixels (it spaces upright labels well)
    assert x.nticks == int((FIGURE_MIN_WIDTH - SIDE_MARGINS) / (SLANTED_SPACING * TICK_FONT)) < 22
    assert y.nticks is None
    assert enlarged(fig, width=700).layout.xaxis.nticks < x.nticks  # a narrower figure: fewer


def test_a_short_slanted_axis_keeps_every_label() -> None:
    labels = [f"{i}: after attention" for i in range(9)]
    fig = go.Figure(go.Bar(x=labels, y=np.arange(9)))
    fig.update_xaxes(tickangle=-45)
    assert enlarged(fig).layout.xaxis.nticks >= 9


def test_text_in_cells_grows_with_the_figure() -> None:
    scores = HeadScores(np.full((4, 4), 0.5, np.float32), "Induction score", (0, 0, 0.5))
    fig = head_scores_figure(scores, (0, 0))
    assert fig.data[0].textfont.size == 11
    big = enlarged(fig)
    assert big.data[0].textfont.size == TICK_FONT  # 11 · 20/12, at most the ticks' size
    assert big.data[0].colorbar.tickfont.size == TICK_FONT
    bars = enlarged(go.Figure(go.Bar(x=["a"], y=[1], text=["1"])))
    assert bars.data[0].textfont.size == TICK_FONT


def test_titles_are_wrapped_to_the_figures_width() -> None:
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    fig.update_layout(title="Overview: how early each position's final choice stands out "
                            "(framed: the window below)")
    for width in (FIGURE_MIN_WIDTH, 680):
        lines = for_projector(fig, width=width).layout.title.text.split("<br>")
        assert len(lines) >= 2
        assert all(len(re.sub("<[^>]+>", "", line)) * CHAR_WIDTH * TITLE_FONT <= width for line in lines)


def test_stacked_subplots_make_room_for_the_larger_text() -> None:
    """Between two rows: the upper row's tick labels and the lower row's title, at the enlarged
    sizes; each row's title moves with its row, and a short row gets few y ticks."""
    fig = make_subplots(rows=3, cols=1, vertical_spacing=0.07,
                        subplot_titles=("q·k", "÷ √64", "softmax weight"))
    for row in (1, 2, 3):
        fig.add_trace(go.Bar(x=[f"key {i}" for i in range(20)], y=np.arange(20.0)), row=row, col=1)
    fig.update_layout(height=480)
    big = for_projector(fig)
    domains = [big.layout[f"yaxis{i}"].domain for i in ("", "2", "3")]
    plot_px = big.layout.height - big.layout.margin.t  # at least: the bottom margin is smaller than this
    for upper, lower in zip(domains, domains[1:], strict=False):
        assert (upper[0] - lower[1]) * plot_px >= TICK_FONT * 1.4 + SUBTITLE_FONT * 1.3
        assert upper[1] - upper[0] > 0.1
    assert domains[0][1] == 1.0
    titles = {a.text: a.y for a in big.layout.annotations}
    assert [titles[t] for t in ("q·k", "÷ √64", "softmax weight")] == [d[1] for d in domains]
    assert all(big.layout[f"yaxis{i}"].nticks and big.layout[f"yaxis{i}"].nticks <= 5 for i in ("", "2", "3"))


def test_side_by_side_subplots_keep_their_places() -> None:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("causal", "bidirectional"))
    fig.add_trace(go.Heatmap(z=[[1, 0], [1, 1]]), row=1, col=1)
    fig.add_trace(go.Heatmap(z=[[1, 1], [1, 1]]), row=1, col=2)
    big = for_projector(fig)
    assert big.layout.yaxis.domain == fig.layout.yaxis.domain
    assert [a.y for a in big.layout.annotations] == [a.y for a in fig.layout.annotations]


def test_a_figures_height_on_a_projector() -> None:
    assert projector_height(None) == int(450 * HEIGHT_SCALE)  # Plotly's own 450
    assert projector_height(300) == MIN_HEIGHT and projector_height(600) == MAX_HEIGHT
    assert projector_height(400) == 540


def test_how_many_ticks_fit() -> None:
    assert slanted_ticks(580) == int(580 / (SLANTED_SPACING * TICK_FONT)) == 20
    assert slanted_ticks(580, share=0.5) == 10 and slanted_ticks(50) == 4  # never fewer than 4
    assert [row_ticks(px) for px in (40, 100, 299, 300)] == [2, 2, 8, None]


def test_stacked_rows_are_respaced_by_the_gaps_they_need() -> None:
    gap = row_gap_px(upper_labelled=True, lower_titled=True)
    assert gap == TICK_FONT * 1.6 + SUBTITLE_FONT * 1.4 + 12
    assert row_gap_px(False, False) == 12
    rows = respaced_rows([(0.55, 1.0), (0.0, 0.45)], [gap], plot_px=400)
    (low1, top1), (low2, top2) = rows
    assert top1 == 1.0 and low1 - top2 == pytest.approx(gap / 400)  # the gap, in paper units
    assert top1 - low1 == pytest.approx(top2 - low2) and low2 == pytest.approx(0.0, abs=1e-9)
    # gaps wider than half the plot are cut to half of it, in proportion
    squeezed = respaced_rows([(0.7, 1.0), (0.35, 0.65), (0.0, 0.3)], [300, 100], plot_px=400)
    gaps = [squeezed[0][0] - squeezed[1][1], squeezed[1][0] - squeezed[2][1]]
    assert sum(gaps) == pytest.approx(GAPS_AT_MOST) and gaps[0] == pytest.approx(3 * gaps[1])


def test_presenter_css_is_the_stylesheets_section_with_the_codes_values() -> None:
    css = presenter_css()
    assert css.startswith(f'<style id="{PRESENTER_STYLE}">') and "$" not in css
    assert f"font-size: {BASE_FONT_PX}px" in css and f"min(100%, {FIGURE_MIN_WIDTH}px)" in css
    assert f".st-key-{SIDE_BY_SIDE} " in css
    assert ".lesson-demo blockquote" in section("lesson-demo") and "$" not in section("lesson-demo")
    with pytest.raises(KeyError):
        section("presenter")  # its values are missing
    assert 'document.getElementById("gpt2viz-presenter")' in script("fold_sidebar.js")


def test_the_app_has_one_stylesheet() -> None:
    """No CSS in the app's Python: style.css is the app's only stylesheet."""
    root = Path(__file__).resolve().parent.parent / "app"
    inline = [path.name for path in root.rglob("*.py") if path.name != "stylesheet.py"
              and re.search(r"<style|\{[^{}]*:[^{}]*;", path.read_text())]
    assert inline == []
