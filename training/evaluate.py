"""The figures of a trained model: losses, head scores, greedy continuations, generation time.

`evaluate_saved` measures the weights exactly as `gpt2viz.load_model` gives them (float16 file,
float32 on the CPU) and returns what training.json records; tests/test_bundled_model.py
recomputes the committed figures with the same functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import gpt2viz
from gpt2viz import GPT2, GPT2Tokenizer
from gpt2viz.analysis import best_head, induction_scores, previous_token_scores, repeated_random_tokens
from gpt2viz.interventions import ablate_heads

from .objectives import lm_loss
from .prepare import encode_sample, known_ids, synthetic_pool

# Prompts of the model card's greedy continuations.
CARD_PROMPTS = [
    "The jury said that",
    "def __init__(self",
    "I love the color black, I hope someday to have a cat like that.",
    "In the afternoon, the",
    "The function returns",
]
GREEDY_TOKENS = 24
INDUCTION = {"seq_len": 50, "n_seqs": 4, "seed": 0}  # the repeated-random-token test
FREQUENT = 2048  # the induction test also runs on the most frequent training ids ...
KNOWN = (4096, 4096)  # ... and on the ids ranked 4097..8192, well outside that pool
TRAIN_WINDOWS = 32  # fresh training windows in the final training loss


@torch.no_grad()
def eval_loss(model: GPT2, ids: np.ndarray | list[int], window: int, bf16: bool = False) -> tuple[float, int]:
    """Mean next-token loss over consecutive non-overlapping windows of `window` predicted tokens
    (the last may be shorter). Returns (loss, number of predicted tokens)."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=model.device)  # [N]
    total, n = 0.0, 0
    for s in range(0, len(ids) - 1, window):
        chunk = ids[s:s + window + 1]
        x, y = chunk[:-1][None], chunk[1:][None]  # [1, <= window]
        total += float(lm_loss(model, x, y, bf16)) * y.numel()
        n += y.numel()
    return total / n, n


def val_windows(val: np.ndarray, n_tokens: int, window: int) -> list[np.ndarray]:
    """`n_tokens // window` windows of window+1 tokens at evenly spaced offsets over the whole
    validation split, so that both sources count in proportion."""
    n = max(1, n_tokens // window)
    starts = np.linspace(0, len(val) - window - 1, n).astype(np.int64)
    return [val[s:s + window + 1] for s in starts]


def role_scores(model: GPT2, ids: list[int], seq_len: int = 50, n_seqs: int = 4,
                seed: int = 0, known: Sequence[int] = ()) -> tuple[torch.Tensor, ...]:
    """(previous-token scores on `ids`, induction scores on repeated random tokens of the whole
    vocabulary[, induction scores on random tokens drawn from `known`]), each [layer, head]."""
    scores = (previous_token_scores(model, [ids]),
              induction_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=seed))
    if len(known):
        scores += (induction_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=seed, ids=known),)
    return scores


@torch.no_grad()
def second_copy_loss(model: GPT2, seq_len: int, n_seqs: int, seed: int, edits: dict | None = None) -> float:
    """Mean next-token loss on r[1:] of the second copy of the induction test's sequences
    ([bos] + r + r, ids from the whole vocabulary): what an induction head makes predictable."""
    losses = []
    for s in repeated_random_tokens(seq_len, n_seqs, seed, model.config.vocab_size):
        logits = model.run_with_capture(s, names=[], edits=edits).logits  # [2L+1, vocab]
        predicted = torch.arange(seq_len + 1, 2 * seq_len)  # positions holding r[0..L-2] of copy 2
        targets = torch.tensor(s)[predicted + 1]
        losses.append(torch.nn.functional.cross_entropy(logits[predicted], targets))
    return float(torch.stack(losses).mean())


def induction_checks(model: GPT2, train: np.ndarray, best_induction: tuple[int, int]) -> dict:
    """The induction test on two other id sets (the most frequent training ids, the pool of the
    first synthetic steps; less frequent ids outside it, which the model met in text and, with
    `--synthetic-pool-later 0`, in the later synthetic windows), and what zero-ablating the best
    induction head (`best_induction`: (layer, head) on the standard test, as `role_scores` found
    it) does to the second-copy loss of the standard test."""
    figures = {}
    for name, ids in (("frequent", synthetic_pool(train, FREQUENT)), ("known", known_ids(train, *KNOWN))):
        scores = induction_scores(model, ids=ids.tolist(), **INDUCTION)
        layer, head, score = best_head(scores)
        figures[name] = {"ids": ids.tolist(), "best": {"layer": layer, "head": head, "score": score},
                         "scores": scores.tolist()}
        if name == "known":
            figures[name]["ranks"] = [KNOWN[0] + 1, KNOWN[0] + len(ids)]  # frequency ranks, from 1
    layer, head = best_induction
    edits = ablate_heads([(layer, head)], "zero", config=model.config)
    figures["ablation"] = {"head": [layer, head], "second_copy_loss": second_copy_loss(model, **INDUCTION),
                           "ablated": second_copy_loss(model, **INDUCTION, edits=edits)}
    return figures


