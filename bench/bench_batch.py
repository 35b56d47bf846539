"""advance_together against advancing generations one after another, and against Hugging Face's
batched decode, on the same random gpt2-small weights (not a test: it prints figures).

For each batch size B: B generations of different 64-token prompts write `--tokens` tokens each,
greedy, unrecorded (as the app's class writes them), either

  alone      each generation's own advance(), one after another, step by step;
  together   gpt2viz.advance_together over all B at each step;

and Hugging Face's GPT2LMHeadModel decodes the same prompts as one batch with its key/value cache
(the prompts all have 64 tokens: no padding). Prints tokens/s for each and the ratio of a
batched decode step (the prompt's pass excluded) to Hugging Face's. Targets (issue 21, at B = 8):
together >= 2.5x the tokens/s of alone; a batched step <= 1.2x Hugging Face's.

    .venv/bin/python bench/bench_batch.py [--batches 1,8,20] [--tokens 16] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

import gpt2viz  # noqa: E402

PROMPT_TOKENS = 64
TARGET_SPEEDUP, TARGET_STEP_RATIO = 2.5, 1.2


def prompts(n: int, vocab: int) -> list[list[int]]:
    """`n` different prompts of PROMPT_TOKENS random ids (seeded)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, min(vocab, gpt2viz.EOT_ID), (n, PROMPT_TOKENS), generator=g).tolist()


def ours(model, tok, ids: list[list[int]], tokens: int, together: bool) -> tuple[float, float]:
    """(seconds for every token, median seconds of one later step) writing `tokens` for each prompt."""
    generations = [gpt2viz.Generation(model, tok, p, max_new_tokens=tokens, record=False) for p in ids]
    steps: list[float] = []
    start = time.perf_counter()
    for index in range(tokens):
        t0 = time.perf_counter()
        if together:
            gpt2viz.advance_together(generations)
        else:
            for generation in generations:
                generation.advance()
        if index > 0:
            steps.append(time.perf_counter() - t0)
    return time.perf_counter() - start, statistics.median(steps) if steps else float("nan")


@torch.inference_mode()
def hugging_face(hf, ids: list[list[int]], tokens: int) -> tuple[float, float]:
    """The same, as one batch through transformers' own cache (greedy)."""
    from transformers import DynamicCache

    batch = torch.tensor(ids)
    steps: list[float] = []
    start = time.perf_counter()
    out = hf(batch, past_key_values=DynamicCache(), use_cache=True)
    for _ in range(tokens - 1):
        t0 = time.perf_counter()
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        out = hf(nxt, past_key_values=out.past_key_values, use_cache=True)
        steps.append(time.perf_counter() - t0)
    return time.perf_counter() - start, statistics.median(steps) if steps else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,8,20")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config()).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        model = gpt2viz.load_model(folder, device="cpu")
    tok = gpt2viz.load_tokenizer()
    print(f"gpt2-small random weights, {PROMPT_TOKENS}-token prompts, {args.tokens} tokens each, "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"{'batch':>5} {'alone tok/s':>12} {'together tok/s':>15} {'HF tok/s':>9} {'speed-up':>9} "
          f"{'step ours':>10} {'step HF':>8} {'ratio':>6}")
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = prompts(batch, model.config.vocab_size)
        runs = {"alone": [], "together": [], "hf": []}
        for _ in range(args.repeats):  # round-robin: a burst of other load hits each alike
            runs["alone"].append(ours(model, tok, ids, args.tokens, together=False))
            runs["together"].append(ours(model, tok, ids, args.tokens, together=True))
            runs["hf"].append(hugging_face(hf, ids, args.tokens))
        total = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
        step = {k: statistics.median(s for _, s in v) for k, v in runs.items()}
        rate = {k: batch * args.tokens / t for k, t in total.items()}
        speedup, ratio = rate["together"] / rate["alone"], step["together"] / step["hf"]
        verdict = ""
        if batch == 8:
            met = speedup >= TARGET_SPEEDUP and ratio <= TARGET_STEP_RATIO
            verdict = "  met" if met else "  MISSED"
        print(f"{batch:>5} {rate['alone']:>12.1f} {rate['together']:>15.1f} {rate['hf']:>9.1f} "
              f"{speedup:>8.2f}x "
              f"{step['together'] * 1000:>8.1f}ms {step['hf'] * 1000:>6.1f}ms {ratio:>6.2f}{verdict}")


if __name__ == "__main__":
    main()
