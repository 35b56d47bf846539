"""With no real GPT-2 to be had, the app says so plainly and runs the bundled model."""

import pytest
import streamlit as st

import gpt2viz
from gpt2viz.loading import MODEL_ENV
from tests.app_support import ATTENTION, new_app, texts


@pytest.fixture
def no_real_gpt2(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    # a repo id that is in no cache; the Hub is unreachable in tests (conftest.no_network)
    monkeypatch.setitem(gpt2viz.loading.PRESETS, "gpt2", "gpt2viz-tests/not-cached")
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()  # later tests must not reuse this session's default model


def test_app_shows_one_calm_banner_on_the_generate_page(no_real_gpt2) -> None:
    at = new_app()
    assert texts(at, "info")[0] == (f"Offline: showing **{gpt2viz.BUNDLED_NAME}**, a small model trained "
                                    "by this project, not OpenAI's GPT-2.")
    (expander,) = [e for e in at.expander if e.label == "How to get the real GPT-2"]
    details = [m.value for m in expander.markdown] + [c.value for c in expander.caption]
    assert any("hf download openai-community/gpt2 config.json model.safetensors" in d for d in details)
    assert any("gpt2viz-tests/not-cached" in d for d in details)  # the reason, folded away
    assert any(gpt2viz.BUNDLED_NAME in c for c in texts(at, "caption"))  # the sidebar names the model
    at.switch_page(ATTENTION).run()
    assert not [i for i in texts(at, "info") if "Offline" in i]  # once, not on every page
