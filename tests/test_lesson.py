"""The Lesson's data (app.lesson.content) and card views (app.lesson.views), against computations
done here by hand."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import gpt2viz
from app.lesson.content import (
    CAT_SENTENCE,
    TEMPERATURES,
    Lesson,
    attention_to,
    bidirectional_mask,
    entropy_bits,
    load_cards,
    parse_cards,
    softmax,
    softmax_sharpness,
    temperature_table,
    word_position,
)
from app.lesson.views import VIEWS, card_view, demo_note, short_name
from app.navigation import URL_PATHS
from gpt2viz.analysis import best_head

CONFIG = gpt2viz.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128)


@pytest.fixture(scope="module")
def model() -> gpt2viz.GPT2:
    torch.manual_seed(1)
    return gpt2viz.GPT2(CONFIG, name="lesson-test").eval()


@pytest.fixture(scope="module")
def lesson(model, tok) -> Lesson:
    return Lesson(model, tok, "The cat sat on the mat because the cat was tired.")


def by_hand_pattern(trace: gpt2viz.Trace, layer: int, head: int) -> np.ndarray:
    """[q, k] softmax(q·k / √d_head) with the future masked, from the recorded q and k only."""
    q = trace["q", layer][:, head].double().numpy()
    k = trace["k", layer][:, head].double().numpy()
    scores = q @ k.T / math.sqrt(q.shape[1])
    n = len(q)
    out = np.zeros((n, n))
    for i in range(n):
        e = np.exp(scores[i, : i + 1] - scores[i, : i + 1].max())
        out[i, : i + 1] = e / e.sum()
    return out


# --- pure functions -----------------------------------------------------------------------------

def test_attention_to_is_the_recorded_pattern_and_the_hand_computed_one(model, tok):
    ids = tok.encode(CAT_SENTENCE)
    texts = tok.token_texts(ids)
    q, k = word_position(texts, "cat"), word_position(texts, "black")
    assert (texts[q], texts[k]) == (" cat", " black")
    trace = model.run_with_capture(ids)
    got = attention_to(trace, q, k)
    assert got.shape == (CONFIG.n_layer, CONFIG.n_head)
    for layer in range(CONFIG.n_layer):
        for head in range(CONFIG.n_head):
            assert float(got[layer, head]) == float(trace["pattern", layer][head, q, k])
            by_hand = by_hand_pattern(trace, layer, head)[q, k]
            assert float(got[layer, head]) == pytest.approx(by_hand, abs=1e-5)
    layer, head, value = best_head(got)
    assert value == float(got.max()) and float(got[layer, head]) == value
    with pytest.raises(ValueError):
        attention_to(trace, k, q)  # a key after the query


def test_softmax_sharpness_by_hand():
    scores = np.array([12.0, 4.0, -8.0, 0.0])
    s = softmax_sharpness(scores, 16)
    scaled = [3.0, 1.0, -2.0, 0.0]
    z = sum(math.exp(x) for x in scaled)
    expected = [math.exp(x) / z for x in scaled]
    np.testing.assert_allclose(s.scaled, scaled)
    np.testing.assert_allclose(s.weights, expected)
    np.testing.assert_allclose(s.unscaled_weights, np.exp(scores - 12) / np.exp(scores - 12).sum())
    assert s.max_weight == pytest.approx(max(expected))
    assert s.unscaled_max_weight == pytest.approx(1 / (1 + math.exp(-8) + math.exp(-20) + math.exp(-12)))
    assert s.entropy == pytest.approx(-sum(p * math.log2(p) for p in expected))
    assert s.unscaled_entropy < s.entropy  # without the division the softmax is sharper
    assert s.unscaled_max_weight > s.max_weight
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert entropy_bits(np.array([1.0, 0.0, 0.0])) == 0.0


def test_masks(model, tok):
    for n in (1, 2, 5):
        assert bidirectional_mask(n).all() and bidirectional_mask(n).shape == (n, n)
    ids = tok.encode(CAT_SENTENCE)[:7]
    recorded = model.run_with_capture(ids, names=[gpt2viz.act_name("mask", 0)])["mask", 0].numpy()
    np.testing.assert_array_equal(recorded, np.tril(np.ones((7, 7), dtype=bool)))


def test_adding_a_large_negative_number_gives_future_tokens_zero_weight():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    allowed = np.array([True, True, False, False])
    weights = softmax(np.where(allowed, scores, scores - 1e9))  # the textbook mask: a large negative number
    np.testing.assert_array_equal(weights[2:], 0.0)
    np.testing.assert_allclose(weights[:2], np.exp([1.0, 2.0]) / np.exp([1.0, 2.0]).sum())


def test_temperature_table_is_softmax_of_logits_over_temperature(tok):
    torch.manual_seed(0)
    logits = torch.randn(CONFIG.vocab_size) * 3
    t = temperature_table(logits, tok, temperatures=(0.5, 2.0), n=5)
    top = np.argsort(-logits.double().numpy(), kind="stable")[:5]
    assert t.ids == [int(i) for i in top]
    for row, temp in enumerate((0.5, 2.0)):
        x = logits.double().numpy() / temp
        p = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        np.testing.assert_allclose(t.probs[row], p[top], rtol=1e-4)
    assert t.probs[0, 0] > t.probs[1, 0]  # colder: more on the top token


# --- the cards ----------------------------------------------------------------------------------

def test_every_card_has_a_title_a_text_and_a_target_page():
    cards = load_cards()
    assert len(cards) >= 12
    assert len({c.id for c in cards}) == len(cards)
    assert {c.id for c in cards} == set(VIEWS)
    for c in cards:
        assert c.title.strip() and len(c.text.split()) >= 20, c
        assert c.see in URL_PATHS, c


def test_card_file_errors_name_the_card():
    good = "## One\nid: a\nsee: qkv\n\nSome text.\n"
    assert [c.id for c in parse_cards(good)] == ["a"]
    with pytest.raises(ValueError, match="Two"):
        parse_cards("## Two\nid: b\n\nText.\n")  # no page
    with pytest.raises(ValueError, match="nowhere"):
        parse_cards("## Three\nid: c\nsee: nowhere\n\nText.\n")


def test_every_card_view_shows_live_numbers(lesson):
    for card in load_cards():
        v = card_view(lesson, card.id)
        assert v.metrics and all(label and value for label, value in v.metrics), card.id
        assert v.figure is not None or v.html, card.id
        if v.figure is not None:
            assert isinstance(v.figure, go.Figure) and v.figure.data, card.id
    with pytest.raises(KeyError, match="nope"):
        card_view(lesson, "nope")


def test_cat_numbers_are_the_models(lesson, model, tok):
    cat = lesson.cat
    trace = model.run_with_capture(tok.encode(CAT_SENTENCE))
    expected = torch.stack([trace["pattern", layer][:, cat.query, cat.key]
                            for layer in range(CONFIG.n_layer)])
    # the lesson records q, k, v and patterns only (the LayerNorms take their fused path): 1e-6
    torch.testing.assert_close(cat.attention, expected, atol=1e-6, rtol=0)
    assert cat.weight == pytest.approx(float(expected.max()), abs=1e-6)
    v = card_view(lesson, "cat_black")
    np.testing.assert_allclose(v.figure.data[0].y, expected[cat.layer].numpy(), atol=1e-6)
    assert v.selection == {"layer": cat.layer, "head": cat.head}  # the prompt is not the cat sentence
    s = lesson.sharpness
    q = trace["q", cat.layer][cat.query, cat.head].double()
    k = trace["k", cat.layer][: cat.query + 1, cat.head].double()
    np.testing.assert_allclose(s.dots, (k @ q).numpy(), atol=1e-6)
    np.testing.assert_allclose(s.weights, trace["pattern", cat.layer][cat.head, cat.query, : cat.query + 1],
                               atol=1e-5)


def test_cat_sentence_as_prompt_selects_the_cat_query(model, tok):
    ls = Lesson(model, tok, CAT_SENTENCE + " And more.")
    assert card_view(ls, "qkv").selection["query"] == ls.cat.query


def test_temperatures_and_masks_cards(lesson):
    t = lesson.temperatures
    assert t.temperatures == TEMPERATURES
    logits = lesson.trace.logits[-1].double()
    for row, temp in enumerate(TEMPERATURES):
        np.testing.assert_allclose(t.probs[row], (logits / temp).softmax(-1)[t.ids].numpy(), rtol=1e-4)
    v = card_view(lesson, "mask")
    assert dict(v.metrics)["Weight on later tokens"] == "0"
    causal, bert = (d.z for d in v.figure.data)
    n = len(causal)
    np.testing.assert_array_equal(np.asarray(causal, dtype=bool), np.tril(np.ones((n, n), dtype=bool)))
    assert np.asarray(bert).all()


def test_feed_forward_card_is_four_times_wider(lesson):
    metrics = dict(card_view(lesson, "mlp").metrics)
    assert metrics["d_mlp"] == f"{4 * CONFIG.n_embd:,}" and metrics["Wider by"] == "4×"


def test_prompt_filling_the_context_has_no_continuation(model, tok):
    ls = Lesson(model, tok, "a" + " a" * (CONFIG.n_positions - 1))
    assert len(ls.ids) == CONFIG.n_positions
    assert ls.continuation is None
    assert "fills the context" in card_view(ls, "kv_cache").note


def test_kv_cache_card_writes_greedily(lesson, model, tok):
    c = lesson.continuation
    steps = list(gpt2viz.generate(model, tok, lesson.ids, max_new_tokens=len(c.new_ids), temperature=0.0))
    assert c.new_ids == [s.token_id for s in steps]
    metrics = dict(card_view(lesson, "kv_cache").metrics)
    assert metrics["Context window"] == f"{CONFIG.n_positions:,} tokens"


def test_demos_are_labelled_honestly(lesson):
    assert [c.label for c in lesson.demos] == ["Summary", "Translation"]
    assert "not learned to summarise or translate" in demo_note(gpt2viz.BUNDLED_NAME)
    assert "poorly" in demo_note("gpt2")
    v = card_view(lesson, "beyond")
    assert "lesson-test" in v.html and "French" in v.html  # the prompts are shown with the output


def test_next_token_card_ticks_never_repeat(lesson):
    """The random model's likeliest tokens have about 1/50,257 each: d3 at .2% wrote 0.00%, 0.01%, 0.01%."""
    fig = card_view(lesson, "next_token").figure
    top = max(p for _, _, p in lesson.next_tokens)
    assert top < 1e-3  # the case of the issue: every candidate unlikely
    axis = fig.layout.xaxis
    decimals = int(axis.tickformat[1:-1])
    ticks = [k * axis.dtick for k in range(int(round(axis.range[1] / axis.dtick, 9)) + 1)]
    labels = [f"{t * 100:.{decimals}f}%" for t in ticks]  # as d3 writes them
    assert axis.tick0 == 0 and len(ticks) >= 3 and len(set(labels)) == len(labels), labels
    assert axis.range[1] == pytest.approx(1.25 * top)


@pytest.mark.parametrize("name, short", [
    ("/home/teacher/models/my-model", "my-model"), ("models/my-model/", "my-model"), ("gpt2", "gpt2"),
    ("/data/gpt2-small/model.safetensors", "gpt2-small"), ("model.safetensors", "model"),
    ("openai-community/gpt2", "gpt2"), (gpt2viz.BUNDLED_NAME, gpt2viz.BUNDLED_NAME),
])
def test_short_name(name, short):
    assert short_name(name) == short


def test_a_model_loaded_from_a_folder_is_named_by_the_folder(lesson, monkeypatch):
    monkeypatch.setattr(lesson.model, "name", "/home/teacher/models/my-model")
    title = card_view(lesson, "next_token").figure.layout.title.text
    assert title.startswith("my-model's 10 likeliest next tokens after") and "/home" not in title
    assert f"{len(lesson.continuation.new_ids)} tokens my-model wrote" in card_view(lesson, "kv_cache").note
    assert "/home" not in card_view(lesson, "beyond").html + card_view(lesson, "beyond").note

