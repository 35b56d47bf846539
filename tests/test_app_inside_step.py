"""The Inside-a-step page in AppTest: every stage drawn from the real step, checked against a
run of the model outside the app; sampling controls that never run the model."""

import re

import numpy as np
import pytest

import gpt2viz
from gpt2viz.budget import byte_size
from gpt2viz.kv_cache import forward_multiply_adds
from gpt2viz.sampling import draw, sampling_stages
from gpt2viz.viz.lens import escape, shortened
from gpt2viz.viz.tokens import visible_token
from tests.app_support import (
    GENERATE,
    INSIDE_STEP,
    app_config,
    app_gpt2,
    chart_keys,
    figure,
    generate,
    new_app,
    session_generation,
    texts,
)

pytestmark = pytest.mark.usefixtures("app_model")
CHARTS = ["embeddings", "ln1", "qkv_new", "cache_k", "cache_v", "cache_overview", "step_scores", "z_heads",
          "attn_add", "mlp_neurons", "mlp_add", "sampling_chain", "residual_norms", "lens_overview",
          "logit_lens"]
PROMPT = "The cat sat on the mat because"


@pytest.fixture
def at():
    return generate(new_app(), PROMPT, max_new_tokens=3).switch_page(INSIDE_STEP).run()


def outside(ids: list[int]) -> gpt2viz.Trace:
    return app_gpt2().run_with_capture(ids)


def cache_line(at) -> str:
    (line,) = [m for m in texts(at, "markdown") if m.startswith("**The cache**")]
    return line


def test_the_page_draws_every_stage_of_the_selected_step(at):
    assert not at.exception
    assert chart_keys(at) == CHARTS
    run = session_generation(at)
    step = run.steps[-1]
    ids = run.ids[: step.position]
    q, full = len(ids) - 1, outside(ids)
    shown = visible_token(gpt2viz.load_tokenizer().token_text(ids[q]))
    assert texts(at, "subheader")[0] == f"1. The token {shown!r} (id {ids[q]}) enters at position {q}"
    # the embeddings strip: wte row, wpe row, their sum
    emb = figure(at, "embeddings")["data"][0]["z"]
    np.testing.assert_allclose(emb[0], full["embed"][q].numpy(), atol=1e-6)
    np.testing.assert_allclose(emb[2], full["resid_pre", 0][q].numpy(), atol=1e-5)
    # the cache of layer 0, head 0: every earlier key, then the new one (the last row)
    keys = figure(at, "cache_k")["data"][0]["z"]
    np.testing.assert_allclose(keys, full["k", 0][:, 0].numpy()[-keys.shape[0]:], atol=1e-5)
    # the query's softmax weights over the cache are the full run's attention row
    weights = figure(at, "step_scores")["data"][2]["y"]
    np.testing.assert_allclose(weights, full["pattern", 0][0, q].numpy()[-len(weights):], atol=1e-5)
    # the logit lens's last row is the model's output: its top token at the step's column
    lens = figure(at, "logit_lens")
    top = gpt2viz.load_tokenizer().token_text(full.logits[q].argmax().item())
    assert lens["data"][0]["text"][-1][-1] == escape(shortened(visible_token(top)))
    (check,) = texts(at, "success")
    diff = float(re.search(r"differ by at most (\S+): the same, up to float rounding", check).group(1))
    assert 0 <= diff < 1e-4


def test_changing_the_step_changes_the_token_and_the_cache(at):
    config = app_config()
    before_line, before_head = cache_line(at), texts(at, "subheader")[0]
    at.select_slider(key="step").set_value(0).run()
    assert not at.exception
    run = session_generation(at)
    q = run.steps[0].position - 1
    assert texts(at, "subheader")[0] != before_head and f"at position {q}" in texts(at, "subheader")[0]
    line = cache_line(at)
    assert line != before_line and f"all {q} earlier positions" in line
    nbytes = 2 * config.n_layer * (q + 1) * config.n_embd * 4  # float32 keys and values
    shown = byte_size(nbytes)
    assert f"{shown} for the whole model" in line
    assert f"{forward_multiply_adds(config, 1, q) / 1e6:,.1f} M multiply-adds" in line


def test_temperature_redraws_the_chain_without_running_the_model(at, monkeypatch):
    run = session_generation(at)
    step = run.steps[-1]
    logits = outside(run.ids[: step.position]).logits[-1]
    calls = []
    real = gpt2viz.GPT2.run_segments  # every model run passes here, with or without logits
    monkeypatch.setattr(gpt2viz.GPT2, "run_segments", lambda *a, **k: calls.append(1) or real(*a, **k))
    at.slider(key="step_temperature").set_value(1.7).run()
    at.number_input(key="step_top_k").set_value(5).run()
    assert not at.exception and calls == []
    chain = figure(at, "sampling_chain")
    stages = sampling_stages(logits, 1.7, 5, None)
    probs = np.array(chain["data"][-1]["x"], dtype=float)
    top = stages.probs.topk(5).values.numpy()
    np.testing.assert_allclose(np.sort(probs)[::-1][:5], top, atol=1e-4)
    would = gpt2viz.load_tokenizer().token_text(draw(stages.probs, run.settings["seed"], step.index))
    assert any(f"at step {step.index + 1} picks {would!r}" in c for c in texts(at, "caption"))


def test_another_layer_changes_the_blocks_figures(at):
    before = figure(at, "ln1")["data"][0]["z"]
    at.selectbox(key="layer").select(1).run()
    assert not at.exception
    run = session_generation(at)
    ids = run.ids[: run.steps[-1].position]
    after = figure(at, "ln1")["data"][0]["z"]
    assert not np.allclose(before, after)
    full = outside(ids)
    ln_1 = app_gpt2().h[1].ln_1
    want = (full["normalized", 1, "ln1"][-1] * ln_1.weight.detach() + ln_1.bias.detach()).numpy()
    np.testing.assert_allclose(after[0], want, atol=1e-4)
    assert figure(at, "cache_k")["layout"]["title"]["text"] .startswith("Cached keys, layer 1 head 0<br>")


def test_without_a_generation_the_page_shows_the_prompts_last_token():
    at = new_app(GENERATE)
    at.text_area(key="prompt").input(PROMPT).run()
    at.switch_page(INSIDE_STEP).run()
    assert not at.exception
    assert chart_keys(at) == CHARTS
    n = len(gpt2viz.load_tokenizer().encode(PROMPT))
    assert f"at position {n - 1}" in texts(at, "subheader")[0]
    assert any("No generation yet" in i for i in texts(at, "info"))
    assert re.search(r"all \d+ earlier positions", cache_line(at))
