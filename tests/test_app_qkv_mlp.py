"""The Q·K·V and MLP pages in AppTest."""

import re

import numpy as np
import pytest

from tests.app_support import (
    GENERATE,
    MLP,
    QKV,
    app_config,
    app_gpt2,
    chart_keys,
    figure,
    generate,
    n_tokens,
    new_app,
    session_generation,
    texts,
)

pytestmark = pytest.mark.usefixtures("app_model")


@pytest.fixture
def qkv():
    return generate(new_app(), "The cat sat on the mat because", max_new_tokens=2).switch_page(QKV).run()


def recorded(at):
    """A run of the model outside the app on the session's whole sequence, recording every hook."""
    return app_gpt2().run_with_capture(session_generation(at).ids)


def test_qkv_page_shows_every_stage(qkv):
    assert not qkv.exception
    assert chart_keys(qkv) == ["q_vector", "k_matrix", "scores", "v_matrix", "z_vector", "z_heads",
                               "attn_out"]
    config = app_config()
    assert figure(qkv, "q_vector")["data"][0]["z"].shape == (1, config.d_head)
    k = figure(qkv, "k_matrix")
    assert k["data"][0]["z"].shape == (n_tokens(qkv), config.d_head)
    assert k["layout"]["yaxis"]["title"]["text"] == "key position"
    scores = figure(qkv, "scores")
    assert [d["type"] for d in scores["data"]] == ["bar", "scatter", "bar"]
    assert figure(qkv, "z_heads")["data"][0]["z"].shape == (1, config.n_embd)
    assert figure(qkv, "attn_out")["layout"]["xaxis"]["title"]["text"] == "d_model component"
    table = qkv.dataframe[0].value
    assert list(table.columns) == ["key", "q·k", "÷√d_head", "+ mask", "softmax"]
    assert len(table) == n_tokens(qkv) and abs(table["softmax"].sum() - 1) < 1e-3
    # the numbers are the model's own for layer 0, head 0 and the last step's query (token n-2)
    n = n_tokens(qkv)
    trace = recorded(qkv)
    np.testing.assert_allclose(figure(qkv, "q_vector")["data"][0]["z"][0], trace["q", 0][n - 2, 0].numpy(),
                               atol=1e-5)
    keys = k["data"][0]["z"]
    np.testing.assert_allclose(keys[: n - 1], trace["k", 0][: n - 1, 0].numpy(), atol=1e-5)
    assert np.isnan(keys[n - 1:]).all()  # the key after the query is masked
    np.testing.assert_allclose(table["softmax"], trace["pattern", 0][0, n - 2].numpy(), atol=1e-5)
    np.testing.assert_allclose(figure(qkv, "z_heads")["data"][0]["z"][0], trace["z", 0][n - 2].reshape(-1),
                               atol=1e-5)
    np.testing.assert_allclose(figure(qkv, "attn_out")["data"][0]["z"][0], trace["attn_out", 0][n - 2],
                               atol=1e-5)


def test_qkv_page_reconstruction_matches_the_recorded_tensors(qkv):
    notes = [c for c in texts(qkv, "caption") if "Rebuilt vs recorded" in c]
    diffs = [float(x) for note in notes for x in re.findall(r"max \|Δ\| = (\d\.\d\de[+-]\d+)", note)]
    assert len(diffs) == 4 and max(diffs) < 1e-4


def test_query_and_head_select_other_numbers(qkv):
    config = app_config()
    before = figure(qkv, "q_vector")["data"][0]["z"]
    qkv.selectbox(key="query").select(3).run()
    after_query = figure(qkv, "q_vector")["data"][0]["z"]
    assert not np.allclose(before, after_query)
    assert table_masked(qkv) == n_tokens(qkv) - 4
    qkv.selectbox(key="head").select(config.n_head - 1).run()
    assert not np.allclose(after_query, figure(qkv, "q_vector")["data"][0]["z"])


def test_the_selected_step_sets_the_query():
    at = generate(new_app(), "The cat sat on the mat because", max_new_tokens=3)
    prompt_len = n_tokens(at) - len(session_generation(at).steps)
    at.switch_page(QKV).run()
    assert at.selectbox(key="query").value == n_tokens(at) - 2  # predicted the last token
    at.switch_page(GENERATE).run()
    at.select_slider(key="step").set_value(0).run()
    at.switch_page(QKV).run()
    assert at.selectbox(key="query").value == prompt_len - 1  # the prompt's last token


def table_masked(at) -> int:
    return int((at.dataframe[0].value["+ mask"] == "−∞").sum())


def test_mlp_page_heatmap_stage_and_layer():
    at = generate(new_app(), "The cat sat on the mat because", max_new_tokens=2).switch_page(MLP).run()
    assert not at.exception
    config = app_config()
    fig = figure(at, "mlp_heatmap")
    assert [d["type"] for d in fig["data"]] == ["heatmap"]
    n = n_tokens(at)
    assert fig["data"][0]["z"].shape == (n, 32)
    assert fig["layout"]["xaxis"]["title"]["text"] == f"neuron (top 32 of {config.d_mlp})"
    assert fig["layout"]["yaxis"]["title"]["text"] == "token"
    assert "after GELU" in fig["layout"]["title"]["text"]
    post = fig["data"][0]["z"]
    # the 32 neurons with the highest peak after GELU in layer 0, highest first, from the model's own run
    trace = recorded(at)
    every = trace["post", 0].numpy()
    top = np.argsort(-every.max(axis=0))[:32]
    assert list(fig["data"][0]["x"]) == [f"n{i}" for i in top]
    np.testing.assert_allclose(post, every[:, top], atol=1e-5)
    at.radio(key="mlp_stage").set_value("pre").run()
    pre = figure(at, "mlp_heatmap")
    assert "before GELU" in pre["layout"]["title"]["text"] and not np.allclose(pre["data"][0]["z"], post)
    assert pre["data"][0]["x"] == fig["data"][0]["x"]  # the same neurons
    np.testing.assert_allclose(pre["data"][0]["z"], trace["pre", 0].numpy()[:, top], atol=1e-5)
    at.selectbox(key="layer").select(config.n_layer - 1).run()
    assert not np.allclose(figure(at, "mlp_heatmap")["data"][0]["z"], pre["data"][0]["z"])
    at.slider(key="mlp_top_n").set_value(8).run()
    last = config.n_layer - 1
    top = np.argsort(-trace["post", last].numpy().max(axis=0))[:8]
    fig = figure(at, "mlp_heatmap")
    assert list(fig["data"][0]["x"]) == [f"n{i}" for i in top]
    np.testing.assert_allclose(fig["data"][0]["z"], trace["pre", last].numpy()[:, top], atol=1e-5)
    table = at.dataframe[0].value
    assert list(table.columns) == ["token", "#1", "#2", "#3", "#4", "#5"] and len(table) == n
