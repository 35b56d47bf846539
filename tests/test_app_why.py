"""The Why-this-token page in AppTest, on a constructed model where one head decides the output."""

import html
import re

import numpy as np
import pytest
import streamlit as st
import torch

import gpt2viz
from gpt2viz.attribution import direct_logit_attribution, saliency
from gpt2viz.interventions import ablate_heads, ablate_neurons
from gpt2viz.loading import MODEL_ENV
from gpt2viz.sampling import draw, sampling_stages
from gpt2viz.viz.candidates import CHOSEN_COLOUR, percent
from gpt2viz.viz.tokens import visible_token
from tests.app_support import (
    GENERATE,
    WHY,
    chart_keys,
    escaped_tokens,
    figure,
    generate,
    new_app,
    session_generation,
    texts,
)
from tests.conftest import tiny_model

LOUD = (1, 2)  # the head whose output is scaled up


@pytest.fixture(scope="module")
def loud_model(tmp_path_factory) -> gpt2viz.GPT2:
    """A tiny random GPT-2 whose layer-1 head 2 writes 40× louder: it dominates the logits, so
    switching it off changes the top candidates."""
    model = tiny_model(seed=3)
    d = model.config.d_head
    with torch.no_grad():
        model.h[LOUD[0]].attn.c_proj.weight[:, LOUD[1] * d:(LOUD[1] + 1) * d] *= 40
    folder = gpt2viz.save_model(model, tmp_path_factory.mktemp("loud"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_ENV, str(folder))
        st.cache_resource.clear()
        yield gpt2viz.load_model(folder, device="cpu")
    st.cache_resource.clear()


@pytest.fixture
def why(loud_model):
    at = generate(new_app(), "The cat sat on the mat because", max_new_tokens=3)
    return at.switch_page(WHY).run()


def test_attribution_is_drawn_for_the_chosen_step(why, loud_model):
    assert not why.exception
    assert chart_keys(why)[:5] == ["dla_grid", "dla_parts", "saliency_ranked", "before_ablation",
                                   "after_ablation"]
    run = session_generation(why)
    step = run.steps[-1]
    runner_up = next(t for t, _, _ in step.top if t != step.token_id)
    trace = loud_model.run_with_capture(run.ids)
    want = direct_logit_attribution(loud_model, trace, step.query_position, step.token_id, runner_up)
    np.testing.assert_allclose(figure(why, "dla_grid")["data"][0]["z"], want.heads.numpy(), atol=1e-4)
    title = figure(why, "dla_parts")["layout"]["title"]["text"]
    parts, actual = map(float, re.findall(r"([+-]\d+\.\d+)", title))
    assert parts == pytest.approx(actual, abs=2e-3) and parts == pytest.approx(want.total, abs=1e-3)


def assert_heads_grid_is_the_full_runs(at, model, run, index: int) -> None:
    """The page's head grid for step `index` against direct logit attribution of a full run."""
    step = run.steps[index]
    runner_up = next(t for t, _, _ in step.top if t != step.token_id)
    trace = model.run_with_capture(run.ids)
    want = direct_logit_attribution(model, trace, step.query_position, step.token_id, runner_up)
    np.testing.assert_allclose(figure(at, "dla_grid")["data"][0]["z"], want.heads.numpy(), atol=1e-4)


def test_a_generated_step_is_explained_over_the_generations_own_keys_and_values(loud_model, monkeypatch):
    """The finished generation hands its keys and values to the recording store, so the Why page
    runs one position over them: no recording of the whole sequence, and the attribution of an
    earlier step still equals the full run's."""
    from app import computations
    from app.models import DEFAULT_SOURCE

    at = generate(new_app(), "The dog ran to the door since", max_new_tokens=4)
    run = session_generation(at)
    assert run.key_values() is None  # handed over, not held by the session
    assert ("key_values", DEFAULT_SOURCE, tuple(run.ids)) in computations.recordings()
    recorded = []
    monkeypatch.setattr(computations, "record_sequence", lambda *args: recorded.append(args))
    at.switch_page(WHY).run()
    at.select_slider(key="step").set_value(1).run()
    assert not at.exception and recorded == []
    assert_heads_grid_is_the_full_runs(at, loud_model, run, 1)


def test_without_the_generations_keys_and_values_the_page_records_the_sequence_once(loud_model, monkeypatch):
    """Once the store has dropped a generation's keys and values, the Why page falls back to one
    recording of the sequence and explains the same step the same way."""
    from app import computations

    at = generate(new_app(), "A bird sang on the roof when", max_new_tokens=3)
    run = session_generation(at)
    computations.recordings().clear()  # as the budget would, under other sessions' recordings
    recorded = []
    real = computations.record_sequence
    monkeypatch.setattr(computations, "record_sequence", lambda *args: recorded.append(args) or real(*args))
    at.switch_page(WHY).run()
    at.select_slider(key="step").set_value(0).run()
    assert not at.exception and len(recorded) == 1
    assert_heads_grid_is_the_full_runs(at, loud_model, run, 0)


def test_a_generation_stopped_in_its_last_redraw_still_hands_its_cache_over(loud_model, tok):
    """Streamlit stops a run at its next element when the browser asks for another: the last
    step's redraw raising must not leave the finished generation holding its cache."""
    from app import computations, session

    generation = gpt2viz.Generation(loud_model, tok, "One two three", max_new_tokens=2, retain_cache=True)

    def redraw() -> None:
        if generation.finished:
            raise RuntimeError("a rerun was asked for")

    with pytest.raises(RuntimeError, match="rerun"):
        session.generate("the loud model", generation, after_step=redraw)
    assert generation.key_values() is None
    assert ("key_values", "the loud model", tuple(generation.ids)) in computations.recordings()


def test_ablating_the_loud_head_changes_the_candidates_and_not_the_run(why, loud_model):
    run = session_generation(why)
    ids_before = list(run.ids)
    why.selectbox(key="layer").select(LOUD[0]).run()
    why.selectbox(key="head").select(LOUD[1]).run()
    assert not why.exception
    before = [float(x) for x in figure(why, "before_ablation")["data"][0]["x"]]
    after = figure(why, "after_ablation")
    assert before == pytest.approx([p for _, _, p in run.steps[-1].top[: len(before)]])  # the run as it was
    before_names = list(figure(why, "before_ablation")["layout"]["yaxis"]["ticktext"])
    assert list(after["layout"]["yaxis"]["ticktext"]) != before_names
    # the ablated candidates are those of the same run with head 1.2 zeroed, outside the app
    position = run.steps[-1].query_position
    edits = ablate_heads([LOUD], config=loud_model.config)
    probs = loud_model.run_with_capture(run.ids[: position + 1], names=[], edits=edits).logits[-1].softmax(-1)
    want = probs.topk(10).values.tolist()
    assert [float(x) for x in after["data"][0]["x"]][:10] == pytest.approx(want, abs=1e-6)
    assert session_generation(why).ids == ids_before
    # the whole generation runs again only when asked for
    assert not any("<b>ablated</b>" in m for m in texts(why, "markdown"))
    why.toggle(key="ablate_rerun").set_value(True).run()
    (strip,) = [m for m in texts(why, "markdown") if "<b>ablated</b>" in m]
    rerun = gpt2viz.Generation(loud_model, gpt2viz.load_tokenizer(), run.prompt_ids, edits=edits,
                               record=False, **run.settings)
    list(rerun)
    tok = gpt2viz.load_tokenizer()
    shown = re.findall(r'<span class="sal[^"]*">(.*?)</span>', strip.split("<b>ablated</b>", 1)[1])
    assert shown == [html.escape(visible_token(tok.token_text(t))) for t in rerun.ids[len(run.prompt_ids):]]


def test_a_chosen_token_that_leaves_the_top_list_keeps_its_bar(why, loud_model):
    """At step 1 the loud head alone puts the chosen token first: switched off, the token falls out
    of the ten likeliest, and its bar comes last with the probability the ablated run gives it."""
    run = session_generation(why)
    step = run.steps[0]
    why.switch_page(GENERATE).run()
    why.select_slider(key="step").set_value(0).run()
    why.switch_page(WHY).run()
    why.selectbox(key="layer").select(LOUD[0]).run()
    why.selectbox(key="head").select(LOUD[1]).run()
    assert not why.exception
    edits = ablate_heads([LOUD], config=loud_model.config)
    logits = loud_model.run_with_capture(run.ids[: step.position], names=[], edits=edits).logits[-1]
    probs = logits.double().softmax(-1)
    assert step.token_id not in probs.topk(10).indices.tolist()  # the case: out of the top ten
    after = figure(why, "after_ablation")
    bar = after["data"][0]
    assert len(bar["x"]) == 11 and list(after["layout"]["yaxis"]["ticktext"])[-1] == (
        f"{visible_token(step.text)}  ◀ chosen")
    assert float(bar["x"][-1]) == pytest.approx(float(probs[step.token_id]), rel=1e-4)
    assert float(bar["x"][-1]) > 0 and bar["text"][-1] == percent(float(probs[step.token_id]))
    assert bar["marker"]["color"][-1] == CHOSEN_COLOUR


def test_saliency_ranks_the_earlier_tokens(why, loud_model):
    run = session_generation(why)
    step = run.steps[-1]
    runner_up = next(t for t, _, _ in step.top if t != step.token_id)  # the default distractor
    values = saliency(loud_model, run.ids, step.query_position, step.token_id, runner_up).numpy()
    bar = figure(why, "saliency_ranked")["data"][0]
    want = sorted(range(step.query_position), key=lambda i: -abs(values[i]))[:15]
    texts_ = gpt2viz.load_tokenizer().token_texts(run.ids)
    assert list(bar["y"]) == [f"{i} {visible_token(texts_[i])}" for i in want]
    np.testing.assert_allclose(np.asarray(bar["x"], dtype=float), values[want], rtol=1e-3, atol=1e-6)
    # the strip: every token up to the explained one (a short sequence), that one outlined
    strip = next(m for m in texts(why, "markdown") if "sal-strip" in m and "sal-explained" in m)
    positions = [int(p) for p in re.findall(r'title="position (\d+):', strip)]
    assert positions == list(range(step.query_position + 1)) and "earlier tokens</span>" not in strip
    assert any("the largest among the earlier tokens" in c for c in texts(why, "caption"))


def test_selection_changes_that_need_no_model_do_not_run_it(why, monkeypatch):
    why.radio(key="ablate_kind").set_value("heads").run()
    why.text_input(key="ablate_units").input("0.1").run()
    calls = []
    real = gpt2viz.GPT2.run_segments  # every model run passes here, with or without logits
    monkeypatch.setattr(gpt2viz.GPT2, "run_segments", lambda *a, **k: calls.append(1) or real(*a, **k))
    why.selectbox(key="head").select(3).run()  # the attribution heatmap's outline moves; no model
    why.selectbox(key="layer").select(1).run()
    assert not why.exception and calls == []


def test_mean_and_neuron_ablations_and_a_second_prompt(why, loud_model):
    run = session_generation(why)
    position = run.steps[-1].query_position
    why.radio(key="ablate_kind").set_value("neurons").run()
    why.text_input(key="ablate_units").input("1.7, 0.20").run()
    why.radio(key="ablate_mode").set_value("mean").run()
    assert not why.exception
    edits = ablate_neurons([(1, 7), (0, 20)], "mean", config=loud_model.config)
    probs = loud_model.run_with_capture(run.ids[: position + 1], names=[], edits=edits).logits[-1].softmax(-1)
    after = [float(x) for x in figure(why, "after_ablation")["data"][0]["x"]][:10]
    assert after == pytest.approx(probs.topk(10).values.tolist(), abs=1e-6)
    assert figure(why, "after_ablation")["layout"]["title"]["text"] == "With neurons 1.7, 0.20 set to mean"
    why.text_input(key="compare_prompt").input("The dog sat on the rug because").run()
    assert not why.exception
    second = loud_model.run_with_capture(gpt2viz.load_tokenizer().encode("The dog sat on the rug because"))
    z = figure(why, "compare_attention_1")["data"][0]["z"]
    n = len(second.ids)
    np.testing.assert_allclose(z[np.tril_indices(n)], second["pattern", 0][0].numpy()[np.tril_indices(n)],
                               atol=5e-4, rtol=0)  # the page keeps patterns in float16
    assert "compare_attention_0" in chart_keys(why) and "compare_candidates_1" in chart_keys(why)


def test_forcing_a_token_starts_the_branch_with_it(why):
    run = session_generation(why)
    step = run.steps[-1]
    forced = step.top[3][0]
    why.selectbox(key="forced").select(forced).run()
    assert not why.exception
    (strip,) = [m for m in texts(why, "markdown") if "<b>forced</b>" in m]
    forced_row = strip.split("<b>forced</b>", 1)[1]
    first = re.search(r'<span class="sal[^"]*">(.*?)</span>', forced_row).group(1)

    assert first == html.escape(visible_token(gpt2viz.load_tokenizer().token_text(forced)))
    # the last step: nothing follows the forced token, and no draws to choose
    assert "The forced token is the generation's last: nothing is written after it." in texts(why, "caption")
    assert not [t for t in why.toggle if t.key == "fresh_draws"]


def forced_row(at) -> list[str]:
    """The forced branch's token boxes (escaped), from the forced token on."""
    (strip,) = [m for m in texts(at, "markdown") if "<b>forced</b>" in m]
    return re.findall(r'<span class="sal[^"]*">(.*?)</span>', strip.split("<b>forced</b>", 1)[1])


def drawn_branch(model, prefix: list[int], settings: dict, count: int, first_draw: int) -> list[int]:
    """`prefix` and `count` tokens more, each drawn from a full run's last logits with the random
    number of step `first_draw` + j (gpt2viz.sampling.draw): computed apart from gpt2viz.Generation."""
    ids = list(prefix)
    for j in range(count):
        logits = model.run_with_capture(ids, names=[]).logits[-1]
        probs = sampling_stages(logits, settings["temperature"], settings["top_k"], settings["top_p"]).probs
        ids.append(draw(probs, settings["seed"], first_draw + j))
        if ids[-1] == gpt2viz.EOT_ID:
            break
    return ids


@pytest.fixture
def sampled_why(loud_model):
    at = new_app()
    at.toggle(key="greedy").set_value(False).run()
    at.slider(key="temperature").set_value(2.0)
    at.number_input(key="top_k").set_value(10)  # each drawn token is one of the ten a step lists
    at.number_input(key="seed").set_value(7).run()
    generate(at, "The cat sat on the mat because", max_new_tokens=8)
    return at.switch_page(WHY).run()


def test_a_sampled_branch_draws_with_the_originals_numbers_or_fresh_ones(sampled_why, loud_model):
    """Forced at step 2 of 8, the branch's later steps draw with the original's random numbers of
    steps 3…8 (not of steps 1…6, which made it seem to repeat the original's start), or, switched
    on, with numbers the original never drew; the caption says which."""
    at, run = sampled_why, session_generation(sampled_why)
    assert len(run.steps) == 8 and run.settings["temperature"] == 2.0 and run.settings["top_k"] == 10
    at.select_slider(key="step").set_value(1).run()
    record = run.steps[1]
    forced = next(t for t, _, _ in record.top if t != record.token_id)
    at.selectbox(key="forced").select(forced).run()
    assert not at.exception
    prefix = run.ids[: record.position] + [forced]
    tok = gpt2viz.load_tokenizer()
    same = drawn_branch(loud_model, prefix, run.settings, 6, first_draw=2)
    assert forced_row(at) == escaped_tokens(tok.token_texts(same[record.position:]))
    assert same != drawn_branch(loud_model, prefix, run.settings, 6, first_draw=0)  # tells them apart
    later = record.position + 1
    alike = sum(a == b for a, b in zip(run.ids[later:], same[later:], strict=False))
    (caption,) = [c for c in texts(at, "caption") if c.startswith("The generation goes on")]
    assert "each later step draws with the same random number as the original's step at that place" in caption
    assert f"({alike} of {len(same) - later} later tokens here)" in caption
    assert at.toggle(key="fresh_draws").value is False and "fresh_draws" not in at.query_params

    at.toggle(key="fresh_draws").set_value(True).run()
    assert not at.exception
    fresh = drawn_branch(loud_model, prefix, run.settings, 6, first_draw=loud_model.config.n_positions + 2)
    assert fresh != same and forced_row(at) == escaped_tokens(tok.token_texts(fresh[record.position:]))
    (caption,) = [c for c in texts(at, "caption") if c.startswith("The generation goes on")]
    assert "drawing fresh random numbers, ones the original never drew" in caption
    assert at.query_params["fresh_draws"] == "true"


def test_forcing_the_token_the_original_drew_writes_the_original_again(sampled_why):
    """With the original's random numbers, a branch forced to the token the original took is the
    original: the draws line up step for step."""
    at, run = sampled_why, session_generation(sampled_why)
    index = 2  # the third step: the branch draws with the original's numbers from its fourth on
    assert run.steps[index].token_id in [t for t, _, _ in run.steps[index].top]
    at.select_slider(key="step").set_value(index).run()
    at.selectbox(key="forced").select(run.steps[index].token_id).run()
    assert not at.exception
    original = run.ids[run.steps[index].position:]
    assert forced_row(at) == escaped_tokens(gpt2viz.load_tokenizer().token_texts(original))


def test_bad_inputs_get_one_clear_message(why):
    why.selectbox(key="distractor").select(-1).run()  # type a token…
    why.text_input(key="distractor_text").input("").run()
    assert any("Type exactly one token" in w for w in texts(why, "warning"))
    why.text_input(key="distractor_text").input(" two words").run()
    assert any("is 2 tokens" in w for w in texts(why, "warning"))
    why.radio(key="ablate_kind").set_value("heads").run()
    why.text_input(key="ablate_units").input("0.99").run()
    assert any("Head 99 does not exist: layer 0 has heads 0..3" in w for w in texts(why, "warning"))
    assert not why.exception


def test_a_one_token_prompt(loud_model):
    at = new_app(GENERATE)
    at.text_area(key="prompt").input("Hello").run()
    at.switch_page(WHY).run()
    assert not at.exception
    assert any("first position" in i for i in texts(at, "info"))
    assert "dla_grid" in chart_keys(at)
