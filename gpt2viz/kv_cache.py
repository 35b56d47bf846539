"""Keys and values of the positions already run, so each generation step runs only new tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import GPT2Config


class KVCache:
    """Per-layer key/value buffers, preallocated to `capacity` positions and filled in order.

    Layout [layer, batch, pos, head, d_head]. A forward pass writes its new positions into every
    layer after the committed ones and never moves the fill mark: whoever takes the pass's result
    `commit`s them, so a pass that fails (or whose result is thrown away) leaves the cache as it
    was, and the next pass writes over the same positions. `rewind` goes back to fewer committed
    positions (activation patching re-runs the positions after one). Views handed out earlier stay
    valid because later writes only land after the committed positions.
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
        """Write new k, v [batch, new, head, d_head] after the committed positions; return every key
        and value [batch, S, head, d_head], S = committed + new."""
        end = self.length + k.shape[1]
        if end > self.capacity:
            raise ValueError(f"KV cache full: {end} positions needed, capacity {self.capacity}.")
        self.keys[layer, :, self.length : end] = k
        self.values[layer, :, self.length : end] = v
        return self.keys[layer, :, :end], self.values[layer, :, :end]

    def commit(self, n: int) -> None:
        """Commit the `n` positions the last forward pass wrote after the committed ones."""
        if not 0 <= n <= self.capacity - self.length:
            raise ValueError(f"Cannot commit {n} positions after {self.length} in a capacity of "
                             f"{self.capacity}.")
        self.length += n

    def rewind(self, length: int) -> None:
        """Keep only the first `length` committed positions: the next pass follows them."""
        if not 0 <= length <= self.length:
            raise ValueError(f"Cannot rewind to {length} positions: {self.length} are committed.")
        self.length = length

    def fill(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
        """Start from keys and values computed earlier, one [pos, head, d_head] per layer (or a
        [layer, pos, head, d_head] tensor; batch 1): the cache then holds those positions as if
        they had been run through it. Layer by layer, so no stacked copy of them is made."""
        n = keys[0].shape[0]
        if n > self.capacity:
            raise ValueError(f"{n} cached positions do not fit a capacity of {self.capacity}.")
        for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
            self.keys[layer, 0, :n] = k
            self.values[layer, 0, :n] = v
        self.length = n


def kv_cache_bytes(config: GPT2Config, positions: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes the key/value cache of one sequence takes at `positions` positions:
    2 (keys and values) · n_layer · positions · n_embd · bytes per element."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * config.n_layer * positions * config.n_embd * element


def forward_multiply_adds(config: GPT2Config, new: int, past: int = 0) -> int:
    """Multiply-adds of one forward pass of `new` positions over `past` cached ones, as this
    model computes them: per layer the q/k/v and output projections (4·d²), the MLP (2·d·d_mlp)
    and, per head, scores and weighted values over every key (2·(past + new)·d); then the
    unembedding of every new position (d·vocab). A cached generation step is new=1, past=p;
    re-running the whole sequence instead is new=p+1, past=0."""
    d, keys = config.n_embd, past + new
    per_layer = new * (4 * d * d + 2 * d * config.d_mlp) + 2 * new * keys * d
    return config.n_layer * per_layer + new * d * config.vocab_size
