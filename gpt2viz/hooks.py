"""Every hook point of GPT-2, declared once: its name, TransformerLens short name, shape, meaning.

The model's blocks, `hook_names_for`, `act_name`, `Trace` indexing and the command line all
read this table, so a name is spelled in one place only. Shapes are per sequence (a recording
drops the batch dimension); with a key/value cache, `k_pos` covers the cached positions too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class HookPoint:
    short: str  # TransformerLens's short name (`act_name(short, layer)`)
    suffix: str  # the name, after "blocks.{layer}." for per-layer points
    shape: str
    meaning: str
    per_layer: bool = True
    opt_in: bool = False  # large: recorded only when asked for by name, never by default

    def name(self, layer: int | str | None = None) -> str:
        """The full hook name (`layer` for per-layer points only; "*" gives a pattern)."""
        if not self.per_layer:
            return self.suffix
        if layer is None:
            raise ValueError(f"{self.short!r} is a per-layer hook point: give a layer.")
        return f"blocks.{layer}.{self.suffix}"


def layer_norm_hooks(ln: str, module: str, per_layer: bool = True) -> tuple[HookPoint, HookPoint]:
    """The two TransformerLens hook points of a LayerNorm (`ln`: "ln1", "ln2", "ln_final"; its
    module spelled as in the parameter names, `module`): the scale, and the normalised input
    before the weight and bias."""
    return (
        HookPoint(f"{ln}_scale", f"{ln}.hook_scale", "[pos, 1]", f"{module}'s √(var + eps) of each position",
                  per_layer=per_layer),
        HookPoint(f"{ln}_normalized", f"{ln}.hook_normalized", "[pos, d_model]",
                  f"{module}'s (x − mean) / scale, before its weight and bias", per_layer=per_layer),
    )


EMBED_HOOKS = (
    HookPoint("embed", "hook_embed", "[pos, d_model]", "token embedding (row of wte)", per_layer=False),
    HookPoint("pos_embed", "hook_pos_embed", "[pos, d_model]", "position embedding (row of wpe)",
              per_layer=False),
)

# In the order a forward pass reaches them inside block `layer`.
BLOCK_HOOKS = (
    HookPoint("resid_pre", "hook_resid_pre", "[pos, d_model]", "residual stream entering the block"),
    *layer_norm_hooks("ln1", "ln_1"),
    HookPoint("q", "attn.hook_q", "[pos, head, d_head]", "queries"),
    HookPoint("k", "attn.hook_k", "[pos, head, d_head]", "keys of the new positions"),
    HookPoint("v", "attn.hook_v", "[pos, head, d_head]", "values of the new positions"),
    HookPoint("mask", "attn.hook_mask", "[q_pos, k_pos] bool",
              "causal mask: True where attention is allowed"),
    HookPoint("attn_scores", "attn.hook_attn_scores", "[head, q_pos, k_pos]",
              "q·k / √d_head, −inf where the mask forbids"),
    HookPoint("pattern", "attn.hook_pattern", "[head, q_pos, k_pos]", "softmax of the scores; rows sum to 1"),
    HookPoint("z", "attn.hook_z", "[pos, head, d_head]", "each head's pattern-weighted sum of values"),
    HookPoint("result", "attn.hook_result", "[pos, head, d_model]",
              "each head's z through its slice of W_O, before the sum (only when asked for)", opt_in=True),
    HookPoint("attn_out", "hook_attn_out", "[pos, d_model]", "attention's output: W_O · z + b_O"),
    HookPoint("resid_mid", "hook_resid_mid", "[pos, d_model]", "residual stream after attention is added"),
    *layer_norm_hooks("ln2", "ln_2"),
    HookPoint("pre", "mlp.hook_pre", "[pos, d_mlp]", "MLP neurons before GELU"),
    HookPoint("post", "mlp.hook_post", "[pos, d_mlp]", "MLP neurons after GELU"),
    HookPoint("mlp_out", "hook_mlp_out", "[pos, d_model]", "the MLP's output"),
    HookPoint("resid_post", "hook_resid_post", "[pos, d_model]", "residual stream leaving the block"),
)

FINAL_HOOKS = layer_norm_hooks("ln_final", "ln_f", per_layer=False)

HOOK_POINTS: dict[str, HookPoint] = {h.short: h for h in (*EMBED_HOOKS, *BLOCK_HOOKS, *FINAL_HOOKS)}

# TransformerLens spells the LayerNorm points as ("scale" | "normalized", layer, "ln1" | "ln2"),
# or ("scale" | "normalized", None, "ln_final").
_LN_SUBLAYERS = ("ln1", "ln2", "ln_final")


def act_name(short: str, layer: int | str | None = None, sublayer: str | None = None) -> str:
    """The full hook name of a TransformerLens short name: `act_name("pattern", 3)` is
    "blocks.3.attn.hook_pattern"; `act_name("scale", 0, "ln1")` is "blocks.0.ln1.hook_scale";
    `act_name("pattern", "*")` is the pattern that records every layer."""
    if short in ("scale", "normalized") and sublayer is not None:
        if sublayer not in _LN_SUBLAYERS:
            raise KeyError(f"Unknown LayerNorm {sublayer!r}; use one of {', '.join(_LN_SUBLAYERS)}.")
        short = f"{sublayer}_{short}"
    elif sublayer is not None:
        raise KeyError(f"Only 'scale' and 'normalized' take a LayerNorm name; {short!r} does not.")
    point = HOOK_POINTS.get(short)
    if point is None:
        raise KeyError(f"Unknown short hook name {short!r}; known: {', '.join(HOOK_POINTS)}.")
    if point.per_layer and layer is None:
        raise KeyError(f"{short!r} is recorded per layer: give a layer, e.g. act_name({short!r}, 0).")
    if not point.per_layer and layer is not None:
        raise KeyError(f"{short!r} is not per layer: call act_name({short!r}) without a layer.")
    return point.name(layer)


def layer_names(layer: int) -> dict[str, str]:
    """Short name → full name for every hook point of block `layer`."""
    return {h.short: h.name(layer) for h in BLOCK_HOOKS}


def hook_names_for(n_layer: int) -> list[str]:
    """Every hook point of an `n_layer` GPT-2, in the order a forward pass reaches them."""
    names = [h.name() for h in EMBED_HOOKS]
    for layer in range(n_layer):
        names += [h.name(layer) for h in BLOCK_HOOKS]
    return names + [h.name() for h in FINAL_HOOKS]


@functools.cache
def point_of(name: str) -> tuple[HookPoint, int | None]:
    """The declaration behind a full hook name, and its layer (None for non-layer points)."""
    if name.startswith("blocks."):
        _, layer, suffix = name.split(".", 2)
        for h in BLOCK_HOOKS:
            if h.suffix == suffix:
                return h, int(layer)
    for h in (*EMBED_HOOKS, *FINAL_HOOKS):
        if h.suffix == name:
            return h, None
    raise KeyError(f"{name!r} is not a hook point of GPT-2.")


@functools.cache
def recorded_by_default(hook_names: tuple[str, ...]) -> frozenset[str]:
    """The points `names=None` records: all but the opt-in ones (worked out once per model shape)."""
    return frozenset(n for n in hook_names if not is_opt_in(n))


def is_opt_in(name: str) -> bool:
    """True for a hook point recorded only when asked for by name (e.g. attn.hook_result)."""
    return point_of(name)[0].opt_in
