"""gpt2viz.viz.step: one block of a cached step as data (against a full run) and as figures."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2viz.cached_step import cached_step, record_sequence
from gpt2viz.viz.step import (
    cache_overview_figure,
    kv_cache_figure,
    step_block,
    step_scores_figure,
    strips_figure,
    top_neurons_figure,
    window_rows,
)

IDS = list(range(700, 712))
LABELS = [f"{i} t{i}" for i in range(len(IDS))]


@pytest.fixture(scope="module")
def full(small_model):
    return small_model.run_with_capture(IDS)


@pytest.fixture(scope="module")
def block(small_model):
    sequence = record_sequence(small_model, IDS)
    return step_block(small_model, cached_step(small_model, sequence, 9), sequence, 1, 2, LABELS)


def test_step_block_holds_the_full_runs_numbers(small_model, full, block) -> None:
    q, d = 9, 16
    close = dict(atol=1e-5, rtol=0)
    assert block.key_labels == LABELS[:10] and block.keys.shape == block.values.shape == (10, d)
    np.testing.assert_allclose(block.keys, full["k", 1][:10, 2].numpy(), **close)
    np.testing.assert_allclose(block.values, full["v", 1][:10, 2].numpy(), **close)
    np.testing.assert_allclose(block.q, full["q", 1][q, 2].numpy(), **close)
    np.testing.assert_allclose(block.weights, full["pattern", 1][2, q, :10].numpy(), **close)
    np.testing.assert_allclose(block.dots, block.q @ block.keys.T, atol=1e-4)  # q·k by hand
    np.testing.assert_allclose(block.z, block.weights @ block.values, **close)  # weights · V by hand
    np.testing.assert_allclose(block.z_heads, full["z", 1][q].reshape(-1).numpy(), **close)
    ln_1 = small_model.h[1].ln_1
    x = full["resid_pre", 1][q].double().numpy()
    by_hand = (x - x.mean()) / np.sqrt(x.var() + 1e-5) * ln_1.weight.detach().double().numpy() \
        + ln_1.bias.detach().double().numpy()
    np.testing.assert_allclose(block.ln1, by_hand, atol=1e-4)
    np.testing.assert_allclose(block.resid_mid, block.resid_pre + block.attn_out, atol=1e-5)
    np.testing.assert_allclose(block.resid_post, block.resid_mid + block.mlp_out, atol=1e-5)
    np.testing.assert_allclose(block.mlp_post, full["post", 1][q].numpy(), **close)
    np.testing.assert_allclose(block.embed + block.pos_embed, full["resid_pre", 0][q].numpy(), **close)


@pytest.mark.parametrize("n, window, expected", [(10, 40, range(0, 10)), (100, 40, range(60, 100)),
                                                 (1, 40, range(0, 1)), (40, 40, range(0, 40))])
def test_window_rows(n, window, expected) -> None:
    assert window_rows(n, window) == expected


def test_cache_figure_marks_the_new_row_and_keeps_a_window(block) -> None:
    fig = kv_cache_figure(block.keys, block.key_labels, "keys")
    assert list(fig.data[0].y) == LABELS[:10]
    np.testing.assert_array_equal(fig.data[0].z, block.keys)
    (rect,) = fig.layout.shapes
    assert (rect.y0, rect.y1) == (8.5, 9.5)  # the last row, added by this step
    narrow = kv_cache_figure(block.keys, block.key_labels, "keys", window=4)
    assert list(narrow.data[0].y) == LABELS[6:10]
    assert (narrow.layout.shapes[0].y0, narrow.layout.shapes[0].y1) == (2.5, 3.5)


def test_scores_strips_and_neurons(block) -> None:
    scores = step_scores_figure(block, window=5)
    assert [list(t.x) for t in scores.data] == [LABELS[5:10]] * 3
    np.testing.assert_allclose(scores.data[1].y, block.scaled[5:])
    np.testing.assert_allclose(scores.data[0].y, block.scaled[5:] * 4.0)  # × √16
    strips = strips_figure([("a", block.q), ("b", block.z)], "t", boundaries=4)
    assert list(strips.data[0].y) == ["a", "b"] and len(strips.layout.shapes) == 3
    overview = cache_overview_figure(block, window=4)
    np.testing.assert_array_equal(overview.data[0].y, block.weights)  # every key, not a window
    (shade,) = overview.layout.shapes
    assert (shade.x0, shade.x1) == (5.5, 9.5)
    neurons = top_neurons_figure(block, n=5)
    order = np.argsort(-block.mlp_post)[:5]
    assert list(neurons.data[0].x) == [f"n{i}" for i in order]
    np.testing.assert_allclose(neurons.data[1].y, block.mlp_pre[order])
