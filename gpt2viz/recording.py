"""Call-local hook state: which activations a forward pass keeps, and which it replaces.

A model is shared by every browser session (Streamlit runs sessions on threads), so nothing is
registered on the module: a `Recorder` is made for one call and passed down through `forward`.
Each hook point hands its tensor to the recorder, which may replace it (an ablation) and may
keep it (a recording). Two calls with two recorders never see each other's tensors.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch

from .hooks import is_opt_in, point_of, recorded_by_default

Edit = Callable[[torch.Tensor], torch.Tensor]


class Deferred:
    """A kept activation that is computed when it is read, from the `inputs` it holds (see
    `Recorder.defer`): the attention scores, rebuilt from q and k, instead of a [head, pos, pos]
    tensor per layer kept from the forward pass; LayerNorm's normalised input, from the input and
    its mean and 1/scale, instead of computing it in every recorded pass; the MLP's neurons after
    GELU, from the neurons before it."""

    def __init__(self, compute: Callable[..., torch.Tensor], *inputs: object,
                 convert: Edit | None = None) -> None:
        self.compute, self.inputs, self.convert = compute, inputs, convert

    def __call__(self) -> torch.Tensor:
        with torch.no_grad():
            value = self.compute(*self.inputs)
        return value if self.convert is None else self.convert(value)


class Recorder:
    """Keeps the activations named by `names` and applies `edits` (name -> fn(tensor) -> tensor).

    `names` holds exact hook names or shell-style patterns (``"blocks.*.attn.hook_pattern"``);
    None keeps every hook point, an empty list keeps none. Tensors keep their batch dimension
    and stay on the model's device; `Trace` turns them into per-sequence CPU tensors.
    `record_as` maps names or patterns to a function applied to the kept copy only (e.g. float16
    patterns for display: the forward pass goes on with the full-precision tensor).
    """

    def __init__(
        self,
        names: Iterable[str] | None = None,
        edits: Mapping[str, Edit] | None = None,
        record_as: Mapping[str, Edit] | None = None,
    ) -> None:
        self._requested = None if names is None else list(names)
        self.edits: dict[str, Edit] = dict(edits or {})
        self._record_as_patterns = dict(record_as or {})
        self._record_as: dict[str, Edit] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self._recorded: frozenset[str] | None = None  # resolved against a model by `bind`
        self._touched: frozenset[str] = frozenset()

    def bind(self, hook_names: Sequence[str]) -> None:
        """Resolve the requested names against a model's hook points; unknown names are errors.

        Opt-in points (large ones such as attn.hook_result) are kept only when a requested name
        or pattern spells them out (`blocks.*.attn.hook_result`), never by `None` or `blocks.0.*`.
        """
        known = set(hook_names)
        unknown = [n for n in self.edits if n not in known]
        if self._requested is None:
            keep = set(recorded_by_default(tuple(hook_names)))
        else:
            keep = set()
            for pattern in self._requested:
                matched = fnmatch.filter(hook_names, pattern)
                if not matched:
                    unknown.append(pattern)
                keep.update(n for n in matched if not is_opt_in(n) or point_of(n)[0].suffix in pattern)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, hook_names, n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise KeyError(
                "No such hook point: " + ", ".join(hints)
                + ". See model.hook_names() for the full list."
            )
        self._recorded = frozenset(keep)
        self._touched = self._recorded | frozenset(self.edits)
        self._record_as = {}
        for pattern, fn in self._record_as_patterns.items():
            matched = fnmatch.filter(hook_names, pattern)
            if not matched:
                raise KeyError(f"record_as names no hook point: {pattern!r}. See model.hook_names().")
            self._record_as.update((name, fn) for name in matched)

    def defer(self, name: str, compute: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> bool:
        """Keep `name` as `compute(*inputs)`, evaluated when the trace reads it, rather than the
        tensor the forward pass made. Returns False, doing nothing, when `name` is edited (the
        forward pass must see the edit) or not kept."""
        if name not in self._recorded or name in self.edits:
            return False
        inputs = tuple(t.detach() for t in inputs)
        self.tensors[name] = Deferred(compute, *inputs, convert=self._record_as.get(name))  # type: ignore[assignment]
        return True

    def wants(self, name: str) -> bool:
        """True when the hook point `name` is kept or edited (so it must be computed explicitly)."""
        return name in self._touched

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self._touched:
            return x
        edit = self.edits.get(name)
        if edit is not None:
            edited = edit(x)
            if edited.shape != x.shape:
                raise ValueError(
                    f"The edit of {name} returned shape {tuple(edited.shape)}; "
                    f"it must keep the shape {tuple(x.shape)}."
                )
            x = edited
        if name in self._recorded:
            kept = x.detach()
            convert = self._record_as.get(name)
            self.tensors[name] = kept if convert is None else convert(kept)
        return x


def hook(recorder: Recorder | PassRecorder | None, name: str, x: torch.Tensor) -> torch.Tensor:
    """A hook point: the identity, unless a recorder keeps or edits `name`."""
    return x if recorder is None else recorder(name, x)


class PassRecorder:
    """The recorders of several sequences whose new positions are packed along one axis
    ([1, N, ...], N = sum of `lengths`; `gpt2viz.advance_together`): each hook point hands each
    recorder its own sequence's slice, as that sequence's own forward pass would."""

    def __init__(self, recorders: Sequence[Recorder | None], lengths: Sequence[int]) -> None:
        self.recorders, self.lengths = list(recorders), list(lengths)
        self.edits = {name: edit for r in self.recorders if r is not None for name, edit in r.edits.items()}

    @classmethod
    def of(cls, recorders: Sequence[Recorder | None],
           lengths: Sequence[int]) -> Recorder | PassRecorder | None:
        """What a pass of these sequences hands its tensors to: nothing when none records, the
        recorder itself when there is one sequence (no slicing), else a PassRecorder."""
        if all(r is None for r in recorders):
            return None
        return recorders[0] if len(recorders) == 1 else cls(recorders, lengths)

    def wants(self, name: str) -> bool:
        return any(r is not None and r.wants(name) for r in self.recorders)

    def defer(self, name: str, compute: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> bool:
        """Each recorder defers its slice; True only when every recorder that keeps or edits `name`
        deferred it (otherwise the caller hooks the computed tensor)."""
        pieces = [t.split(self.lengths, dim=1) for t in inputs]
        deferred = True
        for i, r in enumerate(self.recorders):
            if r is not None and r.wants(name):
                deferred &= r.defer(name, compute, *(p[i].clone() for p in pieces))
        return deferred

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        pieces = list(x.split(self.lengths, dim=1))
        changed = False
        for i, r in enumerate(self.recorders):
            if r is not None and r.wants(name):
                piece = pieces[i].clone()  # its own storage: a kept slice holds no other sequence
                out = r(name, piece)
                changed |= name in r.edits
                pieces[i] = out
        return torch.cat(pieces, dim=1) if changed else x
