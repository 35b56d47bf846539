"""Activation patching: which activations carry the difference between two prompts.

Two prompts of the same length, clean and corrupted, make the model behave differently at the last
position. Each cell of a patching grid runs the corrupted prompt with one activation taken from
the clean run and measures how much of the difference in a metric of the last position's logits
(by default the logit difference answer − wrong) that one activation brings back: 0 is the
corrupted run, 1 the clean run. Attribution patching estimates every cell at once, to first
order, from one backward pass of the corrupted run.

A site is any per-layer hook point (`act_name` short name) with a position axis or a head axis:
one with a head axis (q, k, v, z, result, attn_scores, pattern) patches one head at every position
([layer, head]); any other patches one position ([layer, position]).

A pair is worth patching only when the model tells its prompts apart (`pair_problem`); a pair
known to work on a model is in assets/examples/patching.json (`patching_example`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import EMPTY_PROMPT, PromptError
from .hooks import HOOK_POINTS, act_name
from .kv_cache import KVCache
from .model import GPT2, Segments
from .paths import ASSETS
from .recording import Deferred, Edit, Recorder
from .tokenizer import EOT_TEXT, GPT2Tokenizer

SITES = ("resid_pre", "attn_out", "mlp_out", "z")  # the sites the app and the command line offer
Metric = Callable[[torch.Tensor], torch.Tensor | float]  # logits [vocab] of the last position → a number
EXAMPLES = ASSETS / "examples" / "patching.json"

MIN_DIFFERENCE = 1.0
"""The least difference to explain (clean − corrupted logit difference answer − wrong) of a pair
worth patching. Every cell is divided by it, so a grid over a small one is noise at full colour:
prompts that differ in a detail the model does not track still move the logit difference a
little (on gpt2viz-mini, the Mary/John pair by −0.19, and the swapped words of the other pairs
we tried that it ignores by 0.6 at most), while a detail it does track moves it by several
logits (7.75 for its own example). One logit multiplies the odds of answer over wrong by
e ≈ 2.7: a preference, not a rounding."""


def pair_problem(clean_value: float, corrupted_value: float) -> str | None:
    """Why a pair, given its runs' logit differences answer − wrong, is not worth patching, in
    plain words; None when it is. The clean run must prefer the answer (its difference above 0),
    and the difference to explain (clean − corrupted) must be at least `MIN_DIFFERENCE`."""
    if clean_value <= 0:
        return (f"The clean run does not prefer the answer: its logit difference answer − wrong is "
                f"{clean_value:.2f}, and it must be above 0. The grid would explain a preference this model "
                "does not have: choose a clean prompt that makes this model expect the answer.")
    gap = clean_value - corrupted_value
    if gap < MIN_DIFFERENCE:
        return (f"The difference to explain is only {gap:.2f} (clean {clean_value:.2f} − corrupted "
                f"{corrupted_value:.2f}); a usable pair has at least {MIN_DIFFERENCE:g}. Every cell is "
                "divided by it, so the grid shows noise: choose a corrupted prompt that makes this model "
                "expect the wrong token.")
    return None


@dataclass(frozen=True)
class PatchingResult:
    """A patching grid and the two runs it is normalised by (0: corrupted, 1: clean)."""

    grid: torch.Tensor  # [layer, position], or [layer, head] for a site with a head axis; float32, CPU
    site: str  # the hook point's short name
    clean_value: float  # the metric of the clean run (by default logit(answer) − logit(wrong))
    corrupted_value: float  # the same in the corrupted run
    labels: list[str]  # the grid's columns: one per position, or one per head
    answer: int | None  # the default metric's tokens (None with a metric of the caller's)
    wrong: int | None
    method: str  # "exact" (activation patching) or "attribution" (its first-order estimate)

    @property
    def across(self) -> str:
        """What the columns are: "position" or "head"."""
        return "head" if head_axis(self.site) is not None else "position"

    @property
    def problem(self) -> str | None:
        """Why this pair is not worth patching (`pair_problem`), or None. Only the default metric is
        checked: a metric of the caller's has a scale of its own."""
        if self.answer is None:
            return None
        return pair_problem(self.clean_value, self.corrupted_value)


