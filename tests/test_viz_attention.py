"""Attention data steps and figures, on a small random model."""

import numpy as np
import pytest

import gpt2viz
from gpt2viz.viz.attention import (
    MASK_COLOUR,
    PATTERN,
    SCORES,
    attention_heatmap_figure,
    attention_matrix,
    future_mask,
    head_grid,
    head_grid_figure,
    masked_region_path,
    pooled,
    selected_head,
    step_rows_figure,
)
from gpt2viz.viz.tokens import token_labels
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def tok():
    return gpt2viz.load_tokenizer()


@pytest.fixture(scope="module")
def ids(tok):
    return tok.encode("I love the color black, I hope someday to have a cat like that.")


@pytest.fixture(scope="module")
def trace(model, ids):
    return model.run_with_capture(ids)


def test_matrix_masks_the_future_as_nan(trace, ids):
    labels = token_labels([str(i) for i in ids])
    m = attention_matrix(trace, 1, 2, PATTERN, labels)
    n = len(ids)
    assert m.values.shape == (n, n) and m.masked.shape == (n, n)
    assert np.array_equal(m.masked, np.triu(np.ones((n, n), bool), 1))
    assert np.isnan(m.values[m.masked]).all()
    recorded = trace["blocks.1.attn.hook_pattern"][2].numpy()
    assert np.allclose(m.values[~m.masked], recorded[~m.masked])
    assert np.allclose(np.nansum(m.values, axis=1), 1.0, atol=1e-5)
    scores = attention_matrix(trace, 1, 2, SCORES, labels)
    assert np.isfinite(scores.values[~scores.masked]).all() and np.isnan(scores.values[scores.masked]).all()


def test_heatmap_figure_fields(trace, ids):
    labels = token_labels([str(i) for i in ids])
    fig = attention_heatmap_figure(attention_matrix(trace, 0, 1, PATTERN, labels))
    assert [d.type for d in fig.data] == ["heatmap"]
    assert fig.layout.xaxis.title.text == "key (attended-to token)"
    assert fig.layout.yaxis.title.text == "query (attending token)"
    assert list(fig.data[0].x) == labels and list(fig.data[0].y) == labels
    assert "%{x}" in fig.data[0].hovertemplate and "%{y}" in fig.data[0].hovertemplate
    (shape,) = fig.layout.shapes
    assert shape.type == "path" and shape.fillcolor == MASK_COLOUR
    assert any("masked" in a.text for a in fig.layout.annotations)


def test_long_sequences_get_thinned_tick_labels():
    n = 300
    labels = [f"{i} t" for i in range(n)]
    values = np.tril(np.full((n, n), 1.0 / n, np.float32))
    masked = future_mask(n, n)
    from gpt2viz.viz.attention import AttentionMatrix
    fig = attention_heatmap_figure(AttentionMatrix(np.where(masked, np.nan, values), masked, labels, labels,
                                                   PATTERN, "t"))
    assert len(fig.layout.xaxis.tickvals) <= 30 and len(fig.layout.yaxis.tickvals) <= 30


def test_masked_region_path_is_the_staircase_above_the_diagonal():
    assert masked_region_path(2, 2) == "M 1.5,-0.5 L 0.5,-0.5 L 0.5,0.5 L 1.5,0.5 L 1.5,1.5 L 1.5,1.5 Z"


def test_pooled_block_means_ignore_nan():
    m = np.array([[1, np.nan, np.nan, np.nan], [1, 3, np.nan, np.nan], [1, 1, 1, np.nan], [1, 1, 1, 1]],
                 np.float32)
    p = pooled(m, 2)
    assert p.shape == (2, 2)
    assert np.allclose(p, [[5 / 3, np.nan], [1, 1]], equal_nan=True)
    assert np.array_equal(pooled(m, 10), m, equal_nan=True)


def test_head_grid_tiles_every_head_and_selects_by_click(trace, ids):
    grid = head_grid(trace, 2, 4, tile=8)
    assert grid.image.shape == (2 * 9 - 1, 4 * 9 - 1)
    tile = grid.image[9:17, 27:35]  # layer 1, head 3
    assert np.allclose(tile, pooled(np.where(future_mask(len(ids), len(ids)), np.nan,
                                             trace["blocks.1.attn.hook_pattern"][3].numpy()), 8),
                       equal_nan=True)
    fig = head_grid_figure(grid, (1, 3))
    assert [d.type for d in fig.data] == ["heatmap", "scatter"]
    assert len(fig.data[1].x) == 8
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    x, y = grid.centre(1, 3)
    (rect,) = fig.layout.shapes
    assert rect.x0 < x < rect.x1 and rect.y0 < y < rect.y1
    assert selected_head([{"x": x, "y": y, "customdata": [1, 3]}]) == (1, 3)
    assert selected_head([{"x": 0, "y": 0}]) is None


def test_step_rows_equal_the_full_sequence_rows(model, tok, ids):
    g = gpt2viz.Generation(model, tok, ids, max_new_tokens=3, names=[gpt2viz.act_name("pattern", "*")])
    list(g)  # run to the end; g.steps keeps each step's attention row
    steps = g.steps
    full = model.run_with_capture(g.ids)
    for record in steps:
        q = record.query_position
        assert record.attention_row.shape == (2, 4, q + 1)
        for layer in range(2):
            expected = full["pattern", layer][:, q, : q + 1].numpy()
            assert np.allclose(record.attention_row[layer].float().numpy(), expected, atol=2e-3)  # float16
    row = steps[-1].attention_row[1].float().numpy()
    fig = step_rows_figure(row, [str(i) for i in range(len(ids) + 2)], 1, 2, "t")
    assert fig.data[0].type == "heatmap" and list(fig.data[0].y) == [f"head {h}" for h in range(4)]
    assert fig.layout.xaxis.title.text == "cached key"


def test_figures_are_sized_to_their_content():
    from gpt2viz.viz.attention import grid_height, step_rows_height

    assert grid_height(4) >= 300 and grid_height(12) == 800 and grid_height(48) == 800
    # the step rows keep at least 30 px a head above 200 px for the title and key labels
    assert step_rows_height(4) == 320 and step_rows_height(25) == 950
    rows = step_rows_figure(np.full((4, 6), 1 / 6), [str(i) for i in range(6)], 0, 1, "t")
    assert rows.layout.height == 320
