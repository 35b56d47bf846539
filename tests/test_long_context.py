"""The app at the full 1,024-token context: light figures on every page, the attention overview
with its zoom window and token search, and the recording budget honoured."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

import gpt2viz
from app.computations import recordings
from gpt2viz.budget import BUDGET_ENV, MB, byte_size
from gpt2viz.loading import MODEL_ENV
from tests.app_support import (
    ATTENTION,
    GENERATE,
    INSIDE_STEP,
    MLP,
    QKV,
    WHY,
    figure,
    generate,
    new_app,
    session_generation,
)

LONG = gpt2viz.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=1024)
MAX_FIGURE_BYTES = 2 * 1000 * 1000  # the JSON a chart sends to the browser
NEW_TOKENS = 3


def long_prompt(tok: gpt2viz.GPT2Tokenizer, n: int) -> str:
    """About `n` tokens of text with one " piano" in the middle (the search finds it)."""
    unit = "The cat sat on the mat and looked at the door. "
    repeats = n // (2 * len(tok.encode(unit)))
    ids = tok.encode(unit * repeats + "A piano stood there. " + unit * (repeats + 10))[:n]
    assert len(ids) == n
    return tok.decode(ids)


@pytest.fixture(scope="module")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A random model with GPT-2's full context, as $GPT2VIZ_MODEL for this module. The app's
    caches (the default model, the opening example, the recording store, …) live as long as the
    process and are keyed by the model's source, "" for the default: they are emptied before and
    after, so no other module sees this model or this module another one."""
    torch.manual_seed(0)
    folder = str(gpt2viz.save_model(gpt2viz.GPT2(LONG).eval(), tmp_path_factory.mktemp("long-gpt2")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_ENV, folder)
        st.cache_resource.clear()
        yield folder
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def at(long_model: str) -> AppTest:
    tok = gpt2viz.load_tokenizer()
    at = generate(new_app(), long_prompt(tok, 1024 - NEW_TOKENS - 1), max_new_tokens=NEW_TOKENS)
    assert len(session_generation(at).ids) >= 1000
    return at


def chart_sizes(at: AppTest) -> dict[str, int]:
    return {e.proto.id.rsplit("-", 1)[-1]: len(e.proto.spec.encode()) for e in at.get("plotly_chart")}


@pytest.mark.parametrize("page", [GENERATE, ATTENTION, QKV, MLP, INSIDE_STEP, WHY])
def test_every_page_sends_light_figures_at_1024_tokens(at: AppTest, page: str) -> None:
    at.switch_page(page).run()
    assert not at.exception, at.exception
    sizes = chart_sizes(at)
    assert sizes, "no chart on the page"
    assert max(sizes.values()) <= MAX_FIGURE_BYTES, sizes


def test_attention_shows_an_overview_and_a_labelled_window_that_search_moves(at: AppTest,
                                                                             long_model: str) -> None:
    at.switch_page(ATTENTION).run()
    n = len(session_generation(at).ids)
    overview = figure(at, "attention_overview")
    z = overview["data"][0]["z"]
    assert z.shape == (256, 256)  # pooled from n × n
    window = figure(at, "attention_heatmap")
    assert window["data"][0]["z"].shape == (64, 64) and len(window["data"][0]["y"]) == 64
    assert f"queries {n - 64}–{n - 1}" in window["layout"]["title"]["text"]  # the newest tokens first
    # the pooled overview keeps each block's largest weight of the recorded pattern
    model = gpt2viz.load_model(long_model, device="cpu")
    pattern = model.run_with_capture(session_generation(at).ids, names=[gpt2viz.act_name("pattern", 0)])[
        "pattern", 0][0].numpy()
    rows = np.linspace(0, n, 257).astype(int)[:-1]
    assert z[3, 2] == pytest.approx(np.nanmax(pattern[rows[3]:rows[4], rows[2]:rows[3]]), abs=5e-4)
    # search: the one " piano" becomes the window's last row
    at.text_input(key="find_token").input("piano").run()
    (found,) = [s for s in at.selectbox if s.key == "zoom_found"]
    found.select_index(0).run()
    assert not at.exception, at.exception
    position = at.selectbox(key="zoom_found").value
    assert gpt2viz.load_tokenizer().token_texts(session_generation(at).ids)[position] == " piano"
    window = figure(at, "attention_heatmap")
    assert f"queries {position - 63}–{position}," in window["layout"]["title"]["text"]
    assert "piano" in window["data"][0]["y"][-1]


def test_recordings_stay_within_a_small_budget_and_pages_still_render(
        long_model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUDGET_ENV, "20")  # MB: Q·K·V (17 MB) and Attention (9 MB) for one layer overflow it
    recordings.clear()
    tok = gpt2viz.load_tokenizer()
    at = generate(new_app(), long_prompt(tok, 1000), max_new_tokens=2)
    store = recordings()
    assert store.budget_bytes == 20 * MB
    for page in (ATTENTION, QKV, MLP, INSIDE_STEP, WHY, ATTENTION):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        assert 0 < store.used_bytes <= store.budget_bytes, (page, store.used_bytes)
        memory = [c for c in at.sidebar.caption if "Recordings in memory" in c.value]
        assert len(memory) == 1 and f"**{byte_size(store.used_bytes)}** of 20 MB" in memory[0].value
    assert store.evictions >= 1
    recordings.clear()
