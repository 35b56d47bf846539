"""The Patching page: its grids are the library's, computed apart from the app; bad input gets
one message; the estimate alone where the exact grid would be long."""

from __future__ import annotations

import numpy as np
import pytest

from app import state
from gpt2viz import load_tokenizer
from gpt2viz.patching import activation_patching, attribution_patching
from tests.app_support import PATCHING, app_gpt2, chart_keys, figure, new_app, texts

pytestmark = pytest.mark.usefixtures("app_model")


@pytest.fixture
def at():
    return new_app(PATCHING)


def ids(text: str) -> list[int]:
    return load_tokenizer().encode(text)


def test_both_grids_and_their_comparison_are_the_librarys(at):
    assert not at.exception and not texts(at, "warning")
    assert chart_keys(at) == ["patching_exact", "patching_attribution", "patching_comparison"]
    clean, corrupted = ids(state.DEFAULTS[state.PATCH_CLEAN]), ids(state.DEFAULTS[state.PATCH_CORRUPTED])
    answer, wrong = ids(" Mary")[0], ids(" John")[0]
    model = app_gpt2()
    exact = activation_patching(model, clean, corrupted, answer, wrong, "resid_pre")
    estimate = attribution_patching(model, clean, corrupted, answer, wrong, "resid_pre")
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
