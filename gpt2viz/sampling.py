"""From logits to the token drawn: ÷ temperature, top-k, top-p, softmax, one seeded draw.

`sampling_stages` is the one implementation: generation draws from its `probs`, and the app
shows its stages side by side. Greedy decoding (temperature 0) takes the argmax instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """A ValueError that names the setting out of range."""
    if temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or positive, not {temperature}.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive number of tokens or None, not {top_k}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, not {top_p}.")


@dataclass(frozen=True)
class SamplingStages:
    logits: torch.Tensor  # [vocab] the model's logits
    scaled: torch.Tensor  # [vocab] logits ÷ temperature
    kept: torch.Tensor  # [vocab] bool: left after top-k, then top-p
    probs: torch.Tensor  # [vocab] the distribution a draw is made from (0 where not kept)


def sampling_stages(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None
) -> SamplingStages:
    """Each stage of sampling from `logits` [vocab] at `temperature` > 0.

    top-k keeps the k highest scaled logits (and any tied with the k-th); top-p then keeps the
    smallest set of the highest probabilities whose mass reaches top_p (never empty).
    """
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        raise ValueError("temperature 0 is greedy decoding (the argmax); sampling needs temperature > 0.")
    logits = logits.float()
    scaled = logits / temperature
    kept = torch.ones_like(scaled, dtype=torch.bool)
    if top_k is not None and top_k < scaled.numel():
        kept = scaled >= torch.topk(scaled, top_k).values[-1]
    probs = scaled.masked_fill(~kept, float("-inf")).softmax(-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = probs.sort(descending=True, stable=True)
        above = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each
        drop = torch.zeros_like(kept)
        drop[order] = above >= top_p
        kept = kept & ~drop
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum()
    return SamplingStages(logits, scaled, kept, probs)


def draw(probs: torch.Tensor, seed: int, index: int) -> int:
    """One token from `probs`, reproducible from (seed, step index) alone: resuming a generation
    or redrawing one step with new settings needs no replay of the earlier draws."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return int(torch.multinomial(probs, 1, generator=generator))
