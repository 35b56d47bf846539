"""The residual stream across depth: the lens window's edges, the logit-lens grid against the
model's own output and a hand-made lens, and the heatmap and norm figures built from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2viz
from gpt2viz.lens import logit_lens, residual_names, residual_norms
from gpt2viz.viz.candidates import CHOSEN_COLOUR, percent
from gpt2viz.viz.lens import (
    lens_grid,
    lens_window,
    logit_lens_figure,
    residual_norms_figure,
    shortened,
)
from gpt2viz.viz.tokens import token_labels, visible_token

N_LAYER = 2


@pytest.fixture(scope="module")
def model() -> gpt2viz.GPT2:
    torch.manual_seed(0)
    return gpt2viz.GPT2(gpt2viz.GPT2Config(n_layer=N_LAYER, n_head=4, n_embd=64, n_positions=128)).eval()


@pytest.fixture(scope="module")
def ids(tok) -> list[int]:
    ids = tok.encode("The cat sat on the mat because the cat was tired, and then it slept.")
    assert len(ids) > 12
    return ids


@pytest.fixture(scope="module")
def trace(model, ids) -> gpt2viz.Trace:
    return model.run_with_capture(ids, names=residual_names(N_LAYER))


@pytest.fixture(scope="module")
def window(ids) -> list[int]:
    return lens_window(len(ids), len(ids) - 1)


@pytest.fixture(scope="module")
def grid(model, tok, ids, trace, window):
    lens = logit_lens(model, trace, k=4, positions=window)
    return lens_grid(lens, tok, token_labels([tok.token_text(ids[p]) for p in window], window[0]))


def cell_text(tok, token_id: int) -> str:
    text = visible_token(tok.token_text(token_id))
    return text if len(text) <= 8 else text[:7] + "…"


@pytest.mark.parametrize(("n", "current", "width", "want"), [
    (20, 19, 12, list(range(8, 20))),  # the last position: the 12 ending at it
    (20, 14, 12, list(range(3, 15))),
    (20, 0, 12, list(range(0, 12))),  # too few before it: the first 12
    (20, 5, 12, list(range(0, 12))),
    (12, 11, 12, list(range(0, 12))),  # exactly width
    (13, 12, 12, list(range(1, 13))),
    (5, 4, 12, [0, 1, 2, 3, 4]),  # width > n: every position
    (5, 0, 12, [0, 1, 2, 3, 4]),
    (1, 0, 12, [0]),
    (20, 7, 1, [7]),
])
def test_lens_window(n, current, width, want) -> None:
    got = lens_window(n, current, width)
    assert got == want and current in got


@pytest.mark.parametrize(("n", "current", "width"), [(5, 5, 12), (5, -1, 12), (0, 0, 12), (5, 2, 0)])
def test_lens_window_refuses_what_is_out_of_range(n, current, width) -> None:
    with pytest.raises(ValueError):
        lens_window(n, current, width)


def test_shortened() -> None:
    assert shortened("·because") == "·because"  # 8 characters fit
    assert shortened("·elephant") == "·elepha…"
    assert shortened("ab", 1) == "…"


def test_grid_last_row_is_the_model_output(tok, trace, window, grid) -> None:
    rows = [p - trace.start for p in window]
    own = trace.logits[rows].double().softmax(-1).topk(4, dim=-1)  # [pos, k]
    np.testing.assert_allclose(grid.z[-1], own.values[:, 0].numpy(), atol=1e-6)
    assert grid.text[-1] == [cell_text(tok, int(i)) for i in own.indices[:, 0]]
    # the final point's top-1 is the token finally chosen, so its probability is the top-1's
    np.testing.assert_allclose(grid.final_token_probs[-1], own.values[:, 0].numpy(), atol=1e-6)
    for pos in range(len(window)):
        lines = grid.hover[-1][pos].split("\n")
        assert lines[:4] == [f"{r + 1}. {visible_token(tok.token_text(int(i)))}  {percent(float(p))}"
                             for r, (i, p) in enumerate(zip(own.indices[pos], own.values[pos], strict=True))]
        assert lines[4].startswith(f"final choice {visible_token(tok.token_text(int(own.indices[pos, 0])))}:")


def test_grid_embeddings_row_against_a_hand_made_lens(model, tok, trace, window, grid) -> None:
    rows = [p - trace.start for p in window]
    resid = trace["resid_pre", 0][rows].double()
    normed = F.layer_norm(resid, (resid.shape[-1],), model.ln_f.weight.detach().double(),
                          model.ln_f.bias.detach().double(), eps=1e-5)
    probs = (normed @ model.wte.weight.detach().double().T).softmax(-1)
    best = probs.max(-1)
    np.testing.assert_allclose(grid.z[0], best.values.numpy(), atol=1e-5)
    assert grid.text[0] == [cell_text(tok, int(i)) for i in best.indices]
    final = probs.gather(-1, trace.logits[rows].argmax(-1)[:, None])[:, 0]
    np.testing.assert_allclose(grid.final_token_probs[0], final.numpy(), atol=1e-5)


def test_grid_labels_and_shape(tok, ids, window, grid) -> None:
    assert window == list(range(len(ids) - 12, len(ids)))
    assert grid.positions == window
    assert grid.y_labels == ["embeddings", "0: after attention", "0: after MLP", "1: after attention",
                             "1: after MLP"]
    assert grid.x_labels[-1] == f"{len(ids) - 1} {visible_token(tok.token_text(ids[-1]))}"
    assert grid.z.shape == grid.final_token_probs.shape == (5, 12)
    assert len(grid.text) == len(grid.hover) == 5 and all(len(r) == 12 for r in grid.text + grid.hover)


def test_grid_needs_one_input_label_per_position(model, tok, trace) -> None:
    lens = logit_lens(model, trace, k=2, positions=[0, 1, 2])
    with pytest.raises(ValueError, match="3 positions but 2 input labels"):
        lens_grid(lens, tok, ["0 a", "1 b"])


def test_lens_figure_cells_hover_and_the_current_column(grid, window) -> None:
    current = window[-3]
    fig = logit_lens_figure(grid, current)
    (heat,) = fig.data
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax) == (0.0, 1.0)
    np.testing.assert_allclose(np.asarray(heat.z), grid.z)
    assert heat.texttemplate == "%{text}"
    plain = [[t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for t in row]
             for row in heat.text]
    assert plain == grid.text
    for point in (0, len(grid.y_labels) - 1):
        for pos in range(len(window)):
            hover = heat.customdata[point][pos]
            assert hover.startswith(f"{grid.x_labels[pos]} · {grid.y_labels[point]}<br>")
            for line in grid.hover[point][pos].split("\n")[:4]:
                token_line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                assert token_line in hover
    (outline,) = fig.layout.shapes
    col = window.index(current)
    assert (outline.x0, outline.x1) == (col - 0.5, col + 0.5)
    assert (outline.y0, outline.y1) == (-0.5, len(grid.y_labels) - 0.5)  # the whole column
    assert outline.line.color == CHOSEN_COLOUR
    assert list(fig.layout.xaxis.ticktext) == grid.x_labels
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[0] == "embeddings" and ticks[-1] == "1: after MLP = output"
    assert fig.layout.yaxis.autorange == "reversed"  # embeddings on top, the output at the bottom


def test_lens_figure_without_current_escapes_and_refuses_a_hidden_current(grid) -> None:
    assert not logit_lens_figure(grid, None).layout.shapes
    with pytest.raises(ValueError, match="not shown"):
        logit_lens_figure(grid, grid.positions[0] - 1)
    odd = dataclasses.replace(grid, text=[["<b>"] * 12 for _ in grid.text])
    (heat,) = logit_lens_figure(odd, None).data
    assert heat.text[0][0] == "&lt;b&gt;"


def test_lens_figure_is_taller_for_deeper_models(grid) -> None:
    deep = dataclasses.replace(grid, z=np.zeros((25, 12), np.float32), text=[[""] * 12] * 25,
                               hover=[[""] * 12] * 25, y_labels=[f"p{i}" for i in range(25)])
    assert logit_lens_figure(deep, None).layout.height >= 25 * 26
    assert logit_lens_figure(grid, None).layout.height >= 300


def test_residual_norms_figure_against_the_trace(trace, ids) -> None:
    norms = residual_norms(trace, N_LAYER)
    position = 4
    fig = residual_norms_figure(norms, position)
    line, attn, mlp = fig.data
    assert (line.type, attn.type, mlp.type) == ("scatter", "bar", "bar")
    points = [trace["resid_pre", 0], trace["resid_mid", 0], trace["resid_post", 0], trace["resid_mid", 1],
              trace["resid_post", 1]]
    at = [x[position].double() for x in points]
    np.testing.assert_allclose(line.y, [float(x.norm()) for x in at], rtol=1e-5)
    assert list(line.x) == norms.labels
    np.testing.assert_allclose(attn.y, [float((at[1] - at[0]).norm()), float((at[3] - at[2]).norm())],
                               rtol=1e-4)
    np.testing.assert_allclose(mlp.y, [float((at[2] - at[1]).norm()), float((at[4] - at[3]).norm())],
                               rtol=1e-4)
    assert list(attn.x) == ["0: after attention", "1: after attention"]
    assert list(mlp.x) == ["0: after MLP", "1: after MLP"]
    assert list(fig.layout.xaxis.categoryarray) == norms.labels
    assert "position 4" in fig.layout.title.text


def test_residual_norms_figure_of_a_trace_that_starts_later(trace) -> None:
    norms = residual_norms(trace, N_LAYER)
    later = residual_norms_figure(norms, position=7, start=5)  # column 2
    np.testing.assert_allclose(later.data[0].y, norms.resid[:, 2].numpy())
    assert "position 7" in later.layout.title.text
    with pytest.raises(ValueError, match="outside"):
        residual_norms_figure(norms, position=4, start=5)
    with pytest.raises(ValueError, match="outside"):
        residual_norms_figure(norms, position=norms.resid.shape[1])


def test_lens_overview_figure_covers_every_position():
    from gpt2viz.viz.lens import lens_overview_figure

    logits = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)
    fig = lens_overview_figure(logits, ["a", "b", "c"], list(range(28, 40)), 39)
    np.testing.assert_array_equal(fig.data[0].z, logits)
    frame, line = fig.layout.shapes
    assert (frame.x0, frame.x1) == (27.5, 39.5) and line.x0 == line.x1 == 39
    assert list(fig.layout.yaxis.ticktext) == ["a", "b", "c"]


def test_long_overviews_keep_each_blocks_maximum():
    from gpt2viz.viz.lens import column_maxima, lens_overview_figure

    values = np.zeros((2, 1000), dtype=np.float32)
    values[0, 517] = 9.0  # one peak in the middle of a block
    values[1, 999] = -1.0
    starts, z = column_maxima(values, 256)
    assert starts == list(range(0, 1000, 4)) and z.shape == (2, 250)
    assert z[0, 129] == 9.0 and z[0].sum() == 9.0 and z[1, 249] == 0.0
    fig = lens_overview_figure(values, ["a", "b"], list(range(988, 1000)), 999)
    assert list(fig.data[0].x) == starts and fig.data[0].z.shape == (2, 250)
