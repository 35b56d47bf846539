"""What a training step minimises.

Text windows: the next-token cross-entropy over all 50257 ids. Synthetic windows (random pool
ids with one repeated block, see `prepare.toy_batch`): the same loss on the counted targets only,
with the softmax over the pool's ids, a fixed candidate set that holds every target. The fixed set
matters: a softmax over fresh random negatives each step gave the tied embedding rows (the very
inputs an induction circuit must key on) a noisy gradient, and copying never started
(training/TOY_INDUCTION.md, run (a+b)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpt2viz import GPT2, Recorder, act_name

from .prepare import IGNORE


def next_token_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, T, vocab] against targets [B, T] (-100: not counted)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


def lm_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The model's next-token loss on inputs x [B, T] and targets y [B, T] (bf16 autocast on
    x's device type when `bf16`)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)  # [B, T, vocab]
    return next_token_loss(logits, y)


def candidate_loss(hidden: torch.Tensor, targets: torch.Tensor, wte: torch.Tensor,
                   candidates: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of hidden [N, C] against the tied embedding rows of the sorted `candidates`
    only; every target must be a candidate."""
    logits = hidden.float() @ wte[candidates].T  # [N, n_candidates]
    index = torch.searchsorted(candidates, targets)  # [N]
    if not bool((candidates[index.clamp(max=len(candidates) - 1)] == targets).all()):
        raise ValueError("every target must be one of the candidates")
    return F.cross_entropy(logits, index)


def pool_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, bf16: bool,
              recorder: Recorder | None = None) -> torch.Tensor:
    """The next-token loss of synthetic windows x, y [B, T]: only at the counted targets (y ≥ 0),
    and with the softmax over the sorted `pool` ids, so the step skips the 50257-wide unembedding
    at every position."""
    keep = y >= 0  # [B, T]
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        final = model.ln_f(model.run_blocks(x, recorder=recorder))  # [B, T, C]
    return candidate_loss(final[keep], y[keep], model.W_U, pool)


def synthetic_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor, keys: torch.Tensor, pool: torch.Tensor,
                   bf16: bool, head: tuple[int, int] | None, weight: float) -> tuple[torch.Tensor, float]:
    """(total loss, its next-token part) of a synthetic step (`pool_loss`). With `head` = (layer,
    head) and `weight` > 0, it adds weight × the mean −log of that head's attention from each
    counted token to its induction key (`prepare.toy_batch`): a guide towards the textbook
    induction circuit, which the next-token loss alone did not choose (training/TOY_INDUCTION.md)."""
    if head is None or weight <= 0:
        loss = pool_loss(model, x, y, pool, bf16)
        return loss, loss.item()
    layer, h = head
    taken: list[torch.Tensor] = []

    def take(pattern: torch.Tensor) -> torch.Tensor:  # [B, head, T, T], with its gradient
        taken.append(pattern)
        return pattern

    main = pool_loss(model, x, y, pool, bf16, Recorder(names=[], edits={act_name("pattern", layer): take}))
    b, t = torch.nonzero(keys >= 0, as_tuple=True)
    weights = taken[0][b, h, t, keys[b, t]].float()  # [N] attention to the induction key
    guide = -torch.log(weights.clamp_min(1e-6)).mean()
    return main + weight * guide, main.item()
