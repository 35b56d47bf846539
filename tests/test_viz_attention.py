"""Attention data steps and figures, on a small random model."""

import numpy as np
import pytest
import torch

import gpt2viz
from gpt2viz.analysis import attention_overview, block_max
from gpt2viz.viz.attention import (
    MASK_COLOUR,
    MASK_NOTE,
    PATTERN,
    SCORES,
    WINDOW,
    AttentionMatrix,
    attention_heatmap_figure,
    attention_layer_names,
    attention_matrix,
    find_positions,
    future_mask,
    head_grid_figure,
    masked_region_path,
    overview_figure,
    scores_from_qk,
    selected_head,
    step_rows_figure,
    window_around,
    window_at,
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
    # the scores are rebuilt from q and k; the model's own recorded scores agree
    recorded = trace["attn_scores", 1][2].numpy()
    assert np.allclose(scores.values[~scores.masked], recorded[~scores.masked], atol=1e-5)


def test_scores_from_q_and_k_match_the_recorded_ones_and_need_the_whole_sequence(model, ids):
    trace = model.run_with_capture(ids)
    for layer, head in ((0, 0), (1, 3)):
        want = trace["attn_scores", layer][head].numpy()
        got = scores_from_qk(trace, layer, head)
        visible = ~future_mask(len(ids), len(ids))
        assert np.allclose(got[visible], want[visible], atol=1e-5)
    cache = model.new_cache()
    model.run_with_capture(ids[:-1], names=[], cache=cache)
    step = model.run_with_capture(ids[-1:], cache=cache)
    with pytest.raises(ValueError, match="whole sequence"):
        scores_from_qk(step, 0, 0)


def test_the_page_recording_keeps_one_layer_with_half_patterns(model, ids):
    from gpt2viz.viz.attention import HALF_PATTERNS

    full = model.run_with_capture(ids)
    one = model.run_with_capture(ids, names=attention_layer_names(1), record_as=HALF_PATTERNS,
                                 with_logits=False)
    assert one.names() == ["blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_pattern"]
    assert one.logits is None and one["pattern", 1].dtype == torch.float16
    assert torch.allclose(one["q", 1], full["q", 1], atol=1e-5)  # layer 0 ran fused here
    assert torch.allclose(one["pattern", 1].float(), full["pattern", 1], atol=5e-4)  # float16 rounding


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
    # the note sits under the title, not on the plot, where it would hide cells and labels
    assert not fig.layout.annotations and f"<br><sup>{MASK_NOTE}</sup>" in fig.layout.title.text


def test_long_sequences_get_thinned_tick_labels():
    n = 300
    labels = [f"{i} t" for i in range(n)]
    values = np.tril(np.full((n, n), 1.0 / n, np.float32))
    masked = future_mask(n, n)
    fig = attention_heatmap_figure(AttentionMatrix(np.where(masked, np.nan, values), masked, labels, labels,
                                                   PATTERN, "t"))
    assert len(fig.layout.xaxis.tickvals) <= 30 and len(fig.layout.yaxis.tickvals) <= 30


def test_masked_region_path_is_the_staircase_above_the_diagonal():
    assert masked_region_path(2, 2) == "M 1.5,-0.5 L 0.5,-0.5 L 0.5,0.5 L 1.5,0.5 L 1.5,1.5 L 1.5,1.5 Z"


def test_block_max_keeps_the_strongest_cell_of_each_block():
    # a constructed pattern: one bright cell per 4 × 4 block, elsewhere small weights
    n = 16
    m = np.full((n, n), 0.01, np.float32)
    m[np.triu_indices(n, 1)] = np.nan  # masked
    m[5, 2] = 0.9
    m[14, 13] = 0.7
    o = block_max(m, 4)
    assert o.values.shape == (4, 4) and o.row_starts.tolist() == [0, 4, 8, 12] == o.col_starts.tolist()
    assert o.values[1, 0] == pytest.approx(0.9) and o.values[3, 3] == pytest.approx(0.7)
    assert np.isnan(o.values[0, 1]) and np.isnan(o.values[0, 3])  # wholly masked blocks stay NaN
    assert o.values[2, 1] == pytest.approx(0.01)
    # a one-cell-wide diagonal stripe survives pooling (a mean would dilute it 4×)
    stripe = np.where(np.eye(n, k=-1, dtype=bool), 1.0, 0.0).astype(np.float32)
    assert (block_max(stripe, 4).values.diagonal() == 1.0).all()
    assert np.array_equal(block_max(m, 100).values, m, equal_nan=True)  # small enough: unchanged
    # uneven blocks: 10 rows into 4 blocks
    assert block_max(np.zeros((10, 10), np.float32), 4).row_starts.tolist() == [0, 2, 5, 7]


def test_overview_figure_hovers_block_positions_and_outlines_the_window():
    o = block_max(np.tril(np.ones((300, 300), np.float32)), 100)
    fig = overview_figure(o, PATTERN, "t", window_at(200, 190, 300))
    (heat,) = fig.data
    assert heat.z.shape == (100, 100) and heat.x[1] == 3 and heat.y[-1] == 297
    assert tuple(heat.customdata[1, 2]) == (3, 5, 6, 8)  # queries 3–5, keys 6–8
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (189.5, 253.5, 199.5, 263.5)


def test_zoom_window_stays_inside_and_token_search_lands_on_it(model, tok):
    assert window_at(0, 0, 1000) == (range(0, WINDOW), range(0, WINDOW))
    assert window_at(990, 5, 1000) == (range(1000 - WINDOW, 1000), range(5, 5 + WINDOW))
    assert window_at(0, 0, 20) == (range(0, 20), range(0, 20))  # shorter than a window
    texts = tok.token_texts(tok.encode("the dog " * 100 + "and a cat sat on the mat " + "the dog " * 20))
    (cat,) = find_positions(texts, "cat")
    assert texts[cat] == " cat" and find_positions(texts, " CAT ") == [cat]
    assert find_positions(texts, "zebra") == [] and find_positions(texts, "  ") == []
    first_query, first_key = window_around(cat, len(texts))
    rows, cols = window_at(first_query, first_key, len(texts))
    assert rows.stop - 1 == cat and cat in cols  # the found token is the window's last row
    assert window_around(3, 500) == (0, 0) and window_around(499, 500) == (500 - WINDOW, 500 - WINDOW)
    # the zoomed matrix is that block of the full one, with its labels and its masked staircase
    ids = tok.encode("the dog " * 90)
    trace = model.run_with_capture(ids, names=attention_layer_names(0))
    labels = token_labels(tok.token_texts(ids))
    full = attention_matrix(trace, 0, 1, PATTERN, labels)
    zoom = attention_matrix(trace, 0, 1, PATTERN, labels, window=(100, 90))
    assert zoom.values.shape == (WINDOW, WINDOW)
    assert np.array_equal(zoom.values, full.values[100:164, 90:154], equal_nan=True)
    assert zoom.query_labels == labels[100:164] and zoom.key_labels == labels[90:154]
    assert zoom.query_offset == 10 and np.array_equal(zoom.masked, np.isnan(zoom.values))
    assert "queries 100–163, keys 90–153" in zoom.title


def test_overview_tiles_every_head_in_one_pass_and_selects_by_click(model, ids):
    trace = model.run_with_capture(ids)
    summary = attention_overview(model, ids, tile=8)
    grid = summary.grid
    assert grid.image.shape == (2 * 9 - 1, 4 * 9 - 1)
    tile = grid.image[9:17, 27:35]  # layer 1, head 3
    pattern = trace["blocks.1.attn.hook_pattern"][3].numpy()
    assert np.allclose(tile, block_max(np.where(future_mask(len(ids), len(ids)), np.nan, pattern), 8).values,
                       equal_nan=True)
    diagonal = torch.stack([trace["pattern", layer].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)
                            for layer in range(2)])
    assert torch.allclose(summary.roles["previous_token"], diagonal, atol=1e-6)
    fig = head_grid_figure(grid, (1, 3))
    assert [d.type for d in fig.data] == ["heatmap", "scatter"]
    assert len(fig.data[1].x) == 8
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    x, y = grid.centre(1, 3)
    (rect,) = fig.layout.shapes
    assert rect.x0 < x < rect.x1 and rect.y0 < y < rect.y1
    assert selected_head([{"x": x, "y": y, "customdata": [1, 3]}]) == (1, 3)
    assert selected_head([{"x": 0, "y": 0}]) is None


