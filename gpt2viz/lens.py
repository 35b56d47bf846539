"""The residual stream across depth: the logit lens and the size of what each sub-layer writes.

The residual stream is read at 2·n_layer + 1 points: before block 0, then after each attention
sub-layer (`resid_mid`) and after each MLP sub-layer (`resid_post`). The logit lens passes each
point through the final LayerNorm (with that point's own statistics) and the unembedding, as
if the model stopped there; the last point is the model's own output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .hooks import act_name
from .model import GPT2
from .trace import Trace

CHUNK = 64  # positions unembedded at once: [CHUNK, vocab] floats, never [point, pos, vocab]


def residual_points(n_layer: int) -> list[tuple[str, str, int]]:
    """(label, short hook name, layer) of every point the residual stream is read at."""
    points = [("embeddings", "resid_pre", 0)]
    for layer in range(n_layer):
        points += [(f"{layer}: after attention", "resid_mid", layer),
                   (f"{layer}: after MLP", "resid_post", layer)]
    return points


def residual_names(n_layer: int) -> list[str]:
    """The hook names the lens and the norms read (pass them to `run_with_capture`)."""
    return [act_name(short, layer) for _, short, layer in residual_points(n_layer)]


@dataclass(frozen=True)
class LogitLens:
    labels: list[str]  # one per point
    positions: list[int]  # absolute positions read
    top_ids: torch.Tensor  # [point, pos, k] long
    top_probs: torch.Tensor  # [point, pos, k]
    final_ids: torch.Tensor  # [pos] the token the model finally ranks first at each position
    final_token_probs: torch.Tensor  # [point, pos] that token's probability at every point


@torch.inference_mode()
def logit_lens(model: GPT2, trace: Trace, k: int = 5, positions: Sequence[int] | None = None) -> LogitLens:
    """The logit lens of `trace` (which recorded `residual_names`) at every point, for the given
    absolute positions (default: all the trace ran). Unembeds `CHUNK` positions at a time."""
    n_layer = model.config.n_layer
    points = residual_points(n_layer)
    positions = list(trace.positions if positions is None else positions)
    rows = torch.tensor([p - trace.start for p in positions], dtype=torch.long)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(trace.ids)):
        raise ValueError(f"Positions must lie in {trace.positions}; got {positions[:5]}…")
    final_ids = _final_ids(model, trace, rows)  # [pos]
    top_ids, top_probs, final_probs = [], [], []
    for _, short, layer in points:
        resid = trace[short, layer][rows]  # [pos, d_model]
        ids_p, probs_p, final_p = [], [], []
        for start in range(0, len(rows), CHUNK):
            chunk = resid[start:start + CHUNK].to(model.device, model.dtype)
            probs = model.unembed(chunk).float().softmax(-1).cpu()  # [chunk, vocab]
            best = probs.topk(k, dim=-1)
            ids_p.append(best.indices)
            probs_p.append(best.values)
            final_p.append(probs.gather(-1, final_ids[start:start + CHUNK, None])[:, 0])
        top_ids.append(torch.cat(ids_p))
        top_probs.append(torch.cat(probs_p))
        final_probs.append(torch.cat(final_p))
    return LogitLens([label for label, _, _ in points], positions, torch.stack(top_ids),
                     torch.stack(top_probs), final_ids, torch.stack(final_probs))


@torch.inference_mode()
def final_choice_logits(model: GPT2, trace: Trace) -> torch.Tensor:
    """[point, pos]: at every point and position of `trace`, the logit of the token the model
    finally ranks first there, read through ln_f (the point's own statistics) and that token's
    unembedding row. A dot product per cell, not a softmax over the vocabulary, so it covers a
    whole 1,024-token sequence cheaply: the logit lens's overview."""
    final_ids = _final_ids(model, trace, torch.arange(len(trace.ids)))  # [pos]
    rows = model.W_U[final_ids.to(model.device)].float()  # [pos, d_model]
    out = []
    for _, short, layer in residual_points(model.config.n_layer):
        normed = model.ln_f(trace[short, layer].to(model.device, model.dtype)).float()  # [pos, d_model]
        out.append((normed * rows).sum(-1).cpu())
    return torch.stack(out)


@torch.inference_mode()
def final_logits(model: GPT2, trace: Trace, rows: torch.Tensor | int) -> torch.Tensor:
    """The model's logits at `rows` of `trace` ([vocab] for one row, [n, vocab] for a tensor of
    rows): the recorded ones, or, for a recording made without logits (`record_sequence`), the last
    residual point put through ln_f and the unembedding, as the forward pass did."""
    if trace.logits is not None:
        return trace.logits[rows]
    last = trace["resid_post", model.config.n_layer - 1][rows]  # [..., d_model]
    return model.unembed(last.to(model.device, model.dtype)).float().cpu()


def _final_ids(model: GPT2, trace: Trace, rows: torch.Tensor) -> torch.Tensor:
    """[pos] the token the model ranks first at `rows`, `CHUNK` positions at a time."""
    chunks = [final_logits(model, trace, rows[s:s + CHUNK]).argmax(-1) for s in range(0, len(rows), CHUNK)]
    return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.long)


@dataclass(frozen=True)
class ResidualNorms:
    labels: list[str]  # one per residual point
    resid: torch.Tensor  # [point, pos] L2 norm of the residual stream
    attn: torch.Tensor  # [layer, pos] L2 norm of what attention adds (hook_attn_out)
    mlp: torch.Tensor  # [layer, pos] L2 norm of what the MLP adds (hook_mlp_out)


def residual_norms(trace: Trace, n_layer: int) -> ResidualNorms:
    """How large the residual stream is at every point and position, and how large each
    sub-layer's contribution is. Reads the residual points only (in float32: `record_sequence` keeps
    them in float16): what attention adds is the difference from the point before it to resid_mid,
    what the MLP adds is resid_post − resid_mid. From float16 points a contribution's norm is off by
    up to about 1e-3 of the residual stream's norm, not of its own: enough for a chart."""
    points = residual_points(n_layer)
    stream = [trace[short, layer].float() for _, short, layer in points]  # [pos, d_model] each
    resid = torch.stack([x.norm(dim=-1) for x in stream])
    norms = torch.stack([(stream[i + 1] - stream[i]).norm(dim=-1) for i in range(2 * n_layer)])
    return ResidualNorms([label for label, _, _ in points], resid, norms[0::2], norms[1::2])
