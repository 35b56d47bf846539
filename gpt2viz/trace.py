"""A recording of one sequence's forward pass: named activations and logits, on the CPU.

Indexed like TransformerLens's ActivationCache: `trace["blocks.3.attn.hook_pattern"]`,
`trace["pattern", 3]`, `trace["scale", 3, "ln1"]`, `trace["embed"]`, and `trace.stack("pattern")`
for every layer at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch

from .config import GPT2Config
from .hooks import HOOK_POINTS, act_name
from .recording import Deferred

Key = str | tuple


def _pick_cpu(x: torch.Tensor | Deferred,
              pick: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | Deferred:
    """A recorded tensor for one sequence on the CPU; a deferred one stays deferred, picked and
    moved when it is computed."""
    if isinstance(x, Deferred):
        return Deferred(lambda inner: _to_cpu(pick(inner())), x)
    return _to_cpu(pick(x))


def _to_cpu(x: torch.Tensor) -> torch.Tensor:
    """On the CPU, in float32 unless it is float16 (kept small on purpose, see
    `Recorder(record_as=...)`) or bool; a no-op view for tensors already there."""
    if x.dtype in (torch.bool, torch.float16):
        return x.cpu()
    return x.to(device="cpu", dtype=torch.float32)


class Trace(Mapping[str, torch.Tensor]):
    """What a forward pass recorded for one sequence, shapes as in gpt2viz/hooks.py (no batch dim).

    `ids` are the tokens this pass ran; with a key/value cache they follow `start` positions
    already cached, so attention rows cover `start + len(ids)` keys. `config` and `model_name`
    say which model recorded it.
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        logits: torch.Tensor | None,
        ids: list[int],
        start: int = 0,
        config: GPT2Config | None = None,
        model_name: str = "",
        batch_index: int | None = 0,
    ) -> None:
        """`batch_index` picks one sequence of batched tensors; None takes them as they are."""
        pick = (lambda t: t) if batch_index is None else (lambda t: t[batch_index])
        self._tensors = {name: _pick_cpu(t, pick) for name, t in tensors.items()}
        # [pos, vocab]; None for a recording made without them (run_with_capture(with_logits=False))
        self.logits = None if logits is None else _to_cpu(pick(logits))
        self.ids = list(ids)
        self.start = start
        self.config = config
        self.model_name = model_name

    @property
    def positions(self) -> range:
        """Absolute positions of the tokens this pass ran."""
        return range(self.start, self.start + len(self.ids))

    def names(self) -> list[str]:
        """Recorded hook names, in the order the forward pass reached them."""
        return list(self._tensors)

    def __getitem__(self, key: Key) -> torch.Tensor:
        """A full hook name, a non-layer short name ("embed"), or (short, layer[, sublayer])."""
        if isinstance(key, tuple):
            name = act_name(*key)
        elif key in self._tensors or key not in HOOK_POINTS:
            name = key
        else:
            name = act_name(key)
        try:
            value = self._tensors[name]
        except KeyError:
            raise KeyError(
                f"{name!r} was not recorded; recorded names: {len(self._tensors)} "
                f"(e.g. {self.names()[:3]}). Pass names=None to record everything."
            ) from None
        return value() if isinstance(value, Deferred) else value

    def stack(self, short: str, sublayer: str | None = None) -> torch.Tensor:
        """Every layer's `short` activation stacked: [layer, ...] (e.g. "pattern" gives
        [layer, head, q_pos, k_pos]). A KeyError names the layers that were not recorded."""
        if self.config is None:
            raise ValueError("This trace does not know its model's config, so it cannot stack layers.")
        names = [act_name(short, layer, sublayer) for layer in range(self.config.n_layer)]
        missing = [n for n in names if n not in self._tensors]
        if missing:
            raise KeyError(
                f"Cannot stack {short!r}: {len(missing)} of {len(names)} layers were not recorded "
                f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}). Record them with "
                f"names=[{act_name(short, '*', sublayer)!r}]."
            )
        return torch.stack([self[n] for n in names])

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __eq__(self, other: object) -> bool:
        """Same model, tokens, start, names and bit-identical tensors."""
        if not isinstance(other, Trace):
            return NotImplemented
        return (
            (self.ids, self.start, self.model_name, self.config)
            == (other.ids, other.start, other.model_name, other.config)
            and self.names() == other.names()
            and (self.logits is None) == (other.logits is None)
            and (self.logits is None or torch.equal(self.logits, other.logits))
            and all(torch.equal(self[n], other[n]) for n in self._tensors)
        )

    __hash__ = None  # mutable-content equality: not hashable

    def __repr__(self) -> str:
        return f"Trace(positions={self.positions}, {len(self)} activations, model={self.model_name!r})"