@pytest.mark.parametrize(("n", "tile"), [(1, 8), (5, 8), (17, 8), (23, 24), (37, 8), (100, 24)])
def test_every_heads_tile_is_the_masked_block_maximum_at_any_length(model, n, tile):
    """Lengths that do not divide into the tiles, and tiles larger than the sequence: every head's
    tile equals block_max of its pattern with the future cells NaN (NaN only where a whole block is
    in the future)."""
    ids = list(range(300, 300 + n))
    trace = model.run_with_capture(ids)
    grid = attention_overview(model, ids, tile=tile).grid
    size, step = min(tile, n), min(tile, n) + 1
    for layer in range(2):
        for head in range(4):
            pattern = trace["pattern", layer][head].numpy()
            want = block_max(np.where(future_mask(n, n), np.nan, pattern), size).values
            got = grid.image[layer * step:layer * step + size, head * step:head * step + size]
            np.testing.assert_allclose(got, want, atol=1e-6)  # NaN where want is NaN


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


def test_a_colour_scale_without_the_first_token():
    from gpt2viz.viz.attention import weight_scale_top

    values = np.array([[1.0, np.nan, np.nan], [0.9, 0.1, np.nan], [0.6, 0.3, 0.1]], dtype=np.float32)
    masked = np.isnan(values)
    labels = ["0 a", "1 b", "2 c"]
    m = AttentionMatrix(values, masked, labels, labels, PATTERN, "t")
    assert weight_scale_top(m, without_first=False) == 1.0
    assert weight_scale_top(m, without_first=True) == pytest.approx(0.3)
    fig = attention_heatmap_figure(m, without_first=True)
    assert fig.data[0].zmax == pytest.approx(0.3) and "Colour scale up to 0.30" in fig.layout.title.text
    assert attention_heatmap_figure(m).data[0].zmax == 1.0
    window = AttentionMatrix(values, masked, labels, labels, PATTERN, "t", first_key=64)  # key 0 not shown
    assert weight_scale_top(window, without_first=True) == 1.0
    only_first = AttentionMatrix(values[:, :1], masked[:, :1], labels, labels[:1], PATTERN, "t")
    assert weight_scale_top(only_first, without_first=True) == 1.0
    scores = AttentionMatrix(values, masked, labels, labels, SCORES, "t")
    assert attention_heatmap_figure(scores, without_first=True).data[0].zmax is None