@dataclass(frozen=True)
class PatchingExample:
    """A clean/corrupted pair known to work on some model: the clean run prefers the answer and
    the difference to explain is clear (`pair_problem` finds none)."""

    clean: str
    corrupted: str
    answer: str  # one token, with its leading space
    wrong: str
    why: str  # what the model does that makes the pair work


@functools.cache
def _examples() -> dict[str, PatchingExample]:
    entries = json.loads(EXAMPLES.read_text(encoding="utf-8"))["examples"]
    fields = ("clean", "corrupted", "answer", "wrong", "why")
    return {name: PatchingExample(**{field: entry[field] for field in fields})
            for entry in entries for name in entry["models"]}


def patching_example(model_name: str) -> PatchingExample | None:
    """The pair known to work on the model named `model_name` (`GPT2.name`: a preset, a repo id,
    the bundled model), or None when none is known."""
    return _examples().get(model_name)


def prompt_ids(tok: GPT2Tokenizer, text: str) -> list[int]:
    """A patching prompt's token ids. Here `<|endoftext|>` in the text is GPT-2's end-of-text token,
    not its characters: every text began with it in training, and gpt2viz-mini's induction head
    only works after it (the bundled model's example starts with it). A prompt of whitespace only
    is a PromptError."""
    if not text.strip():
        raise PromptError(EMPTY_PROMPT)
    return tok.encode(text, allowed_special={EOT_TEXT})


def head_axis(site: str) -> int | None:
    """The axis of a site's tensor (with its batch axis first) that holds the heads, or None."""
    axes = HOOK_POINTS[site].shape.split("]")[0].strip("[").split(", ")  # "[pos, head, d_head]"
    return axes.index("head") + 1 if "head" in axes else None


def patchable_sites() -> list[str]:
    """Every site patching takes: the per-layer hook points with a position or a head axis."""
    return [short for short, point in HOOK_POINTS.items()
            if point.per_layer and (head_axis(short) is not None or point.shape.startswith("[pos,"))]


def logit_difference(answer: int, wrong: int) -> Metric:
    """The default metric: logit(answer) − logit(wrong)."""
    return lambda logits: logits[answer] - logits[wrong]


def _check(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int], answer: int | None,
           wrong: int | None, metric: Metric | None, site: str,
           labels: Sequence[str] | None) -> tuple[list[int], list[int], list[str]]:
    """The prompts as lists and the column labels, or a ValueError saying what is wrong."""
    if site not in patchable_sites():
        raise ValueError(f"site must be a per-layer hook point with a position or a head axis "
                         f"({', '.join(patchable_sites())}), not {site!r}.")
    clean_ids, corrupted_ids = model.check_ids(clean_ids), model.check_ids(corrupted_ids)
    if len(clean_ids) != len(corrupted_ids):
        raise PromptError(f"The clean prompt is {len(clean_ids)} tokens and the corrupted prompt "
                          f"{len(corrupted_ids)}: patching matches them position by position, so they "
                          "must have the same number of tokens.")
    if metric is None:
        if answer is None or wrong is None:
            raise ValueError("Give the answer and wrong tokens (for the logit difference), or a metric.")
        vocab = model.config.vocab_size
        for what, token in (("answer", answer), ("wrong", wrong)):
            if not 0 <= int(token) < vocab:
                raise ValueError(f"The {what} token id {token} is outside the vocabulary (0..{vocab - 1}).")
        if int(answer) == int(wrong):
            raise ValueError(f"answer and wrong are the same token ({answer}): their logit difference is "
                             "always 0.")
    if head_axis(site) is not None:
        return clean_ids, corrupted_ids, [f"H{h}" for h in range(model.config.n_head)]
    if labels is None:
        return clean_ids, corrupted_ids, [str(i) for i in range(len(clean_ids))]
    if len(labels) != len(clean_ids):
        raise ValueError(f"{len(labels)} labels for {len(clean_ids)} positions.")
    return clean_ids, corrupted_ids, [str(label) for label in labels]


