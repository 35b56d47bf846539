"""The Attention page: head grid, one head's heatmap, the step row; selection reuses the recording."""

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import gpt2viz
from gpt2viz.analysis import induction_scores, previous_token_scores
from tests.app_support import (
    APP,
    ATTENTION,
    GENERATE,
    MLP,
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
ROLE_CHARTS = ["first_token_scores", "previous_token_scores", "duplicate_token_scores", "induction_scores"]


@pytest.fixture
def at():
    at = generate(new_app(), "The cat sat on the mat because", max_new_tokens=3)
    return at.switch_page(ATTENTION).run()


def recorded(at, kind: str, layer: int, head: int) -> np.ndarray:
    """[q, k] of one head for the session's whole sequence, from a run of the model outside the app."""
    trace = app_gpt2().run_with_capture(session_generation(at).ids, names=[gpt2viz.act_name(kind, layer)])
    return trace[kind, layer][head].numpy()


def assert_lower_triangle(z: np.ndarray, expected: np.ndarray, atol: float = 5e-4) -> None:
    """z equals `expected` on and below the diagonal and is NaN (masked) above it. The page keeps
    patterns in float16 (absolute error ≤ 2⁻¹¹ for weights ≤ 1); scores it rebuilds in float32."""
    n = expected.shape[0]
    assert z.shape == (n, n) and np.isnan(z[np.triu_indices(n, 1)]).all()
    np.testing.assert_allclose(z[np.tril_indices(n)], expected[np.tril_indices(n)], atol=atol, rtol=0)


def test_page_shows_grid_heatmap_and_step_row(at):
    assert not at.exception
    assert chart_keys(at) == ["head_grid", "attention_heatmap", *ROLE_CHARTS,
                              "step_attention"]
    grid = figure(at, "head_grid")
    assert [d["type"] for d in grid["data"]] == ["heatmap", "scatter"]
    assert len(grid["data"][1]["x"]) == app_config().n_layer * app_config().n_head
    assert grid["layout"]["xaxis"]["title"]["text"] == "head"
    big = figure(at, "attention_heatmap")
    assert [d["type"] for d in big["data"]] == ["heatmap"]
    assert big["layout"]["xaxis"]["title"]["text"] == "key (attended-to token)"
    assert big["layout"]["yaxis"]["title"]["text"] == "query (attending token)"
    assert big["layout"]["title"]["text"].startswith("Layer 0, head 0")
    n = n_tokens(at)  # prompt + generated tokens
    pattern = recorded(at, "pattern", 0, 0)
    assert pattern.shape == (n, n)
    assert_lower_triangle(big["data"][0]["z"], pattern)
    assert big["layout"]["shapes"][0]["type"] == "path"
    # the last step: its query (the second-to-last token) over the cached keys 0..n-2, every head
    step = figure(at, "step_attention")["data"][0]["z"]
    every_head = np.stack([recorded(at, "pattern", 0, h)[n - 2, : n - 1] for h in range(app_config().n_head)])
    assert step.shape == (app_config().n_head, n - 1)
    np.testing.assert_allclose(step, every_head, atol=2e-3)  # the step rows are kept in float16


def test_a_head_change_reruns_nothing_and_a_layer_records_only_that_layer(at, monkeypatch):
    calls = []
    real = gpt2viz.GPT2.run_with_capture
    def counted(self, ids, names=None, **kwargs):
        calls.append(list(names))
        return real(self, ids, names, **kwargs)

    monkeypatch.setattr(gpt2viz.GPT2, "run_with_capture", counted)
    before = figure(at, "attention_heatmap")["data"][0]["z"]
    at.selectbox(key="head").select(app_config().n_head - 1).run()
    after_head = figure(at, "attention_heatmap")["data"][0]["z"]
    assert calls == []
    last = app_config().n_layer - 1
    at.selectbox(key="layer").select(last).run()
    after_layer = figure(at, "attention_heatmap")["data"][0]["z"]
    assert calls == [[gpt2viz.act_name(s, last) for s in ("q", "k", "pattern")]]  # one layer, when shown
    at.selectbox(key="layer").select(0).run()
    assert len(calls) == 1  # layer 0 is still in the store
    assert not np.allclose(before, after_head, equal_nan=True)
    assert not np.allclose(after_head, after_layer, equal_nan=True)
    last_layer, last_head = app_config().n_layer - 1, app_config().n_head - 1
    assert_lower_triangle(after_head, recorded(at, "pattern", 0, last_head))
    assert_lower_triangle(after_layer, recorded(at, "pattern", last_layer, last_head))
    assert figure(at, "attention_heatmap")["layout"]["title"]["text"].startswith(f"Layer 0, head {last_head}")


def test_scores_toggle_shows_scores_before_softmax(at):
    at.radio(key="attn_kind").set_value("scores").run()
    big = figure(at, "attention_heatmap")
    assert "scores" in big["layout"]["title"]["text"]
    z = big["data"][0]["z"]
    assert np.isfinite(z[np.tril_indices(z.shape[0])]).all() and not np.allclose(np.nansum(z, axis=1), 1.0)
    assert_lower_triangle(z, recorded(at, "attn_scores", 0, 0), atol=1e-5)


def test_selection_is_shared_with_the_other_pages(at):
    at.selectbox(key="layer").select(app_config().n_layer - 1).run()
    at.switch_page(MLP).run()
    assert at.selectbox(key="layer").value == app_config().n_layer - 1
    at.switch_page(GENERATE).run()
    at.select_slider(key="step").set_value(0).run()
    at.switch_page(ATTENTION).run()
    assert at.select_slider(key="step").value == 0
    assert "Step 1" in figure(at, "step_attention")["layout"]["title"]["text"]


def test_prompt_alone_is_shown_before_any_generation():
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["prompt.remembered"] = "A prompt of its own"  # not the default: no finished example
    at.run()
    at.switch_page(ATTENTION).run()
    assert chart_keys(at) == ["head_grid", "attention_heatmap", *ROLE_CHARTS]
    assert not texts(at, "warning")


def test_the_opening_example_is_shown_step_by_step():
    at = new_app(ATTENTION)  # a new session: the default prompt, already generated
    assert chart_keys(at)[-1] == "step_attention"


def test_head_roles_show_all_four_scores_for_every_head(at):
    cfg = app_config()
    prev = figure(at, "previous_token_scores")
    ind = figure(at, "induction_scores")
    for fig, title in ((prev, "Previous-token score (this text)"),
                       (ind, "Induction score (repeated random tokens)")):
        z = np.asarray(fig["data"][0]["z"], dtype=float)
        assert z.shape == (cfg.n_layer, cfg.n_head) and ((z >= 0) & (z <= 1)).all()
        assert fig["layout"]["title"]["text"] == title
    # the previous-token score is the one of this text: recompute it from the model
    model = app_gpt2()
    expected = previous_token_scores(model, [session_generation(at).ids])
    np.testing.assert_allclose(np.asarray(prev["data"][0]["z"], dtype=float), expected.numpy(), atol=1e-5)
    # the induction score: 4 random blocks of up to 50 tokens, each repeated, within the context
    expected = induction_scores(model, seq_len=min(50, (cfg.n_positions - 1) // 2))
    np.testing.assert_allclose(np.asarray(ind["data"][0]["z"], dtype=float), expected.numpy(), atol=1e-5)
    # first-token and duplicate-token: this text's patterns, by hand from a recording
    ids = session_generation(at).ids
    patterns = model.run_with_capture(ids, names=[gpt2viz.act_name("pattern", "*")]).stack("pattern")
    first = patterns[:, :, 1:, 0].mean(-1)  # [layer, head]
    np.testing.assert_allclose(np.asarray(figure(at, "first_token_scores")["data"][0]["z"], dtype=float),
                               first.numpy(), atol=1e-5)
    earlier = [[k for k in range(q) if ids[k] == ids[q]] for q in range(len(ids))]
    rows = [q for q in range(len(ids)) if earlier[q]]
    duplicate = torch.stack([patterns[:, :, q, earlier[q]].sum(-1) for q in rows]).mean(0) if rows else \
        torch.zeros(cfg.n_layer, cfg.n_head)
    np.testing.assert_allclose(np.asarray(figure(at, "duplicate_token_scores")["data"][0]["z"], dtype=float),
                               duplicate.numpy(), atol=1e-5)
    assert sum(t.startswith("Highest: layer ") for t in texts(at, "caption")) == 4


def test_selecting_a_head_outlines_it_in_the_score_charts(at):
    at.selectbox(key="layer").select(1).run()
    at.selectbox(key="head").select(2).run()
    shape = figure(at, "induction_scores")["layout"]["shapes"][0]
    assert (shape["x0"], shape["y0"]) == (1.5, 0.5)  # head 2, layer 1


def test_one_token_prompt_explains_the_missing_previous_token_score():
    at = new_app()
    at.text_area(key="prompt").input("Hello").run()  # one token, not generated yet
    at.switch_page(ATTENTION).run()
    assert not at.exception
    assert chart_keys(at) == ["head_grid", "attention_heatmap", "induction_scores"]
    assert texts(at, "info") == ["The scores on this text need at least two tokens."]


def test_the_colour_scale_can_leave_the_first_token_out(at):
    at.toggle(key="without_first").set_value(True).run()
    heatmap = figure(at, "attention_heatmap")["data"][0]
    ids = session_generation(at).ids
    pattern = app_gpt2().run_with_capture(ids, names=[gpt2viz.act_name("pattern", 0)])["pattern", 0][0]
    assert heatmap["zmax"] == pytest.approx(float(pattern[:, 1:].max()), abs=1e-3)  # float16 recording
    assert at.query_params["without_first"] == "true"
