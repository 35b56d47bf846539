"""The Generate page in streamlit's AppTest: steps, candidates, stop reason, model picker."""

import html
import json
import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import gpt2viz
from gpt2viz.viz.export import FONT_FAMILY
from tests.app_support import (
    APP,
    ATTENTION,
    ROOT,
    app_gpt2,
    assert_steps,
    chart_keys,
    escaped_tokens,
    figure,
    generate,
    new_app,
    press_next,
    session_generation,
    strip_html,
    strip_spans,
    texts,
)

pytestmark = pytest.mark.usefixtures("app_model")


def test_page_runs_and_offers_the_example_prompts():
    at = new_app()
    examples = json.loads((ROOT / "assets/examples/prompts.json").read_text())["prompts"]
    assert "I love the color black, I hope someday to have a cat like that." in examples
    assert at.selectbox(key="example").options == examples
    # the app loads its model on the GPU when there is one (gpt2viz.load_model's default device)
    device = f"GPU ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "CPU"
    assert f"Device: **{device}**" in texts(at, "caption")
    assert f"Running on **{device}**." in texts(at, "caption")



def test_a_new_session_opens_on_a_finished_example(app_model):
    """No waiting for a first generation: the default prompt is already written out, the same
    generation a press of Generate makes, computed once per process and shared."""
    at = new_app()
    run = session_generation(at)
    assert run.finished and run.prompt == "I love the color black, I hope someday to have a cat like that."
    assert "candidates" in chart_keys(at) and not texts(at, "info")
    tok = gpt2viz.load_tokenizer()
    fresh = gpt2viz.generate(gpt2viz.load_model(app_model, device="cpu"), tok, run.prompt, max_new_tokens=20)
    assert run.ids == run.prompt_ids + [s.token_id for s in fresh]
    assert session_generation(new_app()) is run  # one per process
    other = AppTest.from_file(str(APP), default_timeout=120)
    other.session_state["prompt.remembered"] = "Another prompt"  # a session that starts on other text
    other.run()
    assert "generation" not in other.session_state  # no example for it
    assert any("Press **Next token**" in i for i in texts(other, "info"))


def test_choosing_an_example_fills_the_prompt():
    at = new_app()
    at.selectbox(key="example").select("The capital of France is").run()
    assert at.text_area(key="prompt").value == "The capital of France is"


def test_next_token_adds_one_step_at_a_time():
    at = new_app()
    at.text_area(key="prompt").input("The cat sat on the")
    press_next(at)
    assert strip_html(at).count('class="tok tok-gen') == 1
    press_next(at)
    press_next(at)
    html = strip_html(at)
    steps = session_generation(at).steps
    assert len(steps) == 3
    assert strip_spans(html, "prompt") == ["The", "·cat", "·sat", "·on", "·the"]
    assert strip_spans(html, "gen") == escaped_tokens([s.text for s in steps])


def test_generate_runs_to_the_end_and_says_why_it_stopped():
    at = generate(new_app(), "The cat sat on the", max_new_tokens=6)
    assert_steps(at, 6)
    n = len(session_generation(at).steps)
    assert any(f"Stopped after {n} new tokens" in s for s in texts(at, "success"))
    fig = figure(at, "candidates")
    assert [d["type"] for d in fig["data"]] == ["bar"]
    assert fig["layout"]["xaxis"]["title"]["text"] == "probability"
    assert fig["layout"]["yaxis"]["title"]["text"] == "candidate token"
    assert sum("chosen" in t for t in fig["layout"]["yaxis"]["ticktext"]) == 1
    assert f"Step {n}" in fig["layout"]["title"]["text"]
    # the bars are the model's ten most likely next tokens after the last step's input, recomputed
    ids = session_generation(at).ids
    probs = app_gpt2().run_with_capture(ids[:-1], names=[]).logits[-1].softmax(-1)
    top = probs.topk(10)
    np.testing.assert_allclose(fig["data"][0]["x"], top.values.numpy(), atol=1e-5)
    assert ids[-1] == int(top.indices[0])  # greedy: the chosen token is the first bar
    assert "chosen" in fig["layout"]["yaxis"]["ticktext"][0]


