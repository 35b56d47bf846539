"""Head-role heatmaps: the data step keeps the scores and finds the best head; the figure shows them."""

import numpy as np
import pytest
import torch

from gpt2viz.analysis import (
    attention_patterns,
    previous_token_score,
    previous_token_scores,
    trace_previous_token_scores,
)
from gpt2viz.viz.heads import head_score_map, head_scores_figure


def test_data_keeps_scores_and_best_head() -> None:
    scores = torch.tensor([[0.1, 0.2, 0.0], [0.05, 0.9, 0.3]])
    data = head_score_map(scores, "Previous-token score")
    np.testing.assert_allclose(data.values, scores.numpy())
    assert data.best == (1, 1, pytest.approx(0.9))
    with pytest.raises(ValueError, match=r"\[layer, head\]"):
        head_score_map(torch.zeros(2, 3, 4), "bad")


def test_figure_labels_every_cell_and_outlines_the_selected_head() -> None:
    data = head_score_map(torch.tensor([[0.1, 0.25], [0.5, 0.991]]), "Induction score")
    fig = head_scores_figure(data, selected=(1, 0))
    (heat,) = fig.data
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax) == (0.0, 1.0)
    np.testing.assert_allclose(np.asarray(heat.z), data.values)
    assert [list(row) for row in heat.text] == [["0.10", "0.25"], ["0.50", "0.99"]]
    (outline,) = fig.layout.shapes
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (-0.5, 0.5, 0.5, 1.5)  # head 0, layer 1
    assert fig.layout.title.text == "Induction score"
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.yaxis.autorange == "reversed"  # layer 0 on top, as in the head grid


def test_scores_from_a_recorded_trace_match_the_model_run(small_model) -> None:
    ids = [464, 3797, 3332, 319, 262, 2603, 780, 340]
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(small_model.config.n_layer)]
    trace = small_model.run_with_capture(ids, names=names)
    from_trace = trace_previous_token_scores(trace, small_model.config.n_layer)
    assert from_trace.shape == (small_model.config.n_layer, small_model.config.n_head)
    # the same as scoring the stacked [layer, head, q, k] patterns, and as running the model again
    torch.testing.assert_close(from_trace, previous_token_score(attention_patterns(small_model, ids)))
    torch.testing.assert_close(from_trace, previous_token_scores(small_model, [ids]))
