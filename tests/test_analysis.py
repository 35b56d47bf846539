"""Head scores of gpt2viz.analysis: the pure pattern scorers on constructed and random patterns
(against loops written here), and the model-level functions on the small random checkpoint of
conftest.py, against the attention that Hugging Face transformers computes on the same weights."""

from __future__ import annotations

import pytest
import torch

import gpt2viz
from gpt2viz.analysis import (
    HEAD_ROLES,
    attention_patterns,
    best_head,
    duplicate_token_score,
    first_token_score,
    head_roles,
    induction_score,
    induction_scores,
    pattern_roles,
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
    uniform = sum(1 / (i + 1) for i in range(1, 10)) / 9
    torch.testing.assert_close(s, torch.tensor([[1.0, uniform], [1.0, uniform]]))


def random_causal(n: int, heads: int, seed: int) -> torch.Tensor:
    """[head, q, k]: softmax of random scores over each query's own and earlier keys."""
    scores = torch.randn(heads, n, n, generator=torch.Generator().manual_seed(seed)) * 3
    return scores.masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool)), float("-inf")).softmax(-1)


def previous_token_by_hand(p: torch.Tensor) -> list[float]:
    """Per head, the mean of p[head, i, i-1] over i = 1 .. n-1, one entry at a time."""
    n = p.shape[-1]
    return [sum(float(p[h, i, i - 1]) for i in range(1, n)) / (n - 1) for h in range(p.shape[0])]


def induction_by_hand(p: torch.Tensor, L: int, prefix: int) -> list[float]:
    """Per head, the mean of p[head, q, q-L+1] over the second copy's queries q."""
    queries = range(prefix + L, prefix + 2 * L)
    return [sum(float(p[h, q, q - L + 1]) for q in queries) / L for h in range(p.shape[0])]


def test_scores_of_random_patterns_equal_the_loops() -> None:
    for n, seed in [(2, 0), (9, 1), (33, 2)]:
        p = random_causal(n, heads=3, seed=seed)
        assert previous_token_score(p).tolist() == pytest.approx(previous_token_by_hand(p), abs=1e-6)
    for L, prefix, extra in [(2, 0, 0), (5, 1, 0), (8, 3, 4)]:  # extra: positions after the second copy
        p = random_causal(prefix + 2 * L + extra, heads=3, seed=L)
        expected = induction_by_hand(p, L, prefix)
        assert induction_score(p, L, prefix).tolist() == pytest.approx(expected, abs=1e-6)


def test_induction_exact_pattern_scores_one() -> None:
    for L, prefix in [(10, 1), (7, 0), (25, 3)]:
        assert induction_score(induction_pattern(L, prefix), L, prefix).item() == pytest.approx(1.0)


def test_induction_scores_zero_off_the_stripe() -> None:
    L = 12
    # attending to the earlier copy of the same token (a duplicate-token head), not the one after
    assert induction_score(induction_pattern(L, offset=0), L).item() == pytest.approx(0.0)
    assert induction_score(previous_token_pattern(1 + 2 * L), L).item() == pytest.approx(0.0)
    # uniform: query q gives 1/(q+1) to each key, the stripe's key included
    expected = sum(1 / (q + 1) for q in range(1 + L, 1 + 2 * L)) / L
    assert induction_score(uniform_causal(1 + 2 * L), L).item() == pytest.approx(expected)
    assert expected < 0.1


def test_induction_score_rejects_short_patterns() -> None:
    with pytest.raises(ValueError):
        induction_score(uniform_causal(20), seq_len=10, prefix=1)
    with pytest.raises(ValueError):
        previous_token_score(torch.ones(1, 1, 1))


def test_repeated_random_tokens_are_seeded_repeats() -> None:
    a = repeated_random_tokens(seq_len=8, n_seqs=3, seed=3)
    assert a == repeated_random_tokens(seq_len=8, n_seqs=3, seed=3)
    assert a != repeated_random_tokens(seq_len=8, n_seqs=3, seed=4)
    assert len(a) == 3 and len({tuple(s) for s in a}) == 3  # a fresh block for each sequence
    for s in a:
        # bos, then r, then r again
        assert len(s) == 17 and s[0] == gpt2viz.EOT_ID and s[1:9] == s[9:]
        assert all(0 <= t < gpt2viz.EOT_ID for t in s[1:])
    # the first of more sequences are the same ones: each is drawn in turn from one seeded generator
    assert repeated_random_tokens(seq_len=8, n_seqs=5, seed=3)[:3] == a
    assert repeated_random_tokens(seq_len=8, n_seqs=2, seed=3, bos=None) == [s[1:] for s in a[:2]]


