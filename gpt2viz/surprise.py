"""How expected each token was: its probability under the model given the tokens before it, and
the same text under two models that share the tokenizer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import GPT2


def probabilities_from_logits(logits: torch.Tensor, ids: Sequence[int]) -> list[float | None]:
    """Each of `ids`' probability from the logits [pos, vocab] of the positions before it (the
    first token has none: nothing came before it). `logits` covers `ids` from their first token."""
    if logits.shape[0] < len(ids) - 1:
        raise ValueError(f"{logits.shape[0]} positions of logits cannot score {len(ids)} tokens.")
    if len(ids) < 2:
        return [None] * len(ids)
    chosen = torch.tensor(ids[1:], dtype=torch.long)  # [pos - 1]
    probs = logits[: len(ids) - 1].float().softmax(-1)  # [pos - 1, vocab]
    return [None, *probs.gather(1, chosen[:, None])[:, 0].tolist()]


@torch.inference_mode()
def token_probabilities(model: GPT2, ids: Sequence[int]) -> list[float | None]:
    """Each token's probability under `model` given the tokens before it (None for the first)."""
    ids = model.check_ids(ids)
    logits = model(torch.tensor([ids], device=model.device))[0]  # [pos, vocab]
    return probabilities_from_logits(logits.cpu(), ids)


def surprise_bits(prob: float | None) -> float | None:
    """−log₂ p: 0 for a certain token, 1 more bit for each halving of its probability."""
    return None if prob is None else -math.log2(max(prob, 1e-30))


@dataclass(frozen=True)
class Comparison:
    """The same tokens under two models: each token's probability under each, and which model
    found it less surprising (the difference in bits, positive where the first model expected it
    more)."""

    names: tuple[str, str]
    ids: list[int]  # the tokens scored (a text longer than either context is cut to it)
    first: list[float | None]
    second: list[float | None]

    @property
    def bits_gained(self) -> list[float | None]:
        return [None if a is None or b is None else surprise_bits(b) - surprise_bits(a)
                for a, b in zip(self.first, self.second, strict=True)]

    def mean_bits(self) -> tuple[float, float]:
        """Each model's mean surprise over the tokens both scored (its cross-entropy in bits)."""
        pairs = [(a, b) for a, b in zip(self.first, self.second, strict=True)
                 if a is not None and b is not None]
        if not pairs:
            return math.nan, math.nan
        return (sum(surprise_bits(a) for a, _ in pairs) / len(pairs),
                sum(surprise_bits(b) for _, b in pairs) / len(pairs))


def compare_models(first: GPT2, second: GPT2, ids: Sequence[int]) -> Comparison:
    """`ids` scored by both models; they must share the vocabulary (GPT-2's tokenizer)."""
    if first.config.vocab_size != second.config.vocab_size:
        raise ValueError(f"{first.name} and {second.name} do not share a vocabulary "
                         f"({first.config.vocab_size} and {second.config.vocab_size} tokens).")
    ids = list(ids)[: min(first.config.n_positions, second.config.n_positions)]
    return Comparison((first.name, second.name), ids, token_probabilities(first, ids),
                      token_probabilities(second, ids))
