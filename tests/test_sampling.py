"""The sampling chain against a plain reference, and generation drawing from exactly it."""

from __future__ import annotations

import math

import pytest
import torch

import gpt2viz
from gpt2viz.sampling import draw, sampling_stages


def reference(logits: list[float], temperature: float, top_k: int | None, top_p: float | None) -> list[float]:
    """Probabilities written out with Python lists: ÷T, keep the k best (ties with the k-th too),
    softmax, then keep the highest probabilities until their mass reaches top_p."""
    scaled = [x / temperature for x in logits]
    keep = set(range(len(scaled)))
    if top_k is not None and top_k < len(scaled):
        kth = sorted(scaled, reverse=True)[top_k - 1]
        keep = {i for i, x in enumerate(scaled) if x >= kth}
    top = max(scaled[i] for i in keep)
    weights = {i: math.exp(scaled[i] - top) for i in keep}
    total = sum(weights.values())
    probs = {i: w / total for i, w in weights.items()}
    if top_p is not None and top_p < 1:
        chosen, mass = set(), 0.0
        for i in sorted(probs, key=lambda j: (-probs[j], j)):
            if mass >= top_p:
                break
            chosen.add(i)
            mass += probs[i]
        probs = {i: probs[i] / mass for i in chosen}
    return [probs.get(i, 0.0) for i in range(len(logits))]


LOGITS = [3.0, 2.0, 1.0, 0.0, -1.0, 2.0, -3.0]  # ids 1 and 5 tie


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, None, None), (0.5, None, None), (2.0, None, None),
    (1.0, 1, None), (1.0, 2, None), (1.0, 3, None),  # k = 2 cuts between the tied ids: both stay
    (1.0, 7, None), (1.0, 50, None),
    (1.0, None, 1e-9), (1.0, None, 0.5), (1.0, None, 0.7), (1.0, None, 0.99), (1.0, None, 1.0),
    (0.7, 3, 0.8), (1.5, 4, 0.3),
])
def test_stages_match_the_reference(temperature, top_k, top_p) -> None:
    logits = torch.tensor(LOGITS)
    stages = sampling_stages(logits, temperature, top_k, top_p)
    want = torch.tensor(reference(LOGITS, temperature, top_k, top_p))
    torch.testing.assert_close(stages.probs, want, atol=1e-6, rtol=0)
    assert torch.equal(stages.kept, want > 0)
    assert torch.equal(stages.logits, logits) and torch.allclose(stages.scaled, logits / temperature)
    assert stages.probs.sum().item() == pytest.approx(1.0)


def test_edge_cases_by_hand() -> None:
    logits = torch.tensor(LOGITS)
    assert sampling_stages(logits, 1.0, top_k=1).kept.tolist() == [True] + [False] * 6
    assert sampling_stages(logits, 1.0, top_k=2).kept.nonzero().flatten().tolist() == [0, 1, 5]  # tie kept
    assert sampling_stages(logits, 1.0, top_p=1e-9).kept.nonzero().flatten().tolist() == [0]  # never empty
    assert sampling_stages(logits, 1.0, top_p=1.0).kept.all()
    with pytest.raises(ValueError, match="temperature 0 is greedy"):
        sampling_stages(logits, 0.0)
    with pytest.raises(ValueError, match="top_k must be a positive"):
        sampling_stages(logits, 1.0, top_k=0)


def test_draw_depends_only_on_seed_and_index() -> None:
    probs = sampling_stages(torch.randn(1000, generator=torch.Generator().manual_seed(0)), 1.0).probs
    assert draw(probs, 3, 5) == draw(probs, 3, 5)
    assert len({draw(probs, 3, i) for i in range(20)}) > 10
    assert [draw(probs, 3, i) for i in range(20)] != [draw(probs, 4, i) for i in range(20)]
    one_hot = torch.zeros(1000)
    one_hot[17] = 1
    assert draw(one_hot, 9, 0) == 17


def test_generation_draws_from_exactly_these_stages(small_model, tok) -> None:
    settings = dict(temperature=0.8, top_k=30, top_p=0.9, seed=21)
    steps = list(gpt2viz.generate(small_model, tok, "Draw from", max_new_tokens=8, **settings))
    for step in steps:
        stages = sampling_stages(step.trace.logits[-1], 0.8, 30, 0.9)
        assert stages.kept[step.token_id]
        assert step.token_id == draw(stages.probs, 21, step.index)
