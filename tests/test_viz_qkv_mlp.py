"""The Q·K·V page's reconstruction equals the model's recorded tensors; MLP data and figures."""

import numpy as np
import pytest

import gpt2viz
from gpt2viz.viz.mlp import (
    POST,
    PRE,
    neuron_activations,
    neuron_heatmap_figure,
    top_neurons,
    top_neurons_per_token,
)
from gpt2viz.viz.qkv import (
    head_computation,
    key_window,
    matrix_figure,
    score_table,
    scores_figure,
    strongest_keys,
    vector_figure,
)
from gpt2viz.viz.tokens import token_labels
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=1)


@pytest.fixture(scope="module")
def ids():
    return gpt2viz.load_tokenizer().encode("The cat sat on the mat. The dog sat on the log.")


@pytest.fixture(scope="module")
def trace(model, ids):
    return model.run_with_capture(ids)


def computation(model, trace, ids, layer, head, query):
    return head_computation(model, trace, layer, head, query, token_labels([str(i) for i in ids]))


@pytest.mark.parametrize("layer", [0, 1])
def test_reconstruction_equals_the_recorded_hooks(model, trace, ids, layer):
    attn = f"blocks.{layer}.attn."
    for head in range(4):
        for query in (0, 3, len(ids) - 1):
            c = computation(model, trace, ids, layer, head, query)
            assert np.allclose(c.q, trace[attn + "hook_q"][query, head].numpy())
            assert np.allclose(c.keys, trace[attn + "hook_k"][:, head].numpy())
            assert np.allclose(c.values, trace[attn + "hook_v"][:, head].numpy())
            recorded_scores = trace[attn + "hook_attn_scores"][head, query].numpy()
            assert np.array_equal(np.isneginf(c.masked), np.isneginf(recorded_scores))
            assert np.isneginf(c.masked[query + 1:]).all() and np.isfinite(c.masked[: query + 1]).all()
            finite = np.isfinite(recorded_scores)
            assert np.allclose(c.masked[finite], recorded_scores[finite], atol=1e-5)
            assert np.allclose(c.scaled, c.dots / np.sqrt(c.d_head))
            assert np.allclose(c.weights, trace[attn + "hook_pattern"][head, query].numpy(), atol=1e-6)
            assert np.allclose(c.z, trace[attn + "hook_z"][query, head].numpy(), atol=1e-5)
            assert np.allclose(c.z_heads, trace[attn + "hook_z"][query].reshape(-1).numpy(), atol=1e-5)
            assert np.allclose(c.attn_out, trace[f"blocks.{layer}.hook_attn_out"][query].numpy(), atol=1e-5)
            assert [k.hook for k in c.checks] == [attn + "hook_attn_scores", attn + "hook_pattern",
                                                  attn + "hook_z", f"blocks.{layer}.hook_attn_out"]
            assert all(0 <= k.max_diff < 1e-5 for k in c.checks)


def test_checks_catch_a_recording_that_disagrees(model, ids):
    """Zero head 1's z in the model's forward: the rebuilt z (from q, k, v) no longer matches."""
    def zero(z):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    edited = model.run_with_capture(ids, edits={"blocks.0.attn.hook_z": zero})
    c = computation(model, edited, ids, 0, 1, 5)
    diffs = {k.hook: k.max_diff for k in c.checks}
    assert diffs["blocks.0.attn.hook_pattern"] < 1e-6  # q and k were not touched
    assert diffs["blocks.0.attn.hook_z"] == pytest.approx(np.abs(c.z).max(), rel=1e-5)
    assert diffs["blocks.0.hook_attn_out"] > 1e-3


