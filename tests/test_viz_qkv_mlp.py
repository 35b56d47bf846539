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
from gpt2viz.viz.qkv import head_computation, matrix_figure, score_table, scores_figure, vector_figure
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