def test_selecting_a_step_changes_the_candidates_and_the_strip():
    at = generate(new_app(), "The cat sat on the", max_new_tokens=4)
    at.select_slider(key="step").set_value(1).run()
    assert "Step 2" in figure(at, "candidates")["layout"]["title"]["text"]
    html = strip_html(at)
    gen = html.split('class="tok tok-gen')
    assert "tok-selected" in gen[2] and "tok-selected" not in gen[1]


def test_settings_change_starts_a_new_generation():
    at = generate(new_app(), "The cat sat on the", max_new_tokens=3)
    at.toggle(key="greedy").set_value(False).run()
    at.number_input(key="seed").set_value(7)
    press_next(at)
    run = session_generation(at)
    assert len(run.steps) == 1 and run.settings["temperature"] == 0.8 and run.settings["seed"] == 7


def test_pressing_next_after_the_end_says_it_has_finished():
    at = generate(new_app(), "Hello", max_new_tokens=2)
    press_next(at)
    assert len(session_generation(at).steps) == 2
    assert any("finished" in i for i in texts(at, "info"))


def test_a_model_that_fails_to_load_shows_its_message(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_ALLOW_LOCAL", "1")  # local paths are off unless the server allows them
    at = new_app()
    at.selectbox(key="model_choice").select("local folder or file…").run()
    assert any("path of a local model" in i for i in texts(at, "info"))
    at.text_input(key="local_path").input(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert any("File or folder not found" in e for e in texts(at, "error"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    at.text_input(key="local_path").input(str(broken)).run()
    assert not at.exception
    assert any("not a valid safetensors file" in e for e in texts(at, "error"))


def test_every_figure_exports_as_image_and_html():
    at = generate(new_app(), "The cat sat on the", max_new_tokens=2)
    (chart,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith("-candidates")]
    config = json.loads(chart.proto.config)
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "gpt2viz-candidates", "scale": 2}
    # drawn as it is, without Streamlit's theme: the page, the toolbar's image and the HTML file
    # all show the one figure, in its own light colours (no theme placeholders such as #000001)
    assert chart.proto.theme == ""
    assert not re.search(r"#0000[0-4]\d\b", chart.proto.spec)
    layout = figure(at, "candidates")["layout"]
    assert layout["template"]["layout"]["font"]["family"] == FONT_FAMILY
    assert layout["xaxis"]["automargin"] is True and layout["yaxis"]["automargin"] is True
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("⤓ HTML") == len(at.get("plotly_chart")) == 1
    at.session_state["image_format.remembered"] = "svg"  # the sidebar's choice, as state.put stores it
    at.run()
    (chart,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith("-candidates")]
    assert json.loads(chart.proto.config)["toImageButtonOptions"]["format"] == "svg"


def test_presenter_view_enlarges_figures_and_hides_the_sampling_controls():
    at = generate(new_app(), "The cat sat on the", max_new_tokens=2)
    normal = figure(at, "candidates")["layout"]
    assert [b.proto.popover.label for b in at.main.get("popover")] == ["Sampling"]
    assert "greedy · 2 new tokens" in texts(at, "caption")
    at.toggle(key="presenter").set_value(True).run()
    assert not at.exception
    big = figure(at, "candidates")["layout"]
    assert big["font"]["size"] == 20 and big["height"] >= max(480, normal["height"])
    assert big["title"]["font"]["size"] == 26 and big["margin"]["t"] > normal["margin"]["t"]
    # the sidebar folds away (and folds again whenever a page opens)
    assert any("stSidebarCollapseButton" in str(e.proto.body) for e in at.sidebar.get("html"))
    assert not at.main.get("popover")
    assert "greedy · 2 new tokens" in texts(at, "caption")  # the settings still say what applies
    assert any('id="gpt2viz-presenter"' in m for m in texts(at, "markdown"))
    at.toggle(key="presenter").set_value(False).run()
    assert figure(at, "candidates")["layout"]["height"] == normal["height"]


def test_the_sampling_summary_names_only_what_applies():
    from app.settings import Settings

    assert Settings(True, 0.7, 40, 0.9, 3, 12).summary() == "greedy · 12 new tokens"
    assert Settings(False, 0.7, 40, 0.9, 3, 12).summary() == (
        "temperature 0.7 · seed 3 · top-k 40 · top-p 0.9 · 12 new tokens")
    assert Settings(False, 1.5, 0, 1.0, 0, 1).summary() == "temperature 1.5 · seed 0 · 1 new token"


def test_a_prompt_can_start_with_endoftext_as_texts_did_in_training():
    at = new_app()
    at.toggle(key="start_with_eot").set_value(True).run()
    example = session_generation(at)  # the example, as it starts with <|endoftext|>
    assert example.finished and example.prompt_ids[0] == gpt2viz.EOT_ID and not texts(at, "info")
    generate(at, "The cat sat on the mat", max_new_tokens=2)
    run = session_generation(at)
    tok = gpt2viz.load_tokenizer()
    assert run.prompt_ids == [gpt2viz.EOT_ID, *tok.encode("The cat sat on the mat")]
    assert strip_spans(strip_html(at), "prompt")[0] == html.escape(gpt2viz.EOT_TEXT)
    at.switch_page(ATTENTION).run()
    heatmap = figure(at, "attention_heatmap")["data"][0]
    assert list(heatmap["x"])[0] == f"0 {gpt2viz.EOT_TEXT}" and len(heatmap["x"]) == len(run.ids)
    assert at.query_params["eot"] == "true"


def test_endoftext_typed_at_the_start_points_to_the_switch():
    """`<|endoftext|>` typed before the text is seven ordinary tokens: the page says so, and its
    button moves it into the "Start with <|endoftext|>" switch, which gives the real token."""
    at = new_app()
    assert not [i for i in texts(at, "info") if "<|endoftext|>" in i]  # no hint without it
    generate(at, "<|endoftext|>The cat sat on the mat", max_new_tokens=2)
    tok = gpt2viz.load_tokenizer()
    assert session_generation(at).prompt_ids == tok.encode("<|endoftext|>The cat sat on the mat")
    (hint,) = [i for i in texts(at, "info") if "<|endoftext|>" in i]
    assert "typed as text: the model reads it as 7 ordinary tokens" in hint
    at.button(key="typed_eot").click().run()
    assert not at.exception
    assert at.text_area(key="prompt").value == "The cat sat on the mat"
    assert at.toggle(key="start_with_eot").value is True
    assert not [i for i in texts(at, "info") if "<|endoftext|>" in i]
    generate(at, "The cat sat on the mat", max_new_tokens=2)
    assert session_generation(at).prompt_ids == [gpt2viz.EOT_ID, *tok.encode("The cat sat on the mat")]


def test_the_strip_shows_each_tokens_surprise_and_a_second_model_scores_the_same_text(monkeypatch, tmp_path):
    from gpt2viz.surprise import compare_models
    from tests.conftest import tiny_model

    monkeypatch.setenv("GPT2VIZ_ALLOW_LOCAL", "1")
    folder = gpt2viz.save_model(tiny_model(seed=4), tmp_path / "tiny")
    at = new_app()
    at.selectbox(key="model_choice").set_value("local folder or file…").run()
    at.text_input(key="local_path").input(str(folder)).run()
    at = generate(at, "The cat sat on the mat", max_new_tokens=3)
    run = session_generation(at)
    strip = strip_html(at)
    for i, prob in enumerate(run.token_probs):
        if prob is not None:
            assert f": p = {prob:.2%}," in strip, i
    assert strip.count("box-shadow") == len(run.ids) - 1  # every token but the first
    picker = at.selectbox(key="compare_model")
    assert gpt2viz.BUNDLED_NAME in picker.options
    picker.set_value(gpt2viz.BUNDLED_NAME).run()
    assert not at.exception
    expected = compare_models(gpt2viz.load_model(str(tmp_path / "tiny"), device="cpu"),
                              gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu"), run.ids)
    bars = figure(at, "model_comparison")["data"][0]
    np.testing.assert_allclose(np.asarray(bars["y"], dtype=float), expected.bits_gained[1:], atol=1e-4)