def test_table_and_figures(model, trace, ids):
    c = computation(model, trace, ids, 1, 2, 4)
    table = score_table(c)
    assert list(table) == ["key", "q·k", "÷√d_head", "+ mask", "softmax"]
    assert table["+ mask"][5] == "−∞" and float(table["+ mask"][4]) == pytest.approx(c.scaled[4], abs=1e-5)
    assert table["softmax"][5] == 0.0
    fig = scores_figure(c)
    assert [d.type for d in fig.data] == ["bar", "scatter", "bar"]
    assert len(fig.data[1].x) == len(ids) - 5  # the masked keys
    assert fig.layout.xaxis2.title.text == "key position"
    k = matrix_figure(c.keys, c.key_labels, "K", 4, c.weights)
    assert k.data[0].type == "heatmap" and np.isnan(k.data[0].z[5:]).all()
    assert k.layout.yaxis.title.text == "key position"
    v = vector_figure(c.z_heads, "z", "component", boundaries=c.d_head)
    assert v.data[0].z.shape == (1, 64) and len(v.layout.shapes) == 3


def test_short_scores_figure_draws_every_key(model, trace, ids):
    c = computation(model, trace, ids, 1, 2, 4)
    fig = scores_figure(c)
    assert list(fig.data[0].x) == c.key_labels and len(fig.data) == 3  # no overview line
    assert fig.layout.title.text == f"All {len(ids)} keys of the query 4 {ids[4]}"
    np.testing.assert_allclose(fig.data[2].y, trace["pattern", 1][2, 4].numpy(), atol=1e-6)


def test_a_short_scores_figure_labels_fit(model, trace, ids, long_ids):
    few = scores_figure(computation(model, trace, ids, 0, 0, 5))  # 14 keys: beside the table, slanted
    assert list(few.layout.xaxis2.tickvals) == list(few.data[0].x) and few.layout.xaxis2.tickangle == -60
    hundred = long_ids[:100]
    c = computation(model, model.run_with_capture(hundred), hundred, 0, 0, 99)
    fig = scores_figure(c)  # 100 keys: all drawn, every 2nd labelled, upright (the page draws it full width)
    assert len(fig.data[0].x) == 100 and list(fig.layout.xaxis2.tickvals) == c.key_labels[::2]
    assert fig.layout.xaxis2.tickangle == -90


LONG = 200  # keys: past 2 × 64, so the scores chart draws a window of them


@pytest.fixture(scope="module")
def long_ids():
    rng = np.random.default_rng(0)
    return [int(i) for i in rng.integers(300, 20000, LONG)]


@pytest.fixture(scope="module")
def long_trace(model, long_ids):
    return model.run_with_capture(long_ids)


def test_key_window_ends_at_the_query():
    assert key_window(128, 100) == range(128)  # short: every key
    assert key_window(200, 190) == range(127, 191)  # the 64 keys up to the query
    assert key_window(200, 199) == range(136, 200)
    assert key_window(200, 10) == range(0, 64)  # an early query: from key 0, later keys masked
    assert key_window(1024, 1022, size=64) == range(959, 1023)


def test_strongest_keys():
    assert strongest_keys(np.array([0.1, 0.5, 0.0, 0.5, 0.2])) == [1, 3, 4]  # the earlier key first on a tie
    assert strongest_keys(np.array([1.0, 0.0, 0.0])) == [0]  # never a key of weight 0


