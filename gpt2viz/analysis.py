"""Head-level analyses: previous-token and induction scores of every attention head.

The scores follow the standard tests (as in TransformerLens's tutorials):

* previous-token score of a head = mean attention from each position to the position just
  before it (query i → key i-1, for i ≥ 1), on ordinary text;
* induction score of a head = mean attention, from each token of the second copy of a repeated
  sequence of random tokens, to the token just after that token's earlier occurrence (query i →
  key i-L+1 for a repeated block of length L);
* first-token score = mean attention from each later position to position 0 (where heads with
  nothing to do park their attention);
* duplicate-token score = mean attention from a position to the earlier positions holding the
  same token, over the positions whose token came earlier.

The pure scoring pieces (`previous_token_score`, `induction_score`, `first_token_score`,
`duplicate_token_score`) work on attention patterns [..., head, q_pos, k_pos] so they can be
tested on constructed patterns; `previous_token_scores`, `induction_scores` and `head_roles` run
a model and return [layer, head] tensors. `attention_overview`
pools every head's pattern into a small tile inside one forward pass (the Attention page's grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .hooks import act_name
from .model import GPT2
from .tokenizer import EOT_ID
from .trace import Trace


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from position i to i-1 (i ≥ 1). pattern [..., head, q, k] → [..., head]."""
    if pattern.shape[-1] < 2 or pattern.shape[-2] < 2:
        raise ValueError("A previous-token score needs at least two positions.")
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).float().mean(-1)


def induction_score(pattern: torch.Tensor, seq_len: int, prefix: int = 1) -> torch.Tensor:
    """Mean attention from the second copy of a repeated block to the token after the first copy.

    The sequence is `prefix` tokens (e.g. one BOS), then a block of `seq_len` tokens, then the same
    block again. Query positions of the second copy are prefix+L .. prefix+2L-1; each should attend
    to key q-L+1. pattern [..., head, q, k] (q covering at least prefix+2L positions) → [..., head].
    """
    L = int(seq_len)
    if L < 2:
        raise ValueError("The repeated block must be at least 2 tokens long.")
    if pattern.shape[-2] < prefix + 2 * L:
        raise ValueError(f"The pattern has {pattern.shape[-2]} query positions; a repeated block of "
                         f"{L} after {prefix} prefix tokens needs {prefix + 2 * L}.")
    stripe = pattern.diagonal(offset=1 - L, dim1=-2, dim2=-1)  # entry j: query j+L-1, key j
    # queries prefix+L .. prefix+2L-1  ->  j = prefix+1 .. prefix+L
    return stripe[..., prefix + 1: prefix + L + 1].float().mean(-1)


def first_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from position i to position 0 (i ≥ 1). pattern [..., head, q, k] → [..., head]."""
    if pattern.shape[-1] < 2 or pattern.shape[-2] < 2:
        raise ValueError("A first-token score needs at least two positions.")
    return pattern[..., 1:, 0].float().mean(-1)


def duplicate_token_score(pattern: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """Mean attention from a position to the earlier positions holding its own token, over the
    positions whose token came earlier (0 when none did). pattern [..., head, q, k] over the
    sequence `ids` (q = k = len(ids)) → [..., head]."""
    n = len(ids)
    if pattern.shape[-2:] != (n, n):
        raise ValueError(f"The pattern covers {tuple(pattern.shape[-2:])} query and key positions; "
                         f"the {n} ids need ({n}, {n}).")
    tokens = torch.as_tensor([int(i) for i in ids])  # [pos]
    earlier = torch.ones(n, n, dtype=torch.bool).tril(-1)  # [q, k]: k < q
    same = (tokens[:, None] == tokens[None, :]) & earlier  # [q, k]: an earlier copy of q's token
    has = same.any(-1)  # [q]
    if not has.any():
        return torch.zeros(pattern.shape[:-2])
    mass = (pattern.float() * same.to(pattern.device)).sum(-1)  # [..., head, q]
    return mass[..., has.to(pattern.device)].mean(-1)


HEAD_ROLES = ("first_token", "previous_token", "duplicate_token", "induction")


def pattern_roles(pattern: torch.Tensor, ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """The first-token, previous-token and duplicate-token scores of patterns [..., head, q, k] over
    the sequence `ids`, each [..., head]."""
    return {"first_token": first_token_score(pattern), "previous_token": previous_token_score(pattern),
            "duplicate_token": duplicate_token_score(pattern, ids)}


def head_roles(model: GPT2, ids: Sequence[int], induction_ids: Sequence[int] | None = None,
               ) -> dict[str, torch.Tensor]:
    """Every head's role scores, [layer, head] each, keyed as in HEAD_ROLES: first-token,
    previous-token and duplicate-token on `ids` (one forward pass), induction on repeated random
    tokens (`induction_scores`, drawn from `induction_ids` when given)."""
    ids = model.check_ids(ids)
    trace = model.run_with_capture(ids, names=[act_name("pattern", "*")], with_logits=False)
    layers = [pattern_roles(trace["pattern", layer], ids) for layer in range(model.config.n_layer)]
    roles = {key: torch.stack([scores[key] for scores in layers]) for key in layers[0]}
    roles["induction"] = induction_scores(model, ids=induction_ids)
    return {key: roles[key] for key in HEAD_ROLES}


def attention_patterns(model: GPT2, ids: Sequence[int]) -> torch.Tensor:
    """All heads' patterns for one sequence: [layer, head, q_pos, k_pos] (float32, CPU)."""
    return model.run_with_capture(list(ids), names=[act_name("pattern", "*")]).stack("pattern")