def _measure(model: GPT2, resid: torch.Tensor, answer: int | None, wrong: int | None,
             metric: Metric | None) -> torch.Tensor:
    """The metric [] of the residual stream [d_model] leaving the last block at the last position.
    The default one reads only the two rows of W_U it needs."""
    if metric is None:
        logits = F.linear(model.ln_f(resid), model.W_U[[answer, wrong]])  # [2]
        return logits[0] - logits[1]
    value = metric(model.unembed(resid))  # logits [vocab]
    return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def _normaliser(clean: float, corrupted: float) -> float:
    """clean − corrupted, or a ValueError when there is nothing to normalise by."""
    gap = clean - corrupted
    if abs(gap) <= 1e-6 * max(1.0, abs(clean), abs(corrupted)):
        raise ValueError(f"The clean and corrupted runs give the same value of the metric ({clean:.4g}), "
                         "so there is nothing to normalise by: choose prompts it tells apart.")
    return gap


def _recorded(rec: Recorder, name: str) -> torch.Tensor:
    """What `rec` recorded at `name`, computed if it was kept deferred."""
    value = rec.tensors[name]
    return value() if isinstance(value, Deferred) else value


def _put(index: tuple, value: torch.Tensor) -> Edit:
    """An edit writing `value` at `index` of a copy of the activation."""
    def edit(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[index] = value
        return x
    return edit


def activation_patching(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int],
                        answer: int | None = None, wrong: int | None = None, site: str = "resid_pre", *,
                        metric: Metric | None = None, labels: Sequence[str] | None = None) -> PatchingResult:
    """The corrupted run, with one activation taken from the clean run, once per cell of the grid.

    Each cell is (patched − corrupted) / (clean − corrupted) of `metric` (a function of the last
    position's logits [vocab]; by default the logit difference answer − wrong). A site with a head
    axis patches one head at every position ([layer, head]); any other patches one position of one
    layer ([layer, position]). `labels` names the positions (default "0", "1", ...).

    A position's patched pass reuses the corrupted run: it starts from the corrupted residual
    stream entering the patched layer and runs only the patched position and those after it, over
    the corrupted run's keys and values of the positions before it (which the patch cannot change).
    """
    clean_ids, corrupted_ids, columns = _check(model, clean_ids, corrupted_ids, answer, wrong, metric, site,
                                               labels)
    n_layer, n = model.config.n_layer, len(clean_ids)
    names = [act_name(site, layer) for layer in range(n_layer)]
    resid = [act_name("resid_pre", layer) for layer in range(n_layer)]
    hook_names = tuple(model.hook_names())
    heads = head_axis(site)
    with torch.inference_mode():
        def run(ids: list[int], rec: Recorder, cache: KVCache | None) -> float:
            idx = torch.tensor([ids], dtype=torch.long, device=model.device)  # [1, pos]
            x = model.run_blocks(idx, cache, rec)  # [1, pos, d_model]
            if cache is not None:
                cache.commit(len(ids))
            return float(_measure(model, x[0, -1], answer, wrong, metric))

        def patched(layer: int, x: torch.Tensor, cache: KVCache | None, edits: dict[str, Edit]) -> float:
            """The metric running blocks `layer`.. from x [1, new, d_model] entering it."""
            rec = Recorder([], edits)
            rec.bind(hook_names)
            segments = Segments.one(x.shape[1], cache, rec)
            for block in model.h[layer:]:
                x = block(x, segments)  # [1, new, d_model]
            return float(_measure(model, x[0, -1], answer, wrong, metric))

        clean = Recorder(names)
        clean_value = run(clean_ids, clean, None)
        corrupted = Recorder(list(dict.fromkeys(resid + names)))
        # The corrupted run's keys and values, every layer and position (a head patches them all).
        cache = model.new_cache(n) if heads is None else None
        corrupted_value = run(corrupted_ids, corrupted, cache)
        gap = _normaliser(clean_value, corrupted_value)

        grid = torch.zeros(n_layer, len(columns))
        if heads is not None:
            for layer, name in enumerate(names):
                good, bad = _recorded(clean, name), _recorded(corrupted, name)  # [1, ...] with a head axis
                for head in range(model.config.n_head):
                    index = (slice(None),) * heads + (head,)
                    if torch.equal(good[index], bad[index]):
                        continue  # nothing to patch: the corrupted run, exactly 0
                    x = corrupted.tensors[resid[layer]]  # [1, pos, d_model]
                    value = patched(layer, x, None, {name: _put(index, good[index])})
                    grid[layer, head] = (value - corrupted_value) / gap
            return PatchingResult(grid, site, clean_value, corrupted_value, columns, answer, wrong, "exact")
        # From the last position down: a pass patched at `position` writes the cache's keys and
        # values from `position` on only, so the earlier positions later passes read stay corrupted.
        assert cache is not None
        for position in reversed(range(n)):
            cache.rewind(position)  # the pass's positions follow the corrupted ones before them
            for layer, name in enumerate(names):
                good = _recorded(clean, name)[:, position]  # [1, ...]
                if torch.equal(good, _recorded(corrupted, name)[:, position]):
                    continue  # the same activation in both runs: exactly 0
                x = corrupted.tensors[resid[layer]][:, position:]  # [1, pos - position, d_model]
                edit = _put((slice(None), 0), good)  # position 0 of the pass is `position`
                grid[layer, position] = (patched(layer, x, cache, {name: edit}) - corrupted_value) / gap
    return PatchingResult(grid, site, clean_value, corrupted_value, columns, answer, wrong, "exact")


