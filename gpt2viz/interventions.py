"""Edits that switch parts of the model off, for `run_with_capture(edits=...)` and
`Generation(edits=...)`.

"zero" sets a head's z (or a neuron's activation after GELU) to 0. "mean" sets it, at every
position, to its mean over the positions of that forward pass: the whole sequence in
`run_with_capture`. A cached generation step runs one position, whose mean is itself, so generate
with `use_cache=False` to mean-ablate while generating (each step then re-runs the sequence).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import GPT2Config
from .hooks import act_name
from .recording import Edit

MODES = ("zero", "mean")


def _check(config: GPT2Config, units: list[tuple[int, int]], what: str, count: int, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}.")
    if not units:
        raise ValueError(f"Name at least one {what} to ablate, as (layer, {what}).")
    for layer, unit in units:
        if not 0 <= layer < config.n_layer:
            raise ValueError(f"Layer {layer} does not exist: this model has layers 0..{config.n_layer - 1}.")
        if not 0 <= unit < count:
            raise ValueError(f"{what.capitalize()} {unit} does not exist: layer {layer} has "
                             f"{what}s 0..{count - 1}.")


def _ablate(units: list[int], mode: str, axis: int) -> Edit:
    """An edit setting index `units` of dimension `axis` (of a [batch, pos, ...] tensor)."""
    def edit(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        index = (slice(None),) * axis + (units,)
        x[index] = 0.0 if mode == "zero" else x[index].mean(dim=1, keepdim=True)
        return x
    return edit


def _by_layer(units: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for layer, unit in units:
        grouped.setdefault(layer, []).append(unit)
    return grouped


def ablate_heads(heads: Iterable[tuple[int, int]], mode: str = "zero", *,
                 config: GPT2Config) -> dict[str, Edit]:
    """Edits of `hook_z` that switch off each (layer, head) of a model with `config`."""
    heads = [(int(layer), int(head)) for layer, head in heads]
    _check(config, heads, "head", config.n_head, mode)
    return {act_name("z", layer): _ablate(hs, mode, axis=2) for layer, hs in _by_layer(heads).items()}


def ablate_neurons(neurons: Iterable[tuple[int, int]], mode: str = "zero", *,
                   config: GPT2Config) -> dict[str, Edit]:
    """Edits of `mlp.hook_post` that switch off each (layer, neuron) of a model with `config`."""
    neurons = [(int(layer), int(n)) for layer, n in neurons]
    _check(config, neurons, "neuron", config.d_mlp, mode)
    return {act_name("post", layer): _ablate(ns, mode, axis=2) for layer, ns in _by_layer(neurons).items()}


def parse_units(text: str) -> list[tuple[int, int]]:
    """"0.3, 1.2" → [(0, 3), (1, 2)]: (layer, head) or (layer, neuron) pairs as people type them."""
    units = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        layer, dot, unit = part.partition(".")
        if not (dot and layer.strip().isdigit() and unit.strip().isdigit()):
            raise ValueError(f"{part!r} is not layer.index: write e.g. 0.3 for layer 0, index 3.")
        units.append((int(layer), int(unit)))
    if not units:
        raise ValueError("Type at least one layer.index pair, e.g. 0.3 (layer 0, head 3).")
    return units