def test_long_scores_figure_labels_every_key_of_its_window(model, long_trace, long_ids):
    layer, head, query = 1, 3, 190
    c = computation(model, long_trace, long_ids, layer, head, query)
    fig = scores_figure(c)
    labels = token_labels([str(i) for i in long_ids])
    window = labels[127:191]  # the 64 keys up to the query, worked out by hand
    pattern = long_trace["pattern", layer][head, query].numpy()
    scores, masked, weights, line, best = fig.data
    assert [d.type for d in fig.data] == ["bar", "scatter", "bar", "scatter", "scatter"]
    assert list(scores.x) == window and list(weights.x) == window and len(masked.x) == 0
    np.testing.assert_allclose(weights.y, pattern[127:191], atol=1e-6)
    recorded_scores = long_trace["attn_scores", layer][head, query].numpy()[127:191]
    np.testing.assert_allclose(scores.y, recorded_scores, atol=1e-5)
    # every key of the window labelled, upright, on the lower axis (the upper one follows it)
    assert list(fig.layout.xaxis3.tickvals) == window and fig.layout.xaxis3.tickangle == -90
    assert fig.layout.xaxis2.matches == "x3" and fig.layout.xaxis2.showticklabels is False
    # the overview: every visible key's weight over positions 0..query, the window shaded
    assert list(line.x) == list(range(query + 1))
    np.testing.assert_allclose(line.y, pattern[: query + 1], atol=1e-6)
    assert list(best.x) == [int(i) for i in np.argsort(-pattern, kind="stable")[:3]]
    assert best.text[0] == f"{labels[best.x[0]]} ({pattern[best.x[0]]:.2f})"  # the strongest is labelled
    labelled = []  # one near a stronger labelled one is not (their labels would overlap)
    for x, text in zip(best.x, best.text, strict=True):
        near = any(abs(x - y) <= LONG / 12 for y in labelled)
        assert (text == "") == near, (best.x, best.text)
        labelled += [] if near else [x]
    shaded, future = fig.layout.shapes
    assert (shaded.x0, shaded.x1) == (126.5, 190.5) and (future.x0, future.x1) == (190.5, 199.5)
    assert fig.layout.title.text == (f"Keys 127–190 of 200: the 64 up to the query {labels[190]}; "
                                     "the 9 keys after the query are masked")


def test_long_scores_figure_for_an_early_query_shows_the_mask(model, long_trace, long_ids):
    c = computation(model, long_trace, long_ids, 0, 0, 10)
    fig = scores_figure(c)
    assert len(fig.data[0].x) == 64 and len(fig.data[1].x) == 53  # keys 11–63 masked, drawn as −∞
    assert np.isnan(fig.data[0].y[11:]).all() and (np.asarray(fig.data[2].y[11:]) == 0).all()
    assert fig.layout.title.text.startswith("Keys 0–63 of 200: the 64 up to the query 10 ")
    assert fig.layout.title.text.endswith("; the 189 keys after the query are masked")
    last_but_one = scores_figure(computation(model, long_trace, long_ids, 0, 0, LONG - 2))
    assert last_but_one.layout.title.text.endswith("; the key after the query is masked")


def test_long_key_and_value_matrices_thin_their_labels(model, long_trace, long_ids):
    c = computation(model, long_trace, long_ids, 0, 1, 150)
    fig = matrix_figure(c.keys, c.key_labels, "K", 150, c.weights)
    ticks = list(fig.layout.yaxis.tickvals)
    assert len(ticks) == 40 and ticks == c.key_labels[::5]  # every 5th of 200: at most 40 labels
    assert fig.layout.height == 600


def test_mlp_top_neurons_and_stages(trace, ids):
    labels = token_labels([str(i) for i in ids])
    post = trace["blocks.0.mlp.hook_post"].numpy()
    top = top_neurons(post, 5)
    assert post[:, top].max(axis=0).tolist() == sorted(post.max(axis=0), reverse=True)[:5]
    a_post = neuron_activations(trace, 0, POST, 5, labels)
    a_pre = neuron_activations(trace, 0, PRE, 5, labels)
    assert a_post.neurons == a_pre.neurons == top and a_post.width == 256
    assert np.allclose(a_pre.values, trace["blocks.0.mlp.hook_pre"].numpy()[:, top])
    assert not np.allclose(a_pre.values, a_post.values)
    fig = neuron_heatmap_figure(a_pre)
    assert fig.data[0].type == "heatmap" and list(fig.data[0].x) == [f"n{i}" for i in top]
    assert fig.layout.xaxis.title.text == "neuron (top 5 of 256)" and fig.layout.yaxis.title.text == "token"
    assert "before GELU" in fig.layout.title.text
    table = top_neurons_per_token(trace, 0, 3, labels)
    best = int(post[2].argmax())
    assert table["#1"][2].startswith(f"n{best} ") and len(table["token"]) == len(ids)