def attribution_patching(model: GPT2, clean_ids: Sequence[int], corrupted_ids: Sequence[int],
                         answer: int | None = None, wrong: int | None = None, site: str = "resid_pre", *,
                         metric: Metric | None = None, labels: Sequence[str] | None = None) -> PatchingResult:
    """`activation_patching`'s grid estimated to first order: ∂metric/∂activation in the corrupted
    run · (clean − corrupted activation), normalised the same way (`metric` must be differentiable;
    the default logit difference is).

    Three passes for the whole grid: the clean run, and the corrupted run forward and backward.
    The estimate is good where the metric is close to linear in the activation (small changes, no
    saturated softmax or LayerNorm), and says nothing about effects it cannot see in one gradient.
    """
    clean_ids, corrupted_ids, columns = _check(model, clean_ids, corrupted_ids, answer, wrong, metric, site,
                                               labels)
    names = [act_name(site, layer) for layer in range(model.config.n_layer)]
    heads = head_axis(site)
    with torch.inference_mode():
        clean = Recorder(names)
        idx = torch.tensor([clean_ids], dtype=torch.long, device=model.device)  # [1, pos]
        clean_value = float(_measure(model, model.run_blocks(idx, None, clean)[0, -1], answer, wrong, metric))
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hold(t: torch.Tensor) -> torch.Tensor:
            captured[name] = t
            return t
        return hold

    def as_input(tok_emb: torch.Tensor) -> torch.Tensor:
        """A leaf that needs a gradient: the graph is built even if the weights need none."""
        return tok_emb.detach().requires_grad_(True)

    with torch.inference_mode(False), torch.enable_grad():  # a caller's inference mode would stop autograd
        edits = {act_name("embed"): as_input, **{name: capture(name) for name in names}}
        rec = Recorder([], edits)
        idx = torch.tensor([corrupted_ids], dtype=torch.long, device=model.device)  # [1, pos]
        value = _measure(model, model.run_blocks(idx, None, rec)[0, -1], answer, wrong, metric)  # []
        # Gradients reach these activations only: the model's parameters get no .grad.
        grads = torch.autograd.grad(value, [captured[name] for name in names], allow_unused=True)
    corrupted_value = float(value.detach())
    gap = _normaliser(clean_value, corrupted_value)
    rows = []
    with torch.no_grad():
        for name, grad in zip(names, grads, strict=True):
            delta = _recorded(clean, name).float() - captured[name].detach().float()  # [1, ...]
            if grad is None:
                grad = torch.zeros_like(delta)
            effect = grad.float() * delta  # [1, ...]
            if heads is None:  # one value per position: summed over the rest
                rows.append(effect[0].reshape(effect.shape[1], -1).sum(-1))
            else:  # one value per head: summed over every position
                rows.append(effect.movedim(heads, 0).reshape(effect.shape[heads], -1).sum(-1))
    grid = (torch.stack(rows) / gap).float().cpu() + 0.0  # [layer, position | head]; + 0.0: no −0
    return PatchingResult(grid, site, clean_value, corrupted_value, columns, answer, wrong, "attribution")
