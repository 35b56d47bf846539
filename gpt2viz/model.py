"""GPT-2 in PyTorch with named hook points at every stage of the computation.

Parameter names follow the Hugging Face Hub file without the `transformer.` prefix (`wte`,
`h.0.attn.c_attn`, ...), so loading is a copy plus the Conv1D transposes. Hook names follow
TransformerLens (`blocks.0.attn.hook_pattern`); gpt2viz/hooks.py declares them with their shapes.
Attention is written out (Q·Kᵀ, ÷√d_head, mask, softmax, ·V) whenever a recorder asks for the
scores, mask or pattern; otherwise the fused kernel computes the same thing faster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPT2Config
from .errors import EMPTY_PROMPT, PromptError, prompt_too_long
from .hooks import EMBED_HOOKS, FINAL_HOOKS, hook_names_for, layer_names
from .kv_cache import KVCache
from .recording import Edit, PassRecorder, Recorder, hook
from .trace import Trace

_EMBED, _POS_EMBED = (h.name() for h in EMBED_HOOKS)
_LN_F_SCALE, _LN_F_NORMALIZED = (h.name() for h in FINAL_HOOKS)


def causal_mask(past: int, total: int, device: torch.device) -> torch.Tensor:
    """[new, total] bool: True where the query at absolute position past+i may see key j."""
    q_pos = torch.arange(past, total, device=device)
    return torch.arange(total, device=device)[None, :] <= q_pos[:, None]


def attention_scores(q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """[B, H, T, S] q·k / √d_head, −inf where `allowed` [B, T, S] is False; q [B, T, H, D] and
    k [B, S, H, D]. The forward pass and a recording's deferred scores both call this, so the
    two agree bit for bit."""
    scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1))  # [B, H, T, S]
    # In place: the matmul's fresh output is ours alone, and [H, T, S] copies are large.
    return scores.div_(math.sqrt(q.shape[-1])).masked_fill_(~allowed[:, None], float("-inf"))


def _normalize(x: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    """[B, T, C] LayerNorm's x − mean / scale, from its input and the fused kernel's statistics."""
    return (x - mean) * rstd


def _softmax(scores: torch.Tensor, in_place: bool) -> torch.Tensor:
    """Softmax over the last dimension, written over `scores` when `in_place` allows it and the
    pass runs on the CPU without autograd. The result is bit for bit the same; on the CPU a fresh
    [B, H, T, S] buffer costs more than the softmax itself (at 1,024 tokens its pages are faulted
    in one by one: about 15 ms of the 20 per layer of gpt2)."""
    if in_place and scores.device.type == "cpu" and not torch.is_grad_enabled():
        return torch.ops.aten._softmax.out(scores, -1, False, out=scores)
    return scores.softmax(dim=-1)


def _gelu(pre: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU (the tanh approximation)."""
    return F.gelu(pre, approximate="tanh")


