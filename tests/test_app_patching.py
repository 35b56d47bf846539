"""The Patching page: its grids are the library's, computed apart from the app; bad input gets
one message; the estimate alone where the exact grid would be long; it opens on the pair known to
work on the model, and a pair the model does not tell apart is warned about, faded, and offers
that pair."""

from __future__ import annotations

import numpy as np
import pytest

import gpt2viz
from app import state
from gpt2viz import load_tokenizer
from gpt2viz.patching import activation_patching, attribution_patching, patching_example, prompt_ids
from tests.app_support import PATCHING, app_gpt2, chart_keys, figure, new_app, texts

pytestmark = pytest.mark.usefixtures("app_model")


@pytest.fixture
def at():
    return new_app(PATCHING)


PAIR = (state.PATCH_CLEAN, state.PATCH_CORRUPTED, state.PATCH_ANSWER, state.PATCH_WRONG)
MARY_JOHN = tuple(state.DEFAULTS[key] for key in PAIR)  # the app's default pair: the real GPT-2's
BUTTON = "Use an example that works on this model"


def ids(text: str) -> list[int]:
    return prompt_ids(load_tokenizer(), text)


def shown_pair(at) -> tuple[str, ...]:
    return tuple(at.text_input(key=key).value for key in PAIR)


def test_both_grids_and_their_comparison_are_the_librarys(at):
    assert chart_keys(at) == ["patching_exact", "patching_attribution", "patching_comparison"]
    clean_text, corrupted_text, answer_text, wrong_text = shown_pair(at)
    clean, corrupted = ids(clean_text), ids(corrupted_text)
    answer, wrong = ids(answer_text)[0], ids(wrong_text)[0]
    model = app_gpt2()
    exact = activation_patching(model, clean, corrupted, answer, wrong, "resid_pre")
    estimate = attribution_patching(model, clean, corrupted, answer, wrong, "resid_pre")
    warned = [f"{exact.problem} Faded below: the colours show noise, not the model's reasons."]
    assert not at.exception and texts(at, "warning") == (warned if exact.problem else [])
    for key, result in (("patching_exact", exact), ("patching_attribution", estimate)):
        drawn = np.asarray(figure(at, key)["data"][0]["z"], dtype=float)
        np.testing.assert_allclose(drawn, result.grid.numpy(), atol=1e-4)
    metrics = [m.value for m in at.metric]
    assert metrics == [f"{exact.clean_value:.2f}", f"{exact.corrupted_value:.2f}",
                       f"{exact.clean_value - exact.corrupted_value:.2f}"]


def test_heads_are_patched_as_a_layer_by_head_grid(at):
    at.selectbox(key=state.PATCH_SITE).set_value("z").run()
    config = app_gpt2().config
    grid = np.asarray(figure(at, "patching_exact")["data"][0]["z"], dtype=float)
    assert grid.shape == (config.n_layer, config.n_head)


def test_prompts_of_different_lengths_and_answers_of_two_tokens_say_what_to_change(at):
    at.text_input(key=state.PATCH_ANSWER).input(" Maryanne Smith").run()
    (warning,) = texts(at, "warning")
    assert "exactly one token" in warning and chart_keys(at) == []
    at.text_input(key=state.PATCH_ANSWER).input(" Mary").run()
    at.text_input(key=state.PATCH_CORRUPTED).input("When Mary went to the store, Mary gave a drink to").run()
    (warning,) = texts(at, "warning")
    assert "must have the same number of tokens" in warning and not at.exception


def test_a_long_exact_grid_shows_the_estimate_alone(at):
    long = " ".join(["word"] * (600 // app_gpt2().config.n_layer))  # past 600 cells with the last token
    at.text_input(key=state.PATCH_CLEAN).input(long + " Mary").run()
    at.text_input(key=state.PATCH_CORRUPTED).input(long + " John").run()
    assert chart_keys(at) == ["patching_attribution"]
    cells = app_gpt2().config.n_layer * len(ids(long + " John"))
    assert texts(at, "info") == [f"The exact grid is {cells:,} patched passes: this shows the estimate "
                                 "alone. Choose “exact” to run it."]


@pytest.fixture
def on_bundled():
    if app_gpt2().name != gpt2viz.BUNDLED_NAME:
        pytest.skip("the app does not run on the bundled model")
    example = patching_example(gpt2viz.BUNDLED_NAME)
    return example.clean, example.corrupted, example.answer, example.wrong


def opacities(at) -> list:
    return [figure(at, key)["data"][0].get("opacity") for key in ("patching_exact", "patching_attribution")]


def test_the_apps_default_pair_is_the_real_gpt2s_example():
    example = patching_example("gpt2")
    assert (example.clean, example.corrupted, example.answer, example.wrong) == MARY_JOHN


def test_the_page_opens_on_the_pair_that_works_on_the_bundled_model(at, on_bundled):
    assert shown_pair(at) == on_bundled and not texts(at, "warning")
    clean, corrupted, _ = (float(m.value) for m in at.metric)
    assert clean > 1 and corrupted < -1
    assert opacities(at) == [None, None] and BUTTON not in [b.label for b in at.button]


def test_the_real_gpt2s_pair_is_warned_about_and_the_button_puts_the_working_pair_back(at, on_bundled):
    for key, value in zip(PAIR, MARY_JOHN, strict=True):
        at.text_input(key=key).input(value)
    at.run()
    (warning,) = texts(at, "warning")
    assert warning.startswith("The clean run does not prefer the answer: its logit difference answer − wrong "
                              f"is {at.metric[0].value},")
    assert warning.endswith("Faded below: the colours show noise, not the model's reasons.")
    exact, estimate = opacities(at)
    assert exact == estimate and 0 < exact < 1  # faded
    [button] = [b for b in at.button if b.label == BUTTON]
    button.click().run()
    assert not at.exception and shown_pair(at) == on_bundled
    assert not texts(at, "warning") and opacities(at) == [None, None]
    assert BUTTON not in [b.label for b in at.button]
