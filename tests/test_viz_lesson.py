"""The Lesson's figure factories (gpt2viz.viz.lesson), from arrays: the numbers each figure
carries, its colours and ranges, and the token-id boxes' HTML (escaped, cut at MAX_ID_BOXES)."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2viz.viz.candidates import CHOSEN_COLOUR, OTHER_COLOUR
from gpt2viz.viz.lesson import (
    ALLOWED_COLOUR,
    HIDDEN_COLOUR,
    MAX_ID_BOXES,
    TEMPERATURE_COLOURS,
    UNSCALED_COLOUR,
    block_pushes_figure,
    head_bars_figure,
    masks_figure,
    mlp_widths_figure,
    sharpness_figure,
    temperatures_figure,
    token_ids_html,
)


def test_token_ids_html_escapes_each_token_and_cuts_a_long_prompt() -> None:
    html = token_ids_html(["<b>", " cat"], [27, 3797])
    assert "&lt;b&gt;<small>27</small>" in html and "·cat<small>3797</small>" in html and "<b>" not in html
    long = token_ids_html(["a"] * (MAX_ID_BOXES + 5), list(range(MAX_ID_BOXES + 5)))
    assert long.count("class='tok-id'") == MAX_ID_BOXES and "… and 5 more" in long


def test_head_bars_mark_the_selected_head_and_the_even_spread() -> None:
    weights = np.array([0.1, 0.6, 0.2], dtype=np.float32)
    fig = head_bars_figure(weights, selected=1, even=0.25, title="Layer 2")
    bar = fig.data[0]
    np.testing.assert_array_equal(bar.y, weights)
    assert list(bar.x) == ["head 0", "head 1", "head 2"] and list(bar.text) == ["10.0%", "60.0%", "20.0%"]
    assert list(bar.marker.color) == [OTHER_COLOUR, CHOSEN_COLOUR, OTHER_COLOUR]
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 0.25
    assert fig.layout.yaxis.range == pytest.approx((0, 0.72))  # 1.2 × the largest, under 1
    assert "25.0%" in fig.layout.title.text


def test_sharpness_shows_both_softmaxes_over_the_keys() -> None:
    scaled, unscaled = np.array([0.2, 0.3, 0.5]), np.array([0.01, 0.04, 0.95])
    fig = sharpness_figure(scaled, unscaled, 64, ["a", "b", "c"], "title")
    assert [t.name for t in fig.data] == ["÷ √64 (what GPT-2 does)", "without the division"]
    np.testing.assert_array_equal(fig.data[0].y, scaled)
    np.testing.assert_array_equal(fig.data[1].y, unscaled)
    assert fig.data[1].marker.color == UNSCALED_COLOUR and fig.layout.barmode == "group"


def test_masks_side_by_side() -> None:
    causal = np.tril(np.ones((3, 3), dtype=bool))
    both = np.ones((3, 3), dtype=bool)
    fig = masks_figure(causal, both, ["x", "y", "z"])
    np.testing.assert_array_equal(fig.data[0].z, causal.astype(np.float32))
    np.testing.assert_array_equal(fig.data[1].z, both.astype(np.float32))
    assert fig.data[0].text[0, 1] == "hidden" and fig.data[0].text[1, 0] == "sees"
    assert fig.data[0].colorscale == ((0, HIDDEN_COLOUR), (1, ALLOWED_COLOUR))


def test_mlp_widths_one_row_each_with_its_own_symmetric_range() -> None:
    inp, hidden, out = np.array([1.0, -2.0]), np.array([0.5, -0.1, 0.2, 3.0]), np.array([-4.0, 1.0])
    fig = mlp_widths_figure(inp, hidden, out, "title")
    assert [(t.zmin, t.zmax) for t in fig.data] == [(-2.0, 2.0), (-3.0, 3.0), (-4.0, 4.0)]
    np.testing.assert_array_equal(fig.data[1].z, hidden[None, :].astype(np.float32))
    assert fig.layout.xaxis.range == (-0.5, 3.5)  # drawn to the hidden layer's width


def test_block_pushes_add_up_to_the_running_total() -> None:
    attn, mlp = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    fig = block_pushes_figure(attn, mlp, 1.0, "title")
    total = fig.data[3]
    assert list(total.x) == ["embeddings", "block 0", "block 1"]
    np.testing.assert_allclose(total.y, [1.0, 3.5, 2.75])
    np.testing.assert_array_equal(fig.data[1].y, attn)
    np.testing.assert_array_equal(fig.data[2].y, mlp)


def test_temperatures_one_bar_series_per_temperature() -> None:
    probs = np.array([[0.5, 0.3], [0.4, 0.35], [0.2, 0.19]])
    fig = temperatures_figure([" a", "<b>"], (0.5, 1.0, 2.0), probs, "title")
    names = ["temperature 0.5", "temperature 1 (the model's own)", "temperature 2"]
    assert [t.name for t in fig.data] == names
    assert list(fig.data[0].x) == ["1. ·a", "2. &lt;b&gt;"]
    assert [t.marker.color for t in fig.data] == list(TEMPERATURE_COLOURS)
    np.testing.assert_array_equal(fig.data[2].y, probs[2])
    assert fig.layout.yaxis.range == pytest.approx((0, 0.6))
