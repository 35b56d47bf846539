"""A recording of one sequence's forward pass: named activations and logits, on the CPU."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


def _to_cpu(x: torch.Tensor) -> torch.Tensor:
    """CPU float32 (bool stays bool); a no-op view for tensors already CPU float32."""
    if x.dtype == torch.bool:
        return x.cpu()
    return x.to(device="cpu", dtype=torch.float32)


class Trace(Mapping[str, torch.Tensor]):
    """What a forward pass recorded for one sequence, shapes as in DESIGN.md (no batch dim).

    `ids` are the tokens this pass ran; with a key/value cache they follow `start` positions
    already cached, so attention rows cover `start + len(ids)` keys.
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        logits: torch.Tensor,
        ids: list[int],
        start: int = 0,
        batch_index: int = 0,
    ) -> None:
        self._tensors = {name: _to_cpu(t[batch_index]) for name, t in tensors.items()}
        self.logits = _to_cpu(logits[batch_index])  # [pos, vocab]
        self.ids = list(ids)
        self.start = start

    @property
    def positions(self) -> range:
        """Absolute positions of the tokens this pass ran."""
        return range(self.start, self.start + len(self.ids))

    def names(self) -> list[str]:
        """Recorded hook names, in the order the forward pass reached them."""
        return list(self._tensors)

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(
                f"{name!r} was not recorded; recorded names: {len(self._tensors)} "
                f"(e.g. {self.names()[:3]}). Pass names=None to record everything."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"Trace(positions={self.positions}, {len(self)} activations)"
