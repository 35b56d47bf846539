"""Head-level analyses: previous-token and induction scores of every attention head.

The scores follow the standard tests (as in TransformerLens's tutorials):

* previous-token score of a head = mean attention from each position to the position just
  before it (query i → key i-1, for i ≥ 1), on ordinary text;
* induction score of a head = mean attention, from each token of the second copy of a repeated
  sequence of random tokens, to the token just after that token's earlier occurrence (query i →
  key i-L+1 for a repeated block of length L).

The pure scoring pieces (`previous_token_score`, `induction_score`) work on attention patterns
[..., head, q_pos, k_pos] so they can be tested on constructed patterns; `previous_token_scores`
and `induction_scores` run a model and return a [layer, head] tensor. No Streamlit here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .hooks import act_name
from .model import GPT2
from .tokenizer import EOT_ID
from .trace import Trace


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from position i to i-1 (i ≥ 1). pattern [..., head, q, k] → [..., head]."""
    if pattern.shape[-1] < 2 or pattern.shape[-2] < 2:
        raise ValueError("A previous-token score needs at least two positions.")
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).float().mean(-1)


def induction_score(pattern: torch.Tensor, seq_len: int, prefix: int = 1) -> torch.Tensor:
    """Mean attention from the second copy of a repeated block to the token after the first copy.

    The sequence is `prefix` tokens (e.g. one BOS), then a block of `seq_len` tokens, then the same
    block again. Query positions of the second copy are prefix+L .. prefix+2L-1; each should attend
    to key q-L+1. pattern [..., head, q, k] (q covering at least prefix+2L positions) → [..., head].
    """
    L = int(seq_len)
    if L < 2:
        raise ValueError("The repeated block must be at least 2 tokens long.")
    if pattern.shape[-2] < prefix + 2 * L:
        raise ValueError(f"The pattern has {pattern.shape[-2]} query positions; a repeated block of "
                         f"{L} after {prefix} prefix tokens needs {prefix + 2 * L}.")
    stripe = pattern.diagonal(offset=1 - L, dim1=-2, dim2=-1)  # entry j: query j+L-1, key j
    # queries prefix+L .. prefix+2L-1  ->  j = prefix+1 .. prefix+L
    return stripe[..., prefix + 1: prefix + L + 1].float().mean(-1)


def attention_patterns(model: GPT2, ids: Sequence[int]) -> torch.Tensor:
    """All heads' patterns for one sequence: [layer, head, q_pos, k_pos] (float32, CPU)."""
    return model.run_with_capture(list(ids), names=[act_name("pattern", "*")]).stack("pattern")


def trace_previous_token_scores(trace: Trace, n_layer: int) -> torch.Tensor:
    """Previous-token score of every head, [layer, head], from a trace that recorded the patterns.
    Layer by layer: stacking [layer, head, T, T] first would copy every pattern."""
    return torch.stack([previous_token_score(trace["pattern", i]) for i in range(n_layer)])


def previous_token_scores(model: GPT2, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Previous-token score of every head, [layer, head], averaged over the given sequences."""
    n_layer, names = model.config.n_layer, [act_name("pattern", "*")]
    return torch.stack([trace_previous_token_scores(model.run_with_capture(list(s), names=names), n_layer)
                        for s in sequences]).mean(0)


def repeated_random_tokens(
    seq_len: int = 50, n_seqs: int = 4, seed: int = 0, vocab_size: int = 50257,
    bos: int | None = EOT_ID, ids: Sequence[int] | None = None,
) -> list[list[int]]:
    """`n_seqs` sequences of [bos] + r + r, r being `seq_len` uniform random ids (seeded): ids below
    `vocab_size` (never <|endoftext|>), or drawn from `ids` when given."""
    g = torch.Generator().manual_seed(seed)
    high = min(vocab_size, EOT_ID) if ids is None else len(ids)
    out = []
    for _ in range(n_seqs):
        r = torch.randint(0, high, (seq_len,), generator=g).tolist()
        if ids is not None:
            r = [int(ids[i]) for i in r]
        out.append(([bos] if bos is not None else []) + r + r)
    return out


def induction_scores(
    model: GPT2, seq_len: int = 50, n_seqs: int = 4, seed: int = 0, ids: Sequence[int] | None = None
) -> torch.Tensor:
    """Induction score of every head, [layer, head], on repeated random tokens (seeded), drawn
    from the whole vocabulary or from `ids`. A small model only learns embeddings for the ids of
    its corpus; `ids` measures the heads on tokens it has seen."""
    seqs = repeated_random_tokens(seq_len, n_seqs, seed, model.config.vocab_size, ids=ids)
    return torch.stack([induction_score(attention_patterns(model, s), seq_len, prefix=1)
                        for s in seqs]).mean(0)


def best_head(scores: torch.Tensor) -> tuple[int, int, float]:
    """(layer, head, score) of the highest entry of a [layer, head] score tensor."""
    flat = int(scores.argmax())
    layer, head = divmod(flat, scores.shape[1])
    return layer, head, float(scores[layer, head])