@dataclass(frozen=True)
class Segments:
    """How the positions of one forward pass divide into sequences. `x` is [B, N, C] with N the
    sum of `lengths`: a whole batch of one sequence each ([B, T], one segment), or several
    sequences' new positions packed along one axis with no padding ([1, N]: `advance_together`).
    Token-wise layers run every segment together; attention runs each over its own cache (None:
    over its own positions only), from position `pasts[i]` on, and with its own recorder. No
    forward pass moves a cache on: whoever takes the pass's result commits it
    (`KVCache.commit`), so a pass that fails leaves every cache as it was."""

    lengths: list[int]
    caches: list[KVCache | None]
    recorders: list[Recorder | None]
    # Each sequence's committed positions, which its new ones follow.
    pasts: list[int] = field(init=False)
    # What the token-wise layers' hook points hand their tensors to: the one recorder, or the
    # recorders of every sequence, each given its own slice (None when no sequence records).
    recorder: Recorder | PassRecorder | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pasts", [c.length if c is not None else 0 for c in self.caches])
        object.__setattr__(self, "recorder", PassRecorder.of(self.recorders, self.lengths))

    @classmethod
    def one(cls, length: int, cache: KVCache | None = None, recorder: Recorder | None = None) -> Segments:
        """A single sequence of `length` new positions (any batch size)."""
        return cls([length], [cache], [recorder])


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm with TransformerLens's two hook points: the scale √(var + eps) and the
    normalised x − mean / scale, before the weight and bias are applied."""

    def __init__(self, config: GPT2Config, name_scale: str, name_normalized: str) -> None:
        super().__init__(config.n_embd, eps=config.layer_norm_epsilon)
        self.name_scale, self.name_normalized = name_scale, name_normalized

    def forward(self, x: torch.Tensor, rec: Recorder | PassRecorder | None = None) -> torch.Tensor:
        if rec is None or not (rec.wants(self.name_scale) or rec.wants(self.name_normalized)):
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        if self.name_scale not in rec.edits and self.name_normalized not in rec.edits:
            # Recorded, not edited: the fused kernel's output, and its mean and 1/scale for the hooks.
            out, mean, rstd = torch.native_layer_norm(x, self.normalized_shape, self.weight, self.bias,
                                                      self.eps)
            hook(rec, self.name_scale, rstd.reciprocal())  # [B, T, 1]
            # Kept as x, mean and 1/scale, normalised when read: no work in the pass, and no memory
            # when the recording keeps x (the residual stream) as it is anyway.
            rec.defer(self.name_normalized, _normalize, x, mean, rstd)  # [B, T, C]
            return out
        centred = x - x.mean(-1, keepdim=True)  # [B, T, C]
        variance = centred.pow(2).mean(-1, keepdim=True)  # [B, T, 1]
        scale = hook(rec, self.name_scale, (variance + self.eps).sqrt())  # [B, T, 1]
        normalized = hook(rec, self.name_normalized, centred / scale)  # [B, T, C]
        return normalized * self.weight + self.bias


class Attention(nn.Module):
    """Causal multi-head self-attention with hook points on q, k, v, mask, scores, pattern, z
    and (when asked for) each head's result."""

    def __init__(self, config: GPT2Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head, self.d_head = config.n_head, config.d_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.names = layer_names(layer)
        self._explicit = tuple(self.names[s] for s in ("mask", "attn_scores", "pattern"))

    def forward(self, x: torch.Tensor, segments: Segments) -> torch.Tensor:
        B, T, C = x.shape  # batch, new positions of every segment, d_model
        H, D = self.n_head, self.d_head
        q, k, v = (t.view(B, T, H, D) for t in self.c_attn(x).split(C, dim=2))  # [B, T, H, D] each
        # Each sequence attends over its own cache, with its own recorder; one projection for all.
        zs = [self._attend(*parts, cache, past, seq_rec) for *parts, cache, past, seq_rec in zip(
            q.split(segments.lengths, 1), k.split(segments.lengths, 1), v.split(segments.lengths, 1),
            segments.caches, segments.pasts, segments.recorders, strict=True)]
        return self._project(zs[0] if len(zs) == 1 else torch.cat(zs, 1), segments.recorder)  # [B, T, C]

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache | None,
                past: int, rec: Recorder | None) -> torch.Tensor:
        """z [B, T, H, D] of one sequence's new positions q, k, v [B, T, H, D], which follow the
        `past` positions of its cache."""
        B, T, _, _ = q.shape
        n = self.names
        q, k, v = hook(rec, n["q"], q), hook(rec, n["k"], k), hook(rec, n["v"], v)  # [B, T, H, D]
        if cache is not None:
            k, v = cache.extend(self.layer, k, v)  # [B, S, H, D], S = past + T; not yet committed
        S = past + T

        if rec is not None and any(rec.wants(name) for name in self._explicit):
            allowed = hook(rec, n["mask"], causal_mask(past, S, q.device).expand(B, T, S))
            scores = attention_scores(q, k, allowed)  # [B, H, T, S]
            # A whole sequence's kept scores are rebuilt from q and k when read: keeping them would
            # double the largest memory of a recording. Over a cache (a generation step) they are
            # small and kept, since k is a view of a buffer that later steps overwrite.
            deferred = cache is None and rec.defer(n["attn_scores"], attention_scores, q, k, allowed)
            if not deferred:
                scores = hook(rec, n["attn_scores"], scores)  # [B, H, T, S]
            # Untouched by a hook (not kept, not edited), the scores' buffer is ours to reuse.
            reuse = deferred or not rec.wants(n["attn_scores"])
            pattern = hook(rec, n["pattern"], _softmax(scores, in_place=reuse))  # [B, H, T, S]
            z = torch.matmul(pattern, v.transpose(1, 2)).transpose(1, 2)  # [B, T, H, D]
        else:
            mask = causal_mask(past, S, q.device) if T > 1 and past > 0 else None
            z = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                attn_mask=mask, is_causal=(past == 0 and T > 1),
            ).transpose(1, 2)  # [B, T, H, D]
        return hook(rec, n["z"], z)

    def _project(self, z: torch.Tensor, rec: Recorder | PassRecorder | None) -> torch.Tensor:
        """The output projection W_O · z + b_O, [B, T, C], through each head's result when asked."""
        B, T, H, D = z.shape
        C = H * D
        if rec is not None and rec.wants(self.names["result"]):
            w_o = self.c_proj.weight.view(C, H, D)  # [d_model, H, D]: column block h is head h's slice
            result = hook(rec, self.names["result"], torch.einsum("bthd,chd->bthc", z, w_o))  # [B, T, H, C]
            return result.sum(2) + self.c_proj.bias  # [B, T, C]
        return self.c_proj(z.reshape(B, T, C))  # [B, T, C]


