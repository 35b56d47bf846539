"""Time the app's path on the bundled gpt2viz-mini: a 64-token prompt + 32 generated tokens, greedy,
every hook point recorded at every step.

Not a test: it prints the time on this machine next to the figure the model card recorded on the
training machine. The prompt is tokens 1..64 of the committed held-out sample
(assets/gpt2viz-mini/val_sample.txt), as training/evaluate.py times it.

    .venv/bin/python bench/bench_bundled.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

import gpt2viz  # noqa: E402
from gpt2viz.loading import BUNDLED  # noqa: E402
from training.evaluate import generation_seconds  # noqa: E402
from training.prepare import encode_sample  # noqa: E402

PROMPT_TOKENS = 64
NEW_TOKENS = 32


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed runs after one untimed warm-up")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    folder = BUNDLED[gpt2viz.BUNDLED_NAME]
    model = gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")
    tok = gpt2viz.load_tokenizer()
    prompt = encode_sample(tok, (folder / "val_sample.txt").read_text())[1:PROMPT_TOKENS + 1]

    steps = list(gpt2viz.generate(model, tok, prompt, max_new_tokens=NEW_TOKENS, temperature=0.0))
    recorded = len(steps[-1].trace.names())
    if len(steps) != NEW_TOKENS:
        sys.exit(f"generation stopped after {len(steps)} of {NEW_TOKENS} tokens ({steps[-1].stop_reason})")
    times = [generation_seconds(model, tok, prompt, NEW_TOKENS) for _ in range(a.repeats)]
    card = json.loads((folder / "training.json").read_text())["generation_64_plus_32_seconds"]
    print(f"gpt2viz-mini, {PROMPT_TOKENS}-token prompt + {NEW_TOKENS} generated tokens, "
          f"{recorded} hook points recorded per step, {torch.get_num_threads()} threads:")
    print(f"  median {statistics.median(times):.3f} s, min {min(times):.3f} s over {a.repeats} runs "
          f"(the model card's figure, on the training machine: {card:.2f} s)")


if __name__ == "__main__":
    main()