def test_repeated_random_tokens_never_draw_endoftext() -> None:
    # 500,000 draws over the whole vocabulary: drawing from 0..50256 would give ~10 <|endoftext|>s
    (s,) = repeated_random_tokens(seq_len=500_000, n_seqs=1, seed=0, bos=None)
    assert gpt2viz.EOT_ID not in s and max(s) < gpt2viz.EOT_ID and min(s) >= 0
    assert max(s) > gpt2viz.EOT_ID - 100  # ...but the rest of the vocabulary, up to its top
    # a smaller vocabulary bounds the ids, and every id of it turns up
    (small,) = repeated_random_tokens(seq_len=1000, n_seqs=1, seed=1, vocab_size=10)
    assert small[0] == gpt2viz.EOT_ID and set(small[1:]) == set(range(10))


def test_best_head() -> None:
    assert best_head(torch.tensor([[0.1, 0.2, 0.0], [0.05, 0.9, 0.3]])) == (1, 1, pytest.approx(0.9))
    assert best_head(torch.tensor([[0.7, 0.2], [0.3, 0.6], [0.1, 0.0]])) == (0, 0, pytest.approx(0.7))
    assert best_head(torch.tensor([[0.1], [0.2], [0.3]])) == (2, 0, pytest.approx(0.3))


def hf_patterns(small_hf, ids: list[int]) -> torch.Tensor:
    """[layer, head, q, k] from transformers' GPT2LMHeadModel (eager attention) on the same weights."""
    with torch.no_grad():
        out = small_hf(torch.tensor([ids]), output_attentions=True)
    return torch.stack([a[0] for a in out.attentions])


def random_ids(n: int, seed: int) -> list[int]:
    return torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_attention_patterns_equal_the_recording_and_transformers(small_model, small_hf) -> None:
    ids = random_ids(40, seed=1)
    got = attention_patterns(small_model, ids)
    assert got.shape == (2, 4, 40, 40) and got.dtype == torch.float32 and got.device.type == "cpu"
    torch.testing.assert_close(got, hf_patterns(small_hf, ids), atol=1e-5, rtol=0)
    trace = small_model.run_with_capture(ids, names=[gpt2viz.act_name("pattern", "*")])
    for layer in range(2):
        assert torch.equal(got[layer], trace["pattern", layer])


def test_previous_token_scores_are_the_mean_sub_diagonal(small_model, small_hf) -> None:
    seqs = [random_ids(30, seed=2), random_ids(11, seed=3)]  # two lengths: each sequence weighs the same
    per_seq = []
    for ids in seqs:
        p = hf_patterns(small_hf, ids)
        per_seq.append([previous_token_by_hand(p[layer]) for layer in range(2)])
    expected = (torch.tensor(per_seq[0]) + torch.tensor(per_seq[1])) / 2
    got = previous_token_scores(small_model, seqs)
    assert got.shape == (2, 4)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(previous_token_scores(small_model, seqs[:1]), torch.tensor(per_seq[0]),
                               atol=1e-5, rtol=0)


def test_induction_scores_are_the_stripe_on_repeated_random_tokens(small_model, small_hf) -> None:
    L = 20
    seqs = repeated_random_tokens(seq_len=L, n_seqs=3, seed=5)
    per_seq = [[induction_by_hand(hf_patterns(small_hf, s)[layer], L, prefix=1) for layer in range(2)]
               for s in seqs]
    expected = torch.tensor(per_seq).mean(0)
    got = induction_scores(small_model, seq_len=L, n_seqs=3, seed=5)
    assert got.shape == (2, 4)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, induction_scores(small_model, seq_len=L, n_seqs=3, seed=6))


# --- head roles: first-token and duplicate-token scores, and all four together -----------------

def first_token_by_hand(p: torch.Tensor) -> list[float]:
    """Per head, the mean of p[head, i, 0] over i = 1 .. n-1."""
    n = p.shape[-1]
    return [sum(float(p[h, i, 0]) for i in range(1, n)) / (n - 1) for h in range(p.shape[0])]


def duplicate_token_by_hand(p: torch.Tensor, ids: list[int]) -> list[float]:
    """Per head, the mean over queries q with an earlier copy of ids[q] of the attention q gives to
    its earlier copies, one entry at a time; 0 when no token repeats."""
    queries = [q for q in range(len(ids)) if ids[q] in ids[:q]]
    if not queries:
        return [0.0] * p.shape[0]
    return [sum(sum(float(p[h, q, k]) for k in range(q) if ids[k] == ids[q]) for q in queries) / len(queries)
            for h in range(p.shape[0])]


