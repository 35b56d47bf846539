"""Toy induction-head experiment: does `gpt2viz.GPT2` form an induction head on repeated random
tokens within minutes on a CPU, and which piece of the real training recipe stops it?

The plain toy (the defaults) is the textbook setting: a 2-layer model with a vocabulary of a small
pool of ids plus one <bos>, trained on windows of `--seq-len` random pool ids after <bos> in which a
block r of `--len-min`..`--len-max` ids at a random offset is followed by a copy of itself
(`toy_windows`), with the full softmax, the loss counted only on the second copy's tokens that
copying can predict (r[1:] of the second copy; its r[0] follows the end of the first copy and is
as unpredictable as the rest). AdamW at a constant learning rate, float32. The length and offset
must vary: with one fixed layout a layer-0 head copies from a fixed distance (an "induction score"
of 0.8 at step 100 with no induction circuit), and with the copy always ending at the window's end
the model found another positional circuit; see TOY_INDUCTION.md.

Each `--*` switch below puts back one piece of `training/` (imported, not re-implemented):

- `--loss pool`: the loss of train.py's synthetic steps (`objectives.pool_loss`: only the counted
  targets, softmax over the pool ids) instead of the full softmax over the model's vocabulary;
- `--real-vocab`: the model has GPT-2's 50257 ids (unembedding tied to wte), the blocks draw their
  ids from a pool of `--pool` ids (a random subset of `--pool` ids spread over the vocabulary),
  and <bos> is <|endoftext|>;
- `--schedule real`: `train.lr_at` (warm-up, cosine decay over `--steps`), AdamW with weight decay
  on matrices and betas (0.9, 0.95), gradient clipping and bf16 autocast, as train.py does;
- `--n-layer/--n-head/--d-model/--n-positions`: the model size (gpt2viz-mini: 4/4/192/512).

Every `--log-every` steps it prints, on a fixed held-out set of toy windows: the loss of
the second copy (predictable tokens) and of the first copy (should stay ≈ log(pool)), and the
best induction and previous-token heads (`gpt2viz.analysis` scores) on [bos] + r + r, r being
`--eval-len` ids of `repeated_random_tokens` (4 sequences, seed 0) mapped through the pool.

    .venv/bin/python -m training.toy_induction --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import gpt2viz
from gpt2viz.analysis import (
    attention_patterns,
    best_head,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
)
from gpt2viz.tokenizer import EOT_ID

from .objectives import lm_loss, pool_loss
from .prepare import target_masks, toy_batch, toy_windows
from .train import TrainConfig, lr_at

REAL_VOCAB = 50257


def copy_losses(model: gpt2viz.GPT2, w: np.ndarray, L: np.ndarray, S: np.ndarray) -> tuple[float, float]:
    """(second-copy loss on r[1:] of the second copy, first-copy loss on r) of `toy_windows`
    (w [B, T+1]), full softmax over the model's vocabulary."""
    T = w.shape[1] - 1
    x, y = torch.from_numpy(w[:, :-1]), torch.from_numpy(w[:, 1:])  # [B, T] each
    with torch.no_grad():
        logits = model(x).float()  # [B, T, vocab]
    nll = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # [B, T]
    second, first = (torch.from_numpy(m) for m in target_masks(T, L, S))
    return float(nll[second].mean()), float(nll[first].mean())


