"""Keys and values of the positions already run, so each generation step runs only new tokens."""

from __future__ import annotations

import torch

from .config import GPT2Config


class KVCache:
    """Per-layer key/value buffers, preallocated to `capacity` positions and filled in order.

    Layout [layer, batch, pos, head, d_head]. A forward pass writes its new positions into every
    layer, then `advance` moves the fill mark; views handed out earlier stay valid because later
    writes only land after them.
    """

    def __init__(
        self,
        config: GPT2Config,
        batch: int,
        capacity: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        shape = (config.n_layer, batch, capacity, config.n_head, config.d_head)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.capacity = capacity
        self.length = 0  # positions filled and committed

    def extend(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new k, v [batch, new, head, d_head]; return all keys/values [batch, S, head, d_head]."""
        end = self.length + k.shape[1]
        if end > self.capacity:
            raise ValueError(f"KV cache full: {end} positions needed, capacity {self.capacity}.")
        self.keys[layer, :, self.length : end] = k
        self.values[layer, :, self.length : end] = v
        return self.keys[layer, :, :end], self.values[layer, :, :end]

    def advance(self, n: int) -> None:
        """Commit `n` new positions once every layer has written them."""
        self.length += n