def test_first_token_score_of_constructed_patterns() -> None:
    n = 10
    sink = torch.zeros(1, n, n)
    sink[0, :, 0] = 1.0  # every query attends to position 0 only
    assert first_token_score(sink).tolist() == [1.0]
    # a previous-token head reaches position 0 from query 1 only
    assert first_token_score(previous_token_pattern(n)).item() == pytest.approx(1 / (n - 1))
    uniform = sum(1 / (i + 1) for i in range(1, n)) / (n - 1)
    torch.testing.assert_close(first_token_score(uniform_causal(n, heads=2)), torch.full((2,), uniform))
    with pytest.raises(ValueError, match="at least two positions"):
        first_token_score(torch.ones(1, 1, 1))


def test_duplicate_token_score_of_a_constructed_pattern() -> None:
    ids = [5, 7, 5, 9, 7, 5]  # earlier copies: query 2 → key 0, query 4 → key 1, query 5 → keys 0 and 2
    p = torch.eye(6)[None].repeat(2, 1, 1)  # [head=2, q, k]: each query on itself...
    p[0, 2] = torch.tensor([0.5, 0, 0.5, 0, 0, 0])  # ...head 0: half on the earlier 5
    p[0, 4] = torch.tensor([0, 1.0, 0, 0, 0, 0])  # all on the earlier 7
    p[0, 5] = torch.tensor([0.25, 0, 0.25, 0, 0, 0.5])  # a quarter on each earlier 5
    p[0, 3] = torch.tensor([1.0, 0, 0, 0, 0, 0])  # query 3 (a first 9) does not count
    scores = duplicate_token_score(p, ids)
    assert scores.shape == (2,)
    assert scores[0].item() == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert scores[1].item() == 0.0  # head 1 stays on itself: the current token is not an earlier copy
    assert duplicate_token_score(p, [1, 2, 3, 4, 5, 6]).tolist() == [0.0, 0.0]  # no repeats: 0
    with pytest.raises(ValueError, match="the 5 ids need"):
        duplicate_token_score(p, ids[:5])


def test_role_scores_of_random_patterns_equal_the_loops() -> None:
    for n, seed in [(2, 0), (9, 1), (33, 2)]:
        p = random_causal(n, heads=3, seed=seed)
        ids = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
        roles = pattern_roles(p, ids)
        assert list(roles) == ["first_token", "previous_token", "duplicate_token"]
        assert roles["first_token"].tolist() == pytest.approx(first_token_by_hand(p), abs=1e-6)
        assert roles["previous_token"].tolist() == pytest.approx(previous_token_by_hand(p), abs=1e-6)
        assert roles["duplicate_token"].tolist() == pytest.approx(duplicate_token_by_hand(p, ids), abs=1e-6)
        # leading dimensions are kept, as in previous_token_score
        stacked = pattern_roles(torch.stack([p, p]), ids)["duplicate_token"]
        assert stacked.shape == (2, 3) and torch.equal(stacked[0], stacked[1])


def test_head_roles_of_a_model_equal_the_loops_on_transformers_patterns(small_model, small_hf) -> None:
    ids = random_ids(30, seed=4)
    ids[20:26] = ids[3:9]  # a repeated stretch, so duplicate-token scores are not all 0
    roles = head_roles(small_model, ids)
    assert tuple(roles) == HEAD_ROLES == ("first_token", "previous_token", "duplicate_token", "induction")
    assert all(score.shape == (2, 4) for score in roles.values())
    p = hf_patterns(small_hf, ids)
    for key, by_hand in [("first_token", first_token_by_hand), ("previous_token", previous_token_by_hand),
                         ("duplicate_token", lambda q: duplicate_token_by_hand(q, ids))]:
        expected = torch.tensor([by_hand(p[layer]) for layer in range(2)])
        torch.testing.assert_close(roles[key], expected, atol=1e-5, rtol=0)
    assert (roles["duplicate_token"] > 0).all()
    assert torch.equal(roles["induction"], induction_scores(small_model))
    drawn = head_roles(small_model, ids, induction_ids=list(range(100, 200)))["induction"]
    assert torch.equal(drawn, induction_scores(small_model, ids=list(range(100, 200))))
    with pytest.raises(ValueError, match="at least two positions"):
        head_roles(small_model, ids[:1])
