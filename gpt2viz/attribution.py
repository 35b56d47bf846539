"""Why this token? How much each component pushes a logit (direct logit attribution), and how
much each input position matters (gradient × input saliency).

Direct logit attribution splits the final residual stream at one position into what wrote it —
the embeddings, each head, each attention output bias, each MLP — and reads each part through
ln_f with that position's scale frozen and through the unembedding direction of the target (minus
the distractor). The parts add up to the model's actual logit (difference), because with the scale
frozen ln_f is linear: ln_f(x) = Σ_c (c − mean(c)) / scale · w + b.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .hooks import act_name
from .model import GPT2
from .recording import Recorder
from .trace import Trace


def attribution_names(n_layer: int) -> list[str]:
    """The hook points `direct_logit_attribution` reads (pass them to `run_with_capture`)."""
    names = [act_name("embed"), act_name("pos_embed"), act_name("scale", None, "ln_final")]
    return names + [act_name("z", "*"), act_name("mlp_out", "*")]


@dataclass(frozen=True)
class DirectLogitAttribution:
    position: int  # absolute position whose output predicts the next token
    target: int
    distractor: int | None
    heads: torch.Tensor  # [layer, head] float64: each head's push on logit(target) − logit(distractor)
    mlps: torch.Tensor  # [layer]
    rest: dict[str, float]  # embeddings, attention output biases, the final LayerNorm's bias
    total: float  # the sum of every part: the model's logit (difference) at `position`


def _direction(model: GPT2, target: int, distractor: int | None) -> torch.Tensor:
    """[d_model] the unembedding direction of target minus distractor (only those rows copied)."""
    w_u = model.W_U.detach()
    direction = w_u[target] - (w_u[distractor] if distractor is not None else 0.0)
    return direction.double().cpu()


def direct_logit_attribution(model: GPT2, trace: Trace, position: int, target: int,
                             distractor: int | None = None) -> DirectLogitAttribution:
    """Each component's direct push on logit(target) (− logit(distractor)) at `position`, from a
    trace that recorded `attribution_names` (a full recording does)."""
    row = position - trace.start
    if not 0 <= row < len(trace.ids):
        raise ValueError(f"position must lie in {trace.positions}, not {position}.")
    vocab = model.config.vocab_size
    for name, token in (("target", target), ("distractor", distractor)):
        if token is not None and not 0 <= token < vocab:
            raise ValueError(f"The {name} id {token} is outside the vocabulary (0..{vocab - 1}).")
    n_layer, n_head, d_head = model.config.n_layer, model.config.n_head, model.config.d_head
    ln_f = model.ln_f
    scale = trace["scale", None, "ln_final"][row].double()  # [1], frozen for every part
    direction = _direction(model, target, distractor)  # [d_model]
    read = ln_f.weight.detach().double().cpu() * direction / scale  # [d_model]

    def push(c: torch.Tensor) -> torch.Tensor:
        """[..., d_model] parts of the residual stream → their push on the logit (difference)."""
        c = c.double()
        return (c - c.mean(-1, keepdim=True)) @ read

    heads = torch.zeros(n_layer, n_head, dtype=torch.float64)
    for layer in range(n_layer):
        w_o = model.h[layer].attn.c_proj.weight.detach().double().cpu()  # [d_model, head · d_head]
        w_o = w_o.view(-1, n_head, d_head)  # [d_model, head, d_head]
        result = torch.einsum("hd,chd->hc", trace["z", layer][row].double(), w_o)  # [head, d_model]
        heads[layer] = push(result)
    mlps = torch.stack([push(trace["mlp_out", layer][row]) for layer in range(n_layer)])
    biases = sum(block.attn.c_proj.bias.detach().double().cpu() for block in model.h)  # [d_model]
    rest = {
        "embeddings": float(push(trace["embed"][row] + trace["pos_embed"][row])),
        "attention output biases": float(push(biases)),
        "final LayerNorm bias": float(ln_f.bias.detach().double().cpu() @ direction),
    }
    total = float(heads.sum() + mlps.sum()) + sum(rest.values())
    return DirectLogitAttribution(position, target, distractor, heads, mlps, rest, total)


# From this many positions on, the app computes saliency in bfloat16 (see `saliency`).
SALIENCY_BF16_FROM = 256


def saliency_in_bf16(position: int) -> bool:
    """Whether the app computes saliency at `position` in bfloat16: from `SALIENCY_BF16_FROM`
    input positions on, where float32 would take seconds on a CPU."""
    return position + 1 >= SALIENCY_BF16_FROM


def saliency(model: GPT2, ids: list[int], position: int, target: int,
             distractor: int | None = None, bf16: bool = False) -> torch.Tensor:
    """Gradient × input, [position + 1]: Σ_d ∂L/∂x[i, d] · x[i, d] for each input position i ≤
    `position`, where x is the token + position embedding and L the logit (difference) at
    `position`. Gradients flow to the input only: the shared model's parameters get no .grad.

    `bf16` runs the forward and backward pass under bfloat16 autocast on the model's device:
    on a CPU with bfloat16 units about 2.5× faster at 1,000 tokens, every value within about 1%
    of the largest one (measured on random gpt2-small weights; tests/test_attribution.py)."""
    ids = model.check_ids(ids)
    if not 0 <= position < len(ids):
        raise ValueError(f"position must lie in 0..{len(ids) - 1}, not {position}.")
    ids = ids[: position + 1]  # later tokens cannot change the output at `position`
    leaf: list[torch.Tensor] = []

    def as_input(tok_emb: torch.Tensor) -> torch.Tensor:
        leaf.append(tok_emb.detach().requires_grad_(True))
        return leaf[0]

    idx = torch.tensor([ids], device=model.device)
    with torch.enable_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        rec = Recorder(names=[act_name("pos_embed")], edits={act_name("embed"): as_input})
        # Only this position's logits: unembedding every position would double the cost.
        logits = model.unembed(model.run_blocks(idx, recorder=rec)[0, position])  # [vocab]
        loss = logits[target] - (logits[distractor] if distractor is not None else 0.0)
        (grad,) = torch.autograd.grad(loss, leaf[0])  # [1, pos, d_model]; only the input's gradient
    x = leaf[0].detach() + rec.tensors[act_name("pos_embed")]  # the block input, [1, pos, d_model]
    return (grad.float() * x.float())[0].sum(-1).cpu()