class MLP(nn.Module):
    """Feed-forward layer: d_model → d_mlp, tanh-approximate GELU, → d_model."""

    def __init__(self, config: GPT2Config, layer: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_mlp)
        self.c_proj = nn.Linear(config.d_mlp, config.n_embd)
        names = layer_names(layer)
        self.name_pre, self.name_post = names["pre"], names["post"]

    def forward(self, x: torch.Tensor, rec: Recorder | PassRecorder | None) -> torch.Tensor:
        pre = hook(rec, self.name_pre, self.c_fc(x))  # [B, T, d_mlp]
        post = _gelu(pre)  # [B, T, d_mlp]
        # Kept as pre (which a recording keeps anyway) and put through GELU again when read: the
        # pass frees `post` after c_proj, and the next layer reuses its memory.
        if rec is not None and not rec.defer(self.name_post, _gelu, pre):
            post = hook(rec, self.name_post, post)  # edited, or not kept
        return self.c_proj(post)  # [B, T, C]


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(·))."""

    def __init__(self, config: GPT2Config, layer: int) -> None:
        super().__init__()
        self.names = n = layer_names(layer)
        self.ln_1 = LayerNorm(config, n["ln1_scale"], n["ln1_normalized"])
        self.attn = Attention(config, layer)
        self.ln_2 = LayerNorm(config, n["ln2_scale"], n["ln2_normalized"])
        self.mlp = MLP(config, layer)

    def forward(self, x: torch.Tensor, segments: Segments) -> torch.Tensor:
        n, rec = self.names, segments.recorder
        x = hook(rec, n["resid_pre"], x)  # [B, T, C]
        attn_out = hook(rec, n["attn_out"], self.attn(self.ln_1(x, rec), segments))  # [B, T, C]
        x = hook(rec, n["resid_mid"], x + attn_out)  # [B, T, C]
        mlp_out = hook(rec, n["mlp_out"], self.mlp(self.ln_2(x, rec), rec))  # [B, T, C]
        return hook(rec, n["resid_post"], x + mlp_out)  # [B, T, C]


class GPT2(nn.Module):
    """The GPT-2 language model. Shared safely across threads: it holds no per-call state."""

    def __init__(self, config: GPT2Config, name: str = "random") -> None:
        super().__init__()
        self.config = config
        self.name = name  # where the weights came from, for display
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = LayerNorm(config, _LN_F_SCALE, _LN_F_NORMALIZED)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._hook_names = tuple(hook_names_for(config.n_layer))  # a tuple: Recorder.bind caches by it
        self.apply(self._init_weights)
        for block in self.h:  # GPT-2's scaled init of the projections into the residual stream
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wte.weight.dtype

    def hook_names(self) -> list[str]:
        """Every hook point, in forward order."""
        return list(self._hook_names)

    @property
    def W_U(self) -> torch.Tensor:
        """The unembedding [vocab, d_model] (the token embedding when tied)."""
        return self.wte.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        recorder: Recorder | None = None,
    ) -> torch.Tensor:
        """Logits [batch, pos, vocab] for token ids `idx` [batch, pos] that follow the cache's
        committed positions. The cache holds the new keys and values but is not moved on: commit
        them (`cache.commit`) once the result is taken."""
        return self.unembed(self.run_blocks(idx, cache, recorder), recorder)

    def run_blocks(self, idx: torch.Tensor, cache: KVCache | None = None,
                   recorder: Recorder | None = None) -> torch.Tensor:
        """The residual stream leaving the last block, [batch, pos, d_model], for token ids `idx`
        [batch, pos] that follow the cache's committed positions (`run_segments` of one segment;
        the cache is not moved on)."""
        return self.run_segments(idx, Segments.one(idx.shape[1], cache, recorder))

    def run_segments(self, idx: torch.Tensor, segments: Segments) -> torch.Tensor:
        """The residual stream leaving the last block, [batch, N, d_model], for token ids `idx`
        [batch, N] divided into `segments`: embeddings at each sequence's own positions, then
        every block. Every forward pass of the model runs here. Caches get the new keys and values
        after their committed positions and are not moved on (see `Segments`)."""
        B, N = idx.shape
        if sum(segments.lengths) != N:
            raise ValueError(f"The segments cover {sum(segments.lengths)} positions, not the {N} given.")
        if len(segments.lengths) > 1 and B != 1:
            raise ValueError("Sequences packed along the positions need a batch of 1.")
        pasts = segments.pasts
        for past, length in zip(pasts, segments.lengths, strict=True):
            if past + length > self.config.n_positions:
                raise PromptError(f"{past + length} tokens exceed the model's context of "
                                  f"{self.config.n_positions}.")
        for recorder in segments.recorders:
            if recorder is not None:
                recorder.bind(self._hook_names)
        rec = segments.recorder
        pos = torch.cat([torch.arange(past, past + length, device=idx.device)
                         for past, length in zip(pasts, segments.lengths, strict=True)])  # [N]
        tok_emb = hook(rec, _EMBED, self.wte(idx))  # [B, N, C]
        pos_emb = hook(rec, _POS_EMBED, self.wpe(pos).expand(B, N, -1))  # [B, N, C]
        x = tok_emb + pos_emb
        for block in self.h:
            x = block(x, segments)
        return x

    def last_logits(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        recorder: Recorder | None = None,
    ) -> torch.Tensor:
        """Logits [batch, vocab] after the last position of `idx` only, as `forward` computes them
        there. Only that position goes through ln_f and W_U: all of them would be [pos, 50257]
        floats, about a third of gpt2's forward pass at 1,024 tokens."""
        return self.unembed(self.run_blocks(idx, cache, recorder)[:, -1:], recorder)[:, -1]

    @torch.inference_mode()
    def next_token_logits(self, ids: Sequence[int], edits: Mapping[str, Edit] | None = None) -> torch.Tensor:
        """[vocab] float32 logits for the token after `ids` (with `edits`, as `run_with_capture`
        takes them, applied on the way), on the CPU."""
        idx = torch.tensor([self.check_ids(ids)], dtype=torch.long, device=self.device)  # [1, pos]
        recorder = Recorder([], edits) if edits else None
        return self.last_logits(idx, None, recorder)[0].float().cpu()

    def unembed(self, resid: torch.Tensor, recorder: Recorder | PassRecorder | None = None) -> torch.Tensor:
        """Logits [..., vocab] of a residual-stream tensor [..., d_model]: ln_f, then W_U."""
        return F.linear(self.ln_f(resid, recorder), self.W_U)

    def new_cache(self, capacity: int | None = None, batch: int = 1) -> KVCache:
        """An empty key/value cache for up to `capacity` positions (default: the context)."""
        return KVCache(self.config, batch, capacity or self.config.n_positions,
                       self.device, self.dtype)

    def check_ids(self, ids: Sequence[int], reserve: int = 0) -> list[int]:
        """`ids` as a list, or a PromptError that says what is wrong with them.

        `reserve` positions of the context must stay free (1 when a token is to be generated); a
        prompt too long gets the same message either way (`errors.prompt_too_long`).
        """
        ids = [int(i) for i in ids]
        if not ids:
            raise PromptError(EMPTY_PROMPT)
        vocab = self.config.vocab_size
        bad = [i for i in ids if not 0 <= int(i) < vocab]
        if bad:
            raise PromptError(f"Token ids {bad[:5]} are outside this model's vocabulary (0..{vocab - 1}).")
        if len(ids) > self.config.n_positions - reserve:
            raise PromptError(prompt_too_long(len(ids), self.config.n_positions))
        return ids

    @torch.inference_mode()
    def run_with_capture(
        self,
        ids: Sequence[int],
        names: Iterable[str] | None = None,
        edits: Mapping[str, Edit] | None = None,
        cache: KVCache | None = None,
        record_as: Mapping[str, Edit] | None = None,
        with_logits: bool = True,
    ) -> Trace:
        """Run one sequence and record the hook points in `names` (all when None).

        `edits` replaces activations on the way (e.g. zero one head of `hook_z`). With `cache`,
        `ids` follow the positions already in it and are committed to it once the run has
        succeeded; the trace then starts at the cache's length. `record_as` converts what is kept
        (`Recorder`); `with_logits=False` skips the unembedding ([pos, 50257] floats, 200 MB at
        1,024 tokens) and leaves `trace.logits` None.
        """
        start = cache.length if cache is not None else 0
        ids = self.check_ids(ids)
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, pos]
        rec = Recorder(names, edits, record_as)
        resid = self.run_blocks(idx, cache, rec)  # [1, pos, d_model]
        if with_logits:
            logits = self.unembed(resid, rec)  # [1, pos, vocab]
        else:
            self.ln_f(resid, rec)  # ln_f's hooks are still recorded
            logits = None
        if cache is not None:
            cache.commit(len(ids))
        return Trace(rec.tensors, logits, ids, start, self.config, self.name)
