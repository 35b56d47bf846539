"""Head scores of gpt2viz.analysis: the pure pattern scorers on constructed patterns, and the
model-level functions on a small random model."""

from __future__ import annotations

import pytest
import torch

import gpt2viz
from gpt2viz.analysis import (
    best_head,
    induction_score,
    induction_scores,
    previous_token_score,
    previous_token_scores,
    repeated_random_tokens,
)


def uniform_causal(n: int, heads: int = 1) -> torch.Tensor:
    """[head, q, k]: each query spreads its attention evenly over itself and every earlier key."""
    mask = torch.tril(torch.ones(n, n))
    return (mask / mask.sum(-1, keepdim=True)).expand(heads, n, n).clone()


def previous_token_pattern(n: int) -> torch.Tensor:
    p = torch.zeros(1, n, n)
    p[0, 0, 0] = 1.0
    p[0, torch.arange(1, n), torch.arange(n - 1)] = 1.0
    return p


def induction_pattern(L: int, prefix: int = 1, offset: int = 1) -> torch.Tensor:
    """Exact induction (offset=1: key q-L+1) on the second copy, attention to position 0 elsewhere."""
    n = prefix + 2 * L
    p = torch.zeros(1, n, n)
    p[0, :, 0] = 1.0
    for q in range(prefix + L, n):
        p[0, q, 0] = 0.0
        p[0, q, q - L + offset] = 1.0
    return p


def test_previous_token_exact_pattern_scores_one() -> None:
    assert previous_token_score(previous_token_pattern(40)).item() == pytest.approx(1.0)


def test_previous_token_uniform_causal_scores_low() -> None:
    n = 64
    score = previous_token_score(uniform_causal(n, heads=3))
    assert score.shape == (3,)
    expected = sum(1 / (i + 1) for i in range(1, n)) / (n - 1)  # mean of 1/(i+1)
    assert torch.allclose(score, torch.full((3,), expected))
    assert (score < 0.1).all()


def test_previous_token_score_keeps_leading_dims() -> None:
    p = torch.stack([previous_token_pattern(10)[0], uniform_causal(10)[0]])  # [head=2, q, k]
    s = previous_token_score(torch.stack([p, p]))  # [layer=2, head=2]
    assert s.shape == (2, 2)
    assert s[:, 0].tolist() == pytest.approx([1.0, 1.0])


def test_induction_exact_pattern_scores_one() -> None:
    for L, prefix in [(10, 1), (7, 0), (25, 3)]:
        assert induction_score(induction_pattern(L, prefix), L, prefix).item() == pytest.approx(1.0)


def test_induction_scores_zero_off_the_stripe() -> None:
    L = 12
    # attending to the earlier copy of the same token (a duplicate-token head), not the one after
    assert induction_score(induction_pattern(L, offset=0), L).item() == pytest.approx(0.0)
    assert induction_score(previous_token_pattern(1 + 2 * L), L).item() == pytest.approx(0.0)
    assert induction_score(uniform_causal(1 + 2 * L), L).item() < 0.1


def test_induction_score_rejects_short_patterns() -> None:
    with pytest.raises(ValueError):
        induction_score(uniform_causal(20), seq_len=10, prefix=1)
    with pytest.raises(ValueError):
        previous_token_score(torch.ones(1, 1, 1))


def test_repeated_random_tokens_are_seeded_repeats() -> None:
    a = repeated_random_tokens(seq_len=8, n_seqs=2, seed=3)
    assert a == repeated_random_tokens(seq_len=8, n_seqs=2, seed=3)
    assert a != repeated_random_tokens(seq_len=8, n_seqs=2, seed=4)
    for s in a:
        assert len(s) == 17 and s[0] == gpt2viz.EOT_ID and s[1:9] == s[9:]
        assert all(0 <= t < gpt2viz.EOT_ID for t in s[1:])


@pytest.fixture(scope="module")
def small_model() -> gpt2viz.GPT2:
    torch.manual_seed(0)
    config = gpt2viz.GPT2Config(n_positions=128, n_embd=48, n_layer=2, n_head=3)
    return gpt2viz.GPT2(config).eval()


def test_model_scores_shape_and_range(small_model: gpt2viz.GPT2) -> None:
    ids = torch.randint(0, 50000, (40,), generator=torch.Generator().manual_seed(1))
    for scores in (previous_token_scores(small_model, [ids.tolist()]),
                   previous_token_scores(small_model, [ids.tolist(), ids[:20].tolist()]),
                   induction_scores(small_model, seq_len=20, n_seqs=2, seed=0)):
        assert scores.shape == (2, 3)
        assert ((scores >= 0) & (scores <= 1)).all()
    layer, head, score = best_head(induction_scores(small_model, seq_len=20, n_seqs=2, seed=0))
    assert 0 <= layer < 2 and 0 <= head < 3 and 0 <= score <= 1


def test_model_score_matches_pattern_score(small_model: gpt2viz.GPT2) -> None:
    ids = list(range(100, 130))
    trace = small_model.run_with_capture(ids, names=["blocks.1.attn.hook_pattern"])
    expected = previous_token_score(trace["blocks.1.attn.hook_pattern"])
    assert torch.allclose(previous_token_scores(small_model, [ids])[1], expected)
