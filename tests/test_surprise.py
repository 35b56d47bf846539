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