def best_role_heads(model: gpt2viz.GPT2, block_len: int, pool: np.ndarray, bos: int,
                n_seqs: int = 4, seed: int = 0) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
    """(best induction head, best previous-token head), each (layer, head, score), on `n_seqs`
    windows [bos] + r + r of `repeated_random_tokens` (ids < len(pool), mapped through `pool`)."""
    seqs = [[bos] + pool[s].tolist()
            for s in repeated_random_tokens(block_len, n_seqs, seed, vocab_size=len(pool), bos=None)]
    ind, prev = [], []
    for s in seqs:
        pat = attention_patterns(model, s)  # [layer, head, T, T]
        ind.append(induction_score(pat, block_len, prefix=1))
        prev.append(previous_token_score(pat))
    return best_head(torch.stack(ind).mean(0)), best_head(torch.stack(prev).mean(0))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.toy_induction", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--pool", type=int, default=128, help="ids the blocks draw from")
    a("--len-min", type=int, default=6, help="shortest block r of the toy windows")
    a("--len-max", type=int, default=24, help="longest block r")
    a("--seq-len", type=int, default=48, help="window length T (predicted tokens per window)")
    a("--eval-len", type=int, default=20, help="block length of the induction / previous-token test")
    a("--batch", type=int, default=64)
    a("--steps", type=int, default=3000, help="planned steps (also the schedule's length)")
    a("--minutes", type=float, default=5.0, help="wall-clock budget")
    a("--lr", type=float, default=1e-3)
    a("--n-layer", type=int, default=2)
    a("--n-head", type=int, default=4)
    a("--d-model", type=int, default=64)
    a("--n-positions", type=int, default=64)
    a("--loss", choices=("full", "pool"), default="full")
    a("--real-vocab", action="store_true", help="vocab 50257, <bos> = <|endoftext|>, pool ids spread "
                                                "over the vocabulary")
    a("--schedule", choices=("const", "real"), default="const")
    a("--warmup", type=int, default=20, help="--schedule real")
    a("--weight-decay", type=float, default=0.1, help="--schedule real")
    a("--bf16", type=int, default=1, help="--schedule real: bf16 autocast (1/0)")
    a("--log-every", type=int, default=100)
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=1)
    a("--json", type=str, default="", help="write the log as JSON to this file")
    return p


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.real_vocab:
        vocab, bos = REAL_VOCAB, EOT_ID
        pool = np.sort(np.random.default_rng(args.seed + 7).choice(EOT_ID, size=args.pool, replace=False))
    else:
        vocab, bos = args.pool + 1, args.pool  # ids 0..pool-1, then <bos>
        pool = np.arange(args.pool)
    pool = pool.astype(np.int64)
    pool_ids = torch.from_numpy(pool)  # sorted
    cfg = gpt2viz.GPT2Config(vocab_size=vocab, n_positions=args.n_positions, n_embd=args.d_model,
                             n_layer=args.n_layer, n_head=args.n_head)
    model = gpt2viz.GPT2(cfg, name="toy")
    params = list(model.parameters())
    real = args.schedule == "real"
    if real:
        tcfg = TrainConfig(lr=args.lr, warmup=args.warmup, steps=args.steps, weight_decay=args.weight_decay)
        opt = torch.optim.AdamW([{"params": [q for q in params if q.dim() >= 2],
                                  "weight_decay": tcfg.weight_decay},
                                 {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}],
                                lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    else:
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    bf16 = real and bool(args.bf16)
    eval_w, eval_L, eval_S = toy_windows(np.random.default_rng(10_000 + args.seed), 128, args.seq_len,
                                         args.len_min, args.len_max, pool, bos)
    print("settings:", json.dumps(vars(args)), f"vocab {vocab}, parameters "
          f"{sum(q.numel() for q in params):,}, uniform loss log(pool) = {math.log(args.pool):.3f}",
          flush=True)
    log: list[dict] = []
    t0 = time.time()
    step = 0
    while step < args.steps and time.time() - t0 < args.minutes * 60:
        if real:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, tcfg)
        x, y, _ = toy_batch(rng, args.batch, args.seq_len, args.len_min, args.len_max, pool, bos)
        model.train()
        if args.loss == "pool":
            loss = pool_loss(model, x, y, pool_ids, bf16)
        else:
            loss = lm_loss(model, x, y, bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if real:
            torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == 1 or step == args.steps:
            model.eval()
            second, first = copy_losses(model, eval_w, eval_L, eval_S)
            (il, ih, isc), (pl, ph, ps) = best_role_heads(model, args.eval_len, pool, bos)
            row = {"step": step, "train_loss": float(loss.detach()), "second_copy": second,
                   "first_copy": first, "induction": [il, ih, isc], "prev_token": [pl, ph, ps],
                   "seconds": time.time() - t0}
            log.append(row)
            print(f"step {step:5d}  train {row['train_loss']:.3f}  second-copy {second:.3f}  first-copy "
                  f"{first:.3f}  induction {il}.{ih}={isc:.3f}  prev-token {pl}.{ph}={ps:.3f}  "
                  f"{row['seconds']:.0f} s", flush=True)
    formed = next((r for r in log if r["induction"][2] >= 0.4), None)
    best = max(log, key=lambda r: r["induction"][2])
    summary = {"settings": vars(args), "steps": step, "seconds": time.time() - t0, "final": log[-1],
               "best_induction": best["induction"], "first_step_induction_ge_0.4":
               formed["step"] if formed else None, "log": log}
    print(f"done: {step} steps in {summary['seconds']:.0f} s; final second-copy loss "
          f"{log[-1]['second_copy']:.3f} (uniform {math.log(args.pool):.3f}); best induction head "
          f"{best['induction'][0]}.{best['induction'][1]} = {best['induction'][2]:.3f}; induction ≥ 0.4 "
          f"first at step {summary['first_step_induction_ge_0.4']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


def main(argv: list[str] | None = None) -> None:
    run(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