def greedy(model: GPT2, tok: GPT2Tokenizer, prompt: str, n: int = GREEDY_TOKENS) -> str:
    """The text of `n` tokens generated at temperature 0 after `prompt`."""
    steps = gpt2viz.generate(model, tok, prompt, max_new_tokens=n, temperature=0.0, record=False)
    return "".join(s.text for s in steps)


def generation_seconds(model: GPT2, tok: GPT2Tokenizer, prompt: list[int], new_tokens: int = 32) -> float:
    """Wall time of the app's path: generating up to `new_tokens` greedily after `prompt`, every
    hook point recorded at every step (generation stops early if the model writes <|endoftext|>)."""
    start = time.perf_counter()
    list(gpt2viz.generate(model, tok, prompt, max_new_tokens=new_tokens, temperature=0.0))
    return time.perf_counter() - start


def evaluate_saved(folder: Path, tok: GPT2Tokenizer, train: np.ndarray, val: np.ndarray, *,
                   window: int, final_eval_tokens: int, seed: int) -> dict:
    """The figures of the weights saved in `folder` (and of its val_sample.txt), in the order and
    with the definitions training.json records them."""
    model = gpt2viz.load_model(str(folder), device="cpu")
    windows = val_windows(val, final_eval_tokens, window)
    val_loss = float(np.mean([eval_loss(model, w, window)[0] for w in windows]))
    val_n = len(windows) * window
    print(f"val loss {val_loss:.4f} (ppl {math.exp(val_loss):.1f}) on {val_n:,} held-out tokens", flush=True)
    # the final weights on fresh natural-text windows of train (no repeated spans)
    starts = np.random.default_rng(seed + 1).integers(0, len(train) - window - 1, size=TRAIN_WINDOWS)
    train_loss = float(np.mean([eval_loss(model, train[s:s + window + 1], window)[0] for s in starts]))

    sample_ids = encode_sample(tok, (folder / "val_sample.txt").read_text())
    n_pos = model.config.n_positions
    sample_loss, sample_n = eval_loss(model, sample_ids, n_pos)
    prev_ids = sample_ids[:n_pos]
    prev, ind = role_scores(model, prev_ids, **INDUCTION)
    pl, ph, ps = best_head(prev)
    il, ih, isc = best_head(ind)
    print(f"best previous-token head {pl}.{ph} = {ps:.3f}; best induction head {il}.{ih} = {isc:.3f}")
    print("previous-token scores:\n", prev.numpy().round(3))
    print("induction scores:\n", ind.numpy().round(3))

    checks = induction_checks(model, train, (il, ih))
    print(f"induction on frequent ids {checks['frequent']['best']}, on known ids {checks['known']['best']}; "
          f"second-copy loss {checks['ablation']['second_copy_loss']:.3f}, with head "
          f"{checks['ablation']['head']} zeroed {checks['ablation']['ablated']:.3f}")
    samples = {p: greedy(model, tok, p) for p in CARD_PROMPTS}
    for p, c in samples.items():
        print(f"  {p!r} -> {c!r}")
    gen_seconds = generation_seconds(model, tok, sample_ids[1:65])
    return {
        "file_bytes": (folder / "model.safetensors").stat().st_size,
        "train_loss": train_loss,
        "train_loss_definition": f"mean next-token loss of the saved weights on {TRAIN_WINDOWS} random "
                                 f"unmodified {window}-token windows of train (seed+1)",
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss),
        "val_tokens": val_n,
        "val_definition": f"{len(windows)} windows of {window} predicted tokens at evenly spaced offsets "
                          f"(numpy linspace) over all {len(val):,} tokens of data/corpus/val.txt as "
                          "tokenized by training/prepare.py (documents prefixed by <|endoftext|>); "
                          "mean of the window losses",
        "val_sample": {
            "file": "val_sample.txt",
            "encoding": "[50256] + tok.encode(text, allowed_special={'<|endoftext|>'})",
            "window": n_pos,
            "tokens": len(sample_ids),
            "loss": sample_loss,
            "predicted_tokens": sample_n,
        },
        "previous_token": {"ids": f"first {len(prev_ids)} tokens of the encoded val_sample.txt",
                           "best": {"layer": pl, "head": ph, "score": ps},
                           "scores": prev.tolist()},
        "induction": {**INDUCTION, "definition": "[50256] + r + r, r = seq_len uniform ids < 50256 "
                      "(torch.Generator seeded); mean over second-copy queries of attention to q-L+1",
                      "best": {"layer": il, "head": ih, "score": isc}, "scores": ind.tolist()},
        "induction_checks": checks,
        "greedy_samples": samples,
        "generation_64_plus_32_seconds": gen_seconds,
    }
