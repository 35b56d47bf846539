"""With no real GPT-2 to be had, the app says so plainly and runs the bundled model."""

import pytest
import streamlit as st

import gpt2viz
from gpt2viz.loading import MODEL_ENV
from tests.app_support import new_app, texts


@pytest.fixture
def no_real_gpt2(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    # a repo id that is in no cache; the Hub is unreachable in tests (conftest.no_network)
    monkeypatch.setitem(gpt2viz.loading.PRESETS, "gpt2", "gpt2viz-tests/not-cached")
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()  # later tests must not reuse this session's default model


def test_library_falls_back_to_the_bundled_model_with_a_notice(no_real_gpt2) -> None:
    model, notice = gpt2viz.load_default_model(device="cpu")
    assert model.name == gpt2viz.BUNDLED_NAME
    assert "not OpenAI's GPT-2" in notice and "hf download gpt2viz-tests/not-cached" in notice


def test_app_shows_the_banner(no_real_gpt2) -> None:
    at = new_app()
    banner = [i for i in texts(at, "info") if "real GPT-2 is not available" in i]
    assert banner and gpt2viz.BUNDLED_NAME in banner[0]
    assert any(gpt2viz.BUNDLED_NAME in c for c in texts(at, "caption") + texts(at, "markdown"))
