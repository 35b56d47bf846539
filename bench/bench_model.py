"""Benchmark gpt2viz's GPT-2 against Hugging Face transformers on the same random gpt2 weights.

Not a test: it prints ratios measured in one process, so the numbers compare like with like on
whatever machine runs it. Both models load the same random gpt2-small checkpoint (HF
`GPT2LMHeadModel(GPT2Config())`, torch.manual_seed(0), saved to a temporary folder; ours through
`gpt2viz.load_model`). transformers is needed only here and in the tests.

Cases (ratio = our time / HF time, so < 1 means we are faster):

  forward       our `model(idx)` (no recorder)         vs HF forward, HF's default attention (sdpa)
  forward       our `model(idx)` (no recorder)         vs HF forward, eager attention
  record        our `run_with_capture(ids)`, all hooks  vs HF eager, output_attentions=True,
                                                          output_hidden_states=True
  generate      `gpt2viz.generate(...)`, full recording vs HF `generate`, greedy, use_cache
  generate      `gpt2viz.generate(..., record=False)`   vs HF `generate` (reference)

Forward lengths are sequence lengths. Generation starts from an 8-token prompt and asks for
N = min(L, context - 8) new tokens (16, 128, 1016 for the default lengths); tok/s counts the new
tokens. Targets (from the issue): record ratio <= 1.0, generate-with-recording ratio <= 1.5.

    PYTHONPATH=. python bench/bench_model.py [--device cpu|cuda] [--lengths 16,128,1024]
                                             [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

import gpt2viz  # noqa: E402

PROMPT = "The quick brown fox jumps over the lazy"  # 8 gpt2 tokens
TARGETS = {"record": 1.0, "generate": 1.5}  # max time ratio ours/HF (generate: with recording)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
          warmup: int = 1) -> dict[str, float]:
    """Median wall time in seconds of each function, after `warmup` untimed calls of each.

    The functions run round-robin (a, b, c, a, b, c, ...) so that a burst of load from other
    processes on the machine hits every side of a comparison alike rather than one of them.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def repeats_for(length: int, base: int, generation: bool = False) -> int:
    """Fewer repeats for the long cases so the whole run stays within a few minutes on 2 cores."""
    if length >= 512:
        return 1 if generation else min(base, max(3, base // 2))  # one run at 1,024 swung 0.87-1.41
    if generation and length > 32:
        return max(1, base // 2)
    return base


def build_models(device: torch.device, folder: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ref = GPT2LMHeadModel(GPT2Config())
    ref.save_pretrained(folder)
    del ref
    hf = {  # "default": whatever HF picks when not told (sdpa in transformers 5)
        "default": GPT2LMHeadModel.from_pretrained(folder).to(device).eval(),
        "eager": GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager")
        .to(device).eval(),
    }
    for m in hf.values():  # greedy, no "pad_token_id" warning; EOS stops both models alike
        m.generation_config.pad_token_id = m.config.eos_token_id
    ours = gpt2viz.load_model(folder, device=device)
    return ours, hf


Row = tuple[str, int, str, float, float, str]  # case, length, unit, ours (s), HF (s), target


def bench_forward(ours, hf, ids: list[int], device: torch.device, repeats: int,
                  checks: list[str]) -> list[Row]:
    """Plain forward vs HF (default and eager attention), full recording vs HF's own outputs."""
    L = len(ids)
    idx = torch.tensor([ids], device=device)
    with torch.inference_mode():
        diff = (ours(idx) - hf["default"](idx).logits).abs().max().item()
        trace = ours.run_with_capture(ids)
        out = hf["eager"](idx, output_attentions=True, output_hidden_states=True)
        pdiff = max((trace["pattern", i] - out.attentions[i][0].cpu())
                    .abs().max().item() for i in range(ours.config.n_layer))
        del trace, out
    bad = not (diff < 1e-3 and pdiff < 1e-4)
    checks.append(f"forward L={L}: max |logit diff| {diff:.2e}, max |pattern diff| {pdiff:.2e}"
                  + (" -- MISMATCH" if bad else ""))

    def plain() -> None:
        with torch.inference_mode():
            ours(idx)

    def hf_fwd(impl: str) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                hf[impl](idx)
        return run

    def record() -> None:
        ours.run_with_capture(ids)

    def hf_record() -> None:
        with torch.inference_mode():
            hf["eager"](idx, output_attentions=True, output_hidden_states=True)

    t = timed({"plain": plain, "hf": hf_fwd("default"), "hf_eager": hf_fwd("eager"),
               "record": record, "hf_record": hf_record}, device, repeats)
    default_attn = hf["default"].config._attn_implementation
    return [
        (f"forward vs HF {default_attn} (default)", L, "ms", t["plain"], t["hf"], ""),
        ("forward vs HF eager", L, "ms", t["plain"], t["hf_eager"], ""),
        ("record all vs HF eager+attn+hidden", L, "ms", t["record"], t["hf_record"], "record"),
    ]


def bench_generate(ours, hf, tok, prompt: list[int], n_new: int, device: torch.device,
                   repeats: int, checks: list[str]) -> list[Row]:
    """Greedy generation of `n_new` tokens: ours with and without recording vs HF generate."""
    prompt_t = torch.tensor([prompt], device=device)
    mask = torch.ones_like(prompt_t)
    state: dict[str, list[int]] = {}

    def ours_gen(record: bool, n: int = n_new, key: str | None = None) -> Callable[[], None]:
        def run() -> None:
            steps = list(gpt2viz.generate(ours, tok, prompt, max_new_tokens=n, temperature=0,
                                          record=record))
            if key:
                state[key] = [s.token_id for s in steps]
        return run

    def hf_gen(n: int = n_new, key: str | None = None) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                out = hf["default"].generate(prompt_t, attention_mask=mask, do_sample=False,
                                             max_new_tokens=n, use_cache=True)
            if key:
                state[key] = out[0, len(prompt):].tolist()
        return run

    warmup = 1
    if n_new > 128:  # warm up on a few tokens only; long runs amortise the rest themselves
        for fn in (hf_gen(4), ours_gen(True, 4), ours_gen(False, 4)):
            fn()
        warmup = 0
    t = timed({"hf": hf_gen(key="hf"), "rec": ours_gen(True, key="ours_rec"),
               "plain": ours_gen(False, key="ours")}, device, repeats, warmup=warmup)
    hf_ids, rec_ids, plain_ids = state["hf"], state["ours_rec"], state["ours"]
    if hf_ids == rec_ids == plain_ids:
        checks.append(f"generate N={n_new}: greedy ids agree ({len(hf_ids)} new tokens, "
                      f"{len(set(hf_ids))} distinct)")
    else:
        first = next((i for i, (a, b) in enumerate(zip(hf_ids, rec_ids, strict=False)) if a != b),
                     min(len(hf_ids), len(rec_ids)))
        checks.append(f"generate N={n_new}: greedy ids DIFFER (first at new token {first}; HF "
                      f"{len(hf_ids)} tokens, ours {len(rec_ids)}, ours record=False "
                      f"{len(plain_ids)}{', differs too' if plain_ids != rec_ids else ''})")
    # seconds per token, each side over the tokens it produced (EOS may stop both early)
    per_hf = t["hf"] / len(hf_ids)
    return [
        ("generate, recording all vs HF", n_new, "tok/s", t["rec"] / len(rec_ids), per_hf,
         "generate"),
        ("generate, record=False vs HF", n_new, "tok/s", t["plain"] / len(plain_ids), per_hf, ""),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cpu", "cuda"])
    ap.add_argument("--lengths", default="16,128,1024",
                    help="comma-separated sequence lengths / new-token counts")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed repeats per case (fewer for the long cases, see the header)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: the cores left idle by other processes, "
                         "i.e. cores minus the 1-minute load average, at least 1)")
    args = ap.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available here")
    device = torch.device(args.device)
    cores = os.cpu_count() or 1
    load_before = _load()
    if args.threads:
        threads, why = args.threads, "--threads"
    else:  # oversubscribed OpenMP threads stall on every op; leave busy cores to their owners
        busy = 0 if load_before != load_before else int(load_before + 0.5)  # nan: unknown
        threads = max(1, min(cores, cores - busy))
        why = f"auto: {cores} cores, load average {load_before}"
    torch.set_num_threads(threads)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    warnings.filterwarnings("ignore")

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", threads {torch.get_num_threads()} ({why})")

    with tempfile.TemporaryDirectory() as folder:
        ours, hf = build_models(device, folder)
    tok = gpt2viz.load_tokenizer()
    prompt = tok.encode(PROMPT)
    n_ctx = ours.config.n_positions
    n_params = sum(p.numel() for p in ours.parameters()) / 1e6
    print(f"model: random gpt2-small ({n_params:.0f}M params, seed 0), float32; HF default "
          f"attention: {hf['default'].config._attn_implementation}; generation: "
          f"{len(prompt)}-token prompt {PROMPT!r}, N new tokens, greedy")
    print(f"timing: median of --repeats={args.repeats} after 1 warm-up, the sides interleaved; "
          f"fewer for long cases (forward >= 512: {repeats_for(1024, args.repeats)}; generate "
          f"> 32: {repeats_for(128, args.repeats, True)}, >= 512: 1 run after a 4-token warm-up)")
    print()

    rows: list[Row] = []
    checks: list[str] = []  # correctness guards: a failure means the timings compare different work
    gen = torch.Generator().manual_seed(1)

    for L in lengths:
        if L > n_ctx:
            print(f"skip length {L}: over the context of {n_ctx}")
            continue
        ids = torch.randint(0, ours.config.vocab_size, (L,), generator=gen).tolist()
        rows += bench_forward(ours, hf, ids, device, repeats_for(L, args.repeats), checks)
    for L in lengths:
        n_new = min(L, n_ctx - len(prompt))
        rows += bench_generate(ours, hf, tok, prompt, n_new, device,
                               repeats_for(L, args.repeats, generation=True), checks)
    failed = any("MISMATCH" in c or "DIFFER" in c for c in checks)

    # -- report --------------------------------------------------------------------------------
    w = max(len(r[0]) for r in rows)
    print(f"{'case':<{w}}  {'L / N':>5}  {'ours':>12}  {'HF':>12}  {'ratio':>6}  target")
    print("-" * (w + 50))
    missed = []
    for case, L, unit, t_ours, t_hf, target in rows:
        if unit == "ms":
            a, b = f"{t_ours * 1e3:9.1f} ms", f"{t_hf * 1e3:9.1f} ms"
        else:  # per-token seconds -> tokens/s
            a, b = f"{1 / t_ours:8.1f} tok/s", f"{1 / t_hf:8.1f} tok/s"
        ratio = t_ours / t_hf
        mark = ""
        if target:
            ok = ratio <= TARGETS[target]
            mark = f"<= {TARGETS[target]:.1f} {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(f"{case} @ {L}")
        print(f"{case:<{w}}  {L:>5}  {a:>12}  {b:>12}  {ratio:6.2f}  {mark}")
    print("\nL = sequence length (forward), N = new tokens (generate). ratio = our time / HF time"
          "\n(tok/s rows: HF tok/s / our tok/s); < 1 means we are faster.")
    print("\ncorrectness:")
    for c in checks:
        print("  " + c)
    load_after = _load()
    print(f"\nload average (1 min) before/after: {load_before} / {load_after} on {os.cpu_count()} "
          "cores" + (" -- the machine was busy with other work; timings are noisy"
                     if max(load_before, load_after) > (os.cpu_count() or 1) + 0.5 else ""))
    print("\ntargets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    if failed:
        print("CORRECTNESS GUARD FAILED: ours and HF disagree (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