def trace_previous_token_scores(trace: Trace, n_layer: int) -> torch.Tensor:
    """Previous-token score of every head, [layer, head], from a trace that recorded the patterns.
    Layer by layer: stacking [layer, head, T, T] first would copy every pattern."""
    return torch.stack([previous_token_score(trace["pattern", i]) for i in range(n_layer)])


def previous_token_scores(model: GPT2, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Previous-token score of every head, [layer, head], averaged over the given sequences."""
    n_layer, names = model.config.n_layer, [act_name("pattern", "*")]
    return torch.stack([trace_previous_token_scores(model.run_with_capture(list(s), names=names), n_layer)
                        for s in sequences]).mean(0)


def repeated_random_tokens(
    seq_len: int = 50, n_seqs: int = 4, seed: int = 0, vocab_size: int = 50257,
    bos: int | None = EOT_ID, ids: Sequence[int] | None = None,
) -> list[list[int]]:
    """`n_seqs` sequences of [bos] + r + r, r being `seq_len` uniform random ids (seeded): ids below
    `vocab_size` (never <|endoftext|>), or drawn from `ids` when given."""
    g = torch.Generator().manual_seed(seed)
    high = min(vocab_size, EOT_ID) if ids is None else len(ids)
    out = []
    for _ in range(n_seqs):
        r = torch.randint(0, high, (seq_len,), generator=g).tolist()
        if ids is not None:
            r = [int(ids[i]) for i in r]
        out.append(([bos] if bos is not None else []) + r + r)
    return out


def induction_scores(
    model: GPT2, seq_len: int = 50, n_seqs: int = 4, seed: int = 0, ids: Sequence[int] | None = None
) -> torch.Tensor:
    """Induction score of every head, [layer, head], on repeated random tokens (seeded), drawn
    from the whole vocabulary or from `ids`. A small model only learns embeddings for the ids of
    its corpus; `ids` measures the heads on tokens it has seen."""
    seqs = repeated_random_tokens(seq_len, n_seqs, seed, model.config.vocab_size, ids=ids)
    return torch.stack([induction_score(attention_patterns(model, s), seq_len, prefix=1)
                        for s in seqs]).mean(0)


def best_head(scores: torch.Tensor) -> tuple[int, int, float]:
    """(layer, head, score) of the highest entry of a [layer, head] score tensor."""
    flat = int(scores.argmax())
    layer, head = divmod(flat, scores.shape[1])
    return layer, head, float(scores[layer, head])


OVERVIEW = 256  # at most this many cells per side in a pooled overview


@dataclass(frozen=True)
class Overview:
    """A [query, key] matrix max-pooled into blocks: the strongest cell of each block survives,
    so a thin stripe (a previous-token head's diagonal) stays visible."""
    values: np.ndarray  # [row block, column block] float32; NaN where a whole block is masked
    row_starts: np.ndarray  # first position of each row block
    col_starts: np.ndarray  # first position of each column block
    n_rows: int
    n_cols: int


def block_starts(length: int, size: int) -> np.ndarray:
    """The first position of each of at most `size` nearly equal blocks of `length` positions."""
    return np.linspace(0, length, min(length, size) + 1).astype(int)[:-1]


def block_max(matrix: np.ndarray, size: int = OVERVIEW) -> Overview:
    """Shrink a [q, k] matrix to at most [size, size] keeping each block's maximum (NaN-aware:
    NaN only where the whole block is NaN)."""
    rows, cols = matrix.shape
    r, c = block_starts(rows, size), block_starts(cols, size)
    with np.errstate(invalid="ignore"):
        pooled = np.fmax.reduceat(np.fmax.reduceat(matrix, r, axis=0), c, axis=1)
    return Overview(pooled.astype(np.float32), r, c, rows, cols)


@dataclass(frozen=True)
class HeadGrid:
    image: np.ndarray  # every head's max-pooled pattern tiled: [layers*(tile+1)-1, heads*(tile+1)-1]
    tile: int
    n_layer: int
    n_head: int

    def centre(self, layer: int, head: int) -> tuple[float, float]:
        """(x, y) of a head's tile centre in image coordinates."""
        step = self.tile + 1
        return head * step + (self.tile - 1) / 2, layer * step + (self.tile - 1) / 2


@dataclass(frozen=True)
class AttentionOverview:
    """What the Attention page shows of every head at once, from one forward pass."""
    grid: HeadGrid
    roles: dict[str, torch.Tensor]  # first_token, previous_token, duplicate_token: [layer, head], this text


def _pooled_heads(pattern: torch.Tensor, starts: np.ndarray) -> np.ndarray:
    """[head, q, k] patterns → [head, block, block], each block's largest weight (torch's own
    threads: 2.6 ms a layer at 900 tokens where NumPy took 29 ms)."""
    bounds = torch.from_numpy(starts[1:])
    rows = torch.stack([part.amax(1) for part in torch.tensor_split(pattern, bounds, dim=1)], 1)
    return torch.stack([part.amax(2) for part in torch.tensor_split(rows, bounds, dim=2)], 2).numpy()


def attention_overview(model: GPT2, ids: Sequence[int], tile: int = 24) -> AttentionOverview:
    """Every head's pattern max-pooled to a `tile` × `tile` tile (fewer cells when the sequence
    is shorter) and every head's first-token, previous-token and duplicate-token scores on this
    text (`pattern_roles`; 0 with one token), computed inside one forward pass as each layer's
    pattern goes by: no layer's [head, pos, pos] pattern outlives its layer."""
    cfg = model.config
    n = len(ids)
    tile = min(tile, n)
    step = tile + 1
    image = np.full((cfg.n_layer * step - 1, cfg.n_head * step - 1), np.nan, dtype=np.float32)
    roles = {key: torch.zeros(cfg.n_layer, cfg.n_head) for key in HEAD_ROLES if key != "induction"}
    starts = block_starts(n, tile)
    # A future key's weight is 0 and every weight is >= 0, so a block's maximum is that of its
    # visible cells; the blocks with none (every key after every query) are NaN, as block_max's.
    ends = np.append(starts[1:], n)  # one past each block's last position
    future = starts[None, :] >= ends[:, None]  # [block, block]: a key block starting after the query block

    def observer(layer: int):
        def observe(pattern: torch.Tensor) -> torch.Tensor:  # [1, head, pos, pos]
            p = pattern[0].float().cpu()  # [head, pos, pos]
            if n > 1:
                for key, scores in pattern_roles(p, ids).items():
                    roles[key][layer] = scores
            for head, block in enumerate(_pooled_heads(p, starts)):
                image[layer * step:layer * step + tile, head * step:head * step + tile] = np.where(
                    future, np.nan, block)
            return pattern
        return observe

    edits = {act_name("pattern", layer): observer(layer) for layer in range(cfg.n_layer)}
    model.run_with_capture(list(ids), names=[], edits=edits, with_logits=False)
    return AttentionOverview(HeadGrid(image, tile, cfg.n_layer, cfg.n_head), roles)
