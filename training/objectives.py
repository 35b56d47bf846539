"""What a training step minimises.

Text windows: the next-token cross-entropy over all 50257 ids. Synthetic windows (repeated
random-id blocks, see `prepare.synthetic_batch`): the same loss, but with a sampled softmax over
the ids of the batch plus random negatives, which every target is among, so the step skips most
of the 50257-wide unembedding. Optionally `PrevTokenProbe` adds an auxiliary loss that asks
block 0 to carry each token's predecessor, the first half of an induction circuit; the probe is
thrown away after training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gpt2viz import GPT2, Recorder
from gpt2viz.hooks import act_name

from .prepare import IGNORE

AFTER_BLOCK_0 = act_name("resid_post", 0)


def next_token_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, T, vocab] against targets [B, T] (-100: not counted)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


def lm_loss(model: GPT2, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The model's next-token loss on inputs x [B, T] and targets y [B, T] (bf16 autocast on
    x's device type when `bf16`)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)  # [B, T, vocab]
    return next_token_loss(logits, y)


def residuals(model: GPT2, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln_f output, residual after block 0), both [B, T, C] with gradients: the forward pass
    without the unembedding, so that a step can choose its own output layer. Block 0's output is
    taken through an identity edit, because a recording would detach it."""
    taken: list[torch.Tensor] = []

    def take(t: torch.Tensor) -> torch.Tensor:
        taken.append(t)
        return t

    final = model.ln_f(model.run_blocks(x, recorder=Recorder(names=[], edits={AFTER_BLOCK_0: take})))
    return final, taken[0]


def candidate_loss(hidden: torch.Tensor, targets: torch.Tensor, wte: torch.Tensor,
                   candidates: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of hidden [N, C] against the tied embedding rows of the sorted `candidates`
    only (a sampled softmax); every target must be a candidate."""
    logits = hidden.float() @ wte[candidates].T  # [N, n_candidates]
    return F.cross_entropy(logits, torch.searchsorted(candidates, targets))


class PrevTokenProbe(nn.Module):
    """Training-only reader of the residual after block 0 that must name the previous token; its
    loss pushes block 0 to move each token's identity one position on. Not saved."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.read = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))

    def loss(self, after_first: torch.Tensor, x: torch.Tensor, wte: torch.Tensor,
             candidates: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax loss of naming x[:, t-1] from after_first[:, t] ([B, T, C])."""
        h = self.read(after_first[:, 1:].float()).reshape(-1, after_first.shape[-1])  # [B*(T-1), C]
        return candidate_loss(h, x[:, :-1].reshape(-1), wte, candidates)


def step_loss(model: GPT2, probe: PrevTokenProbe | None, x: torch.Tensor, y: torch.Tensor, *,
              synthetic: bool, negatives: int, prev_aux: float, bf16: bool,
              rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """(total loss, its next-token part) of one step on inputs x and targets y, both [B, T] on
    the model's device.

    Text windows use the full softmax; synthetic ones a sampled softmax over the batch's ids and
    `negatives` random ids from `rng`. The probe, when given, adds `prev_aux` × its loss.
    """
    wte = model.W_U  # [vocab, C], tied to the token embedding
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        final, after_first = residuals(model, x)  # [B, T, C] each
        logits = None if synthetic else F.linear(final, wte)  # [B, T, vocab]
    candidates = None
    if synthetic or probe is not None:
        extra = torch.from_numpy(rng.integers(0, wte.shape[0], size=negatives)).to(x.device)
        candidates = torch.unique(torch.cat([x.reshape(-1), y[y >= 0], extra]))  # sorted
    if synthetic:
        keep = y.reshape(-1) >= 0  # [B*T]
        main = candidate_loss(final.reshape(-1, final.shape[-1])[keep], y.reshape(-1)[keep], wte,
                              candidates)
    else:
        main = next_token_loss(logits, y)
    total = main
    if probe is not None:
        total = total + prev_aux * probe.loss(after_first, x, wte, candidates)
    return total, main.item()
