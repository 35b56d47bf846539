"""Activation patching: which activations carry the difference between two prompts.

Two prompts of the same length, clean and corrupted, make the model prefer different next tokens.
Each cell of a patching grid runs the corrupted prompt with one activation taken from the clean
run and measures how much of the logit difference answer − wrong (at the last position) that one
activation brings back: 0 is the corrupted run, 1 the clean run. Attribution patching estimates
every cell at once, to first order, from one backward pass of the corrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import PromptError
from .hooks import act_name
from .kv_cache import KVCache
from .model import GPT2, Segments
from .recording import Edit, Recorder

SITES = ("resid_pre", "attn_out", "mlp_out", "z")
PATCHED = "the corrupted run, with one activation taken from the clean run"


@dataclass(frozen=True)
class PatchingResult:
    """A patching grid and the two runs it is normalised by (0: corrupted, 1: clean)."""

    grid: torch.Tensor  # [layer, position], or [layer, head] for site "z"; float32, CPU
    site: str  # one of SITES
    clean_diff: float  # logit(answer) − logit(wrong) at the last position of the clean run
    corrupted_diff: float  # the same in the corrupted run
    labels: list[str]  # the grid's columns: one per position, or one per head for "z"
    answer: int
    wrong: int
    method: str  # "exact" (activation patching) or "attribution" (its first-order estimate)

    @property
    def across(self) -> str:
        """What the columns are: "position" or "head"."""
        return "head" if self.site == "z" else "position"


def _check(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int], answer: int, wrong: int,
           site: str, labels: Sequence[str] | None) -> tuple[list[int], list[int], list[str]]:
    """The prompts as lists and the column labels, or a ValueError saying what is wrong."""
    if site not in SITES:
        raise ValueError(f"site must be one of {', '.join(SITES)}, not {site!r}.")
    clean_ids, corrupted_ids = model.check_ids(clean_ids), model.check_ids(corrupted_ids)
    if len(clean_ids) != len(corrupted_ids):
        raise PromptError(f"The clean prompt is {len(clean_ids)} tokens and the corrupted prompt "
                          f"{len(corrupted_ids)}: patching matches them position by position, so they "
                          "must have the same number of tokens.")
    vocab = model.config.vocab_size
    for what, token in (("answer", answer), ("wrong", wrong)):
        if not 0 <= int(token) < vocab:
            raise ValueError(f"The {what} token id {token} is outside the vocabulary (0..{vocab - 1}).")
    if int(answer) == int(wrong):
        raise ValueError(f"answer and wrong are the same token ({answer}): their logit difference is "
                         "always 0.")
    if site == "z":
        return clean_ids, corrupted_ids, [f"H{h}" for h in range(model.config.n_head)]
    if labels is None:
        return clean_ids, corrupted_ids, [str(i) for i in range(len(clean_ids))]
    if len(labels) != len(clean_ids):
        raise ValueError(f"{len(labels)} labels for {len(clean_ids)} positions.")
    return clean_ids, corrupted_ids, [str(label) for label in labels]


def _logit_diff(model: GPT2, resid: torch.Tensor, answer: int, wrong: int) -> torch.Tensor:
    """logit(answer) − logit(wrong) [...] from the residual stream [..., d_model] leaving the last
    block: ln_f, then only the two rows of W_U."""
    logits = F.linear(model.ln_f(resid), model.W_U[[answer, wrong]])  # [..., 2]
    return logits[..., 0] - logits[..., 1]


def _normaliser(clean_diff: float, corrupted_diff: float) -> float:
    """clean − corrupted, or a ValueError when there is nothing to normalise by."""
    gap = clean_diff - corrupted_diff
    if abs(gap) <= 1e-6 * max(1.0, abs(clean_diff), abs(corrupted_diff)):
        raise ValueError(f"The clean and corrupted runs give the same logit difference ({clean_diff:.4g}), "
                         "so there is nothing to normalise by: choose prompts the answer tells apart.")
    return gap


def _full_run(model: GPT2, ids: list[int], rec: Recorder, cache: KVCache | None,
              answer: int, wrong: int) -> float:
    """The logit difference of a whole run, recording into `rec` (and filling `cache`)."""
    idx = torch.tensor([ids], dtype=torch.long, device=model.device)  # [1, pos]
    resid = model.run_blocks(idx, cache, rec)  # [1, pos, d_model]
    if cache is not None:
        cache.commit(len(ids))
    return float(_logit_diff(model, resid[0, -1], answer, wrong))


def _put(index: tuple, value: torch.Tensor) -> Edit:
    """An edit writing `value` at `index` of a copy of the activation."""
    def edit(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[index] = value
        return x
    return edit


def activation_patching(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int], answer: int,
                        wrong: int, site: str = "resid_pre", *,
                        labels: Sequence[str] | None = None) -> PatchingResult:
    """The corrupted run, with one activation taken from the clean run, once per cell of the grid.

    Each cell is (patched − corrupted) / (clean − corrupted) of the logit difference answer − wrong at
    the last position. Sites resid_pre, attn_out and mlp_out patch one position of one layer
    ([layer, position]); z patches one head's output at every position ([layer, head]). `labels`
    names the positions (default "0", "1", ...).

    A patched pass reuses the corrupted run: it starts from the corrupted residual stream entering
    the patched layer and runs only the patched position and those after it, over the corrupted
    run's keys and values of the positions before it (which the patch cannot change).
    """
    clean_ids, corrupted_ids, columns = _check(model, clean_ids, corrupted_ids, answer, wrong, site, labels)
    n_layer, n = model.config.n_layer, len(clean_ids)
    names = [act_name(site, layer) for layer in range(n_layer)]
    resid = [act_name("resid_pre", layer) for layer in range(n_layer)]
    hook_names = tuple(model.hook_names())
    with torch.inference_mode():
        clean = Recorder(names)
        clean_diff = _full_run(model, clean_ids, clean, None, answer, wrong)
        corrupted = Recorder(list(dict.fromkeys(resid + names)))
        # The corrupted run's keys and values, every layer and position (z patches every position).
        cache = model.new_cache(n) if site != "z" else None
        corrupted_diff = _full_run(model, corrupted_ids, corrupted, cache, answer, wrong)
        gap = _normaliser(clean_diff, corrupted_diff)

        def patched(layer: int, x: torch.Tensor, cache: KVCache | None, edits: dict[str, Edit]) -> float:
            """The logit difference running blocks `layer`.. from x [1, new, d_model] entering it."""
            rec = None
            if edits:
                rec = Recorder([], edits)
                rec.bind(hook_names)
            segments = Segments.one(x.shape[1], cache, rec)
            for block in model.h[layer:]:
                x = block(x, segments)  # [1, new, d_model]
            return float(_logit_diff(model, x[0, -1], answer, wrong))

        grid = torch.zeros(n_layer, len(columns))
        if site == "z":
            for layer, name in enumerate(names):
                good, bad = clean.tensors[name], corrupted.tensors[name]  # [1, pos, head, d_head]
                for head in range(model.config.n_head):
                    if torch.equal(good[:, :, head], bad[:, :, head]):
                        continue  # nothing to patch: the corrupted run, exactly 0
                    edit = _put((slice(None), slice(None), head), good[:, :, head])
                    x = corrupted.tensors[resid[layer]]  # [1, pos, d_model]
                    grid[layer, head] = (patched(layer, x, None, {name: edit}) - corrupted_diff) / gap
            return PatchingResult(grid, site, clean_diff, corrupted_diff, columns, answer, wrong, "exact")
        # From the last position down: a pass patched at `position` writes the cache's keys and
        # values from `position` on only, so the earlier positions later passes read stay corrupted.
        assert cache is not None
        for position in reversed(range(n)):
            cache.rewind(position)  # the pass's positions follow the corrupted ones before them
            for layer, name in enumerate(names):
                good = clean.tensors[name][:, position]  # [1, d_model]
                if torch.equal(good, corrupted.tensors[name][:, position]):
                    continue  # the same activation in both runs: exactly 0
                x = corrupted.tensors[resid[layer]][:, position:]  # [1, pos - position, d_model]
                edits: dict[str, Edit] = {}
                if site == "resid_pre":
                    x = torch.cat([good[:, None], x[:, 1:]], dim=1)
                else:
                    edits[name] = _put((slice(None), 0), good)  # position 0 of the pass is `position`
                grid[layer, position] = (patched(layer, x, cache, edits) - corrupted_diff) / gap
    return PatchingResult(grid, site, clean_diff, corrupted_diff, columns, answer, wrong, "exact")


def attribution_patching(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int], answer: int,
                         wrong: int, site: str = "resid_pre", *,
                         labels: Sequence[str] | None = None) -> PatchingResult:
    """`activation_patching`'s grid estimated to first order: ∂(answer − wrong)/∂activation in the
    corrupted run · (clean − corrupted activation), normalised the same way.

    Three passes for the whole grid: the clean run, and the corrupted run forward and backward.
    The estimate is good where the logit difference is close to linear in the activation (small
    changes, no saturated softmax or LayerNorm), and says nothing about effects it cannot see in
    one gradient.
    """
    clean_ids, corrupted_ids, columns = _check(model, clean_ids, corrupted_ids, answer, wrong, site, labels)
    names = [act_name(site, layer) for layer in range(model.config.n_layer)]
    with torch.inference_mode():
        clean = Recorder(names)
        clean_diff = _full_run(model, clean_ids, clean, None, answer, wrong)
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def keep(t: torch.Tensor) -> torch.Tensor:
            captured[name] = t
            return t
        return keep

    def as_input(tok_emb: torch.Tensor) -> torch.Tensor:
        """A leaf that needs a gradient: the graph is built even if the weights need none."""
        return tok_emb.detach().requires_grad_(True)

    with torch.inference_mode(False), torch.enable_grad():  # a caller's inference mode would stop autograd
        edits = {act_name("embed"): as_input, **{name: capture(name) for name in names}}
        rec = Recorder([], edits)
        idx = torch.tensor([corrupted_ids], dtype=torch.long, device=model.device)  # [1, pos]
        resid = model.run_blocks(idx, None, rec)  # [1, pos, d_model]
        diff = _logit_diff(model, resid[0, -1], answer, wrong)  # []
        # Gradients reach these activations only: the model's parameters get no .grad.
        grads = torch.autograd.grad(diff, [captured[name] for name in names], allow_unused=True)
    corrupted_diff = float(diff.detach())
    gap = _normaliser(clean_diff, corrupted_diff)
    rows = []
    with torch.no_grad():
        for name, grad in zip(names, grads, strict=True):
            delta = clean.tensors[name].float() - captured[name].detach().float()  # [1, pos, ...]
            if grad is None:
                grad = torch.zeros_like(delta)
            effect = (grad.float() * delta).sum(-1)[0]  # [pos], or [pos, head] for z
            rows.append(effect.sum(0) if site == "z" else effect)  # z: the head at every position
    grid = (torch.stack(rows) / gap).float().cpu() + 0.0  # [layer, position | head]; + 0.0: no −0
    return PatchingResult(grid, site, clean_diff, corrupted_diff, columns, answer, wrong, "attribution")
