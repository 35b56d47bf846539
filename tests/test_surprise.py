"""Per-token surprise: each token's probability given those before it, from a generation's own
recording and by a fresh pass, checked against transformers; two models on the same text."""

from __future__ import annotations

import math

import pytest
import torch

import gpt2viz
from gpt2viz.surprise import compare_models, probabilities_from_logits, surprise_bits, token_probabilities
from tests.conftest import tiny_model


def test_probabilities_from_constructed_logits():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]))
    assert probabilities_from_logits(logits, [2, 1, 2]) == pytest.approx([None, 0.25, 0.8])
    assert probabilities_from_logits(logits[:1], [0]) == [None]
    with pytest.raises(ValueError, match="cannot score 4 tokens"):
        probabilities_from_logits(logits[:2], [0, 1, 2, 0])
    assert surprise_bits(0.25) == 2.0 and surprise_bits(1.0) == 0.0 and surprise_bits(None) is None


def test_token_probabilities_match_transformers(small_hf, small_model, tok):
    ids = tok.encode("The cat sat on the mat because it was warm")
    got = token_probabilities(small_model, ids)
    with torch.no_grad():
        probs = small_hf(torch.tensor([ids])).logits[0].softmax(-1)  # [pos, vocab]
    expected = [probs[i - 1, ids[i]].item() for i in range(1, len(ids))]
    assert got[0] is None and got[1:] == pytest.approx(expected, abs=1e-6)


def test_a_generation_knows_every_tokens_probability_from_its_own_recording(small_model, tok):
    generation = gpt2viz.Generation(small_model, tok, "Ships sail across the", max_new_tokens=4,
                                    temperature=0.9, seed=2)
    assert generation.token_probs == [None] * len(generation.prompt_ids)  # nothing run yet
    list(generation)
    fresh = token_probabilities(small_model, generation.ids)
    assert generation.token_probs[0] is None
    assert generation.token_probs[1:] == pytest.approx(fresh[1:], abs=1e-5)
    unrecorded = gpt2viz.Generation(small_model, tok, "Ships sail across the", max_new_tokens=2, record=False)
    list(unrecorded)
    assert unrecorded.prompt_probs == [None] * len(unrecorded.prompt_ids)  # only the last position was read
    assert unrecorded.token_probs[-2:] == [s.prob for s in unrecorded.steps]


def test_two_models_on_the_same_text(small_model, tok):
    ids = tok.encode("Once upon a time there was a cat")
    same = compare_models(small_model, small_model, ids)
    assert same.bits_gained[0] is None and same.bits_gained[1:] == pytest.approx([0.0] * (len(ids) - 1))
    other = tiny_model(seed=3)
    comparison = compare_models(small_model, other, ids)
    assert comparison.names == (small_model.name, other.name) and comparison.ids == ids
    first, second = comparison.mean_bits()
    assert first == pytest.approx(sum(-math.log2(p) for p in comparison.first[1:]) / (len(ids) - 1))
    assert second == pytest.approx(sum(-math.log2(p) for p in comparison.second[1:]) / (len(ids) - 1))
    gained = comparison.bits_gained
    assert gained[3] == pytest.approx(math.log2(comparison.first[3]) - math.log2(comparison.second[3]))
    small_vocab = gpt2viz.GPT2(gpt2viz.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=100))
    with pytest.raises(ValueError, match="do not share a vocabulary"):
        compare_models(small_model, small_vocab, ids)


def test_the_comparison_figure_shows_the_bits_each_token_saves(small_model, tok):
    from gpt2viz.viz.surprise import FIRST_COLOUR, SECOND_COLOUR, comparison_figure
    from gpt2viz.viz.tokens import token_labels

    ids = tok.encode("Once upon a time there was a cat")
    comparison = compare_models(small_model, tiny_model(seed=3), ids)
    labels = token_labels(tok.token_texts(ids))
    bars = comparison_figure(comparison, labels).data[0]
    assert list(bars.x) == labels[1:]  # the first token has no bar: nothing came before it
    assert list(bars.y) == pytest.approx(comparison.bits_gained[1:])
    expected = [FIRST_COLOUR if bits >= 0 else SECOND_COLOUR for bits in comparison.bits_gained[1:]]
    assert list(bars.marker.color) == expected
    with pytest.raises(ValueError, match="3 labels for"):
        comparison_figure(comparison, labels[:3])


def test_the_token_strip_shows_each_tokens_surprise():
    from gpt2viz.viz.tokens import SURPRISE_SCALE_BITS, surprise_colour, token_strip_html

    assert surprise_colour(1.0) == "#c8e6c9" and surprise_colour(2 ** -SURPRISE_SCALE_BITS) == "#b71c1c"
    assert surprise_colour(1e-40) == "#b71c1c"  # past the scale: as red as it gets
    half = surprise_colour(2 ** -(SURPRISE_SCALE_BITS / 2))
    middle = (round((a + b) / 2) for a, b in zip((200, 230, 201), (183, 28, 28), strict=True))
    assert half == "#{:02x}{:02x}{:02x}".format(*middle)
    html = token_strip_html(["A", " cat"], [" sat"], probs=[None, 0.25, 0.5])
    assert html.count("box-shadow") == 2  # the first token has no probability
    assert 'title="prompt token 1: p = 25.00%, 2.0 bits of surprise"' in html
    assert f"box-shadow:inset 0 -4px 0 {surprise_colour(0.5)}" in html
    assert "box-shadow" not in token_strip_html(["A"], [" b"])  # no probabilities, no bars
