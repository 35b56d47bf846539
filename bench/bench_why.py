"""Time what the Why-this-token page computes for one step: the recording it reads, direct logit
attribution and gradient × input saliency, on gpt2-small sized random weights at 20 and 1,000
tokens. Target on this 2-core CPU: attribution + saliency under 2 s at 1,000 tokens (the page
records a sequence once and reuses it for every step, so the recording is timed apart). Saliency
runs as the app runs it (`saliency_in_bf16`): float32 below 256 positions, bfloat16 from there
(its float32 time is printed beside it).
Usage: .venv/bin/python bench/bench_why.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

import torch  # noqa: E402

import gpt2viz  # noqa: E402
from gpt2viz.attribution import (  # noqa: E402
    attribution_names,
    direct_logit_attribution,
    saliency,
    saliency_in_bf16,
)


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = gpt2viz.GPT2(gpt2viz.GPT2Config()).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; gpt2-small shape, random weights; "
          f"median of {args.repeats}\n")
    names = attribution_names(model.config.n_layer)
    for n in (20, 1000):
        ids = torch.randint(0, 50000, (n,), generator=torch.Generator().manual_seed(n)).tolist()
        bf16 = saliency_in_bf16(n - 1)
        record, dla, sal, sal32 = [], [], [], []
        for _ in range(args.repeats):
            t, trace = timed(model.run_with_capture, ids, names)
            record.append(t)
            target, distractor = trace.logits[-1].topk(2).indices.tolist()
            dla.append(timed(direct_logit_attribution, model, trace, n - 1, target, distractor)[0])
            sal.append(timed(saliency, model, ids, n - 1, target, distractor, bf16)[0])
            if bf16:
                sal32.append(timed(saliency, model, ids, n - 1, target, distractor)[0])
        r, d, s = (statistics.median(x) for x in (record, dla, sal))
        met = "met" if d + s < 2 else "MISSED"
        verdict = "" if n < 1000 else f"  (target: attribution + saliency < 2 s: {met})"
        kind = "bfloat16" if bf16 else "float32"
        also = f"; float32 saliency {statistics.median(sal32):.3f} s" if bf16 else ""
        print(f"{n:5d} tokens: record {r:.3f} s + attribution {d:.3f} s + saliency ({kind}) {s:.3f} s"
              f"{verdict}{also}")


if __name__ == "__main__":
    main()
