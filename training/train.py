"""Train gpt2viz-mini, the small GPT-2-architecture model bundled in assets/gpt2viz-mini/.

Reproducible: a fixed seed, every setting a field of `TrainConfig` with a default, all of them
printed and written to training.json and the model card (README.md) in --out. Settings come
from the defaults, then a --config file (JSON of TrainConfig fields), then the flags given;
relative paths, in a config file as in a flag, are read from the directory you run in (the
repository root, like every command the model card lists).
`--minutes` is a hard wall-clock budget: training stops there (if `--steps` are not done yet)
and the model is evaluated and saved all the same; the card records how many steps ran.

Data: data/corpus/{train,val}.txt from `python -m training.fetch_corpus`, tokenized once and
cached in data/tokens/ (training/prepare.py). Validation loss is always measured on unmodified
held-out text.

    .venv/bin/python -m training.fetch_corpus
    .venv/bin/python -m training.train --config training/config/gpt2viz_mini.json [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gpt2viz
from gpt2viz.analysis import best_head, induction_scores
from gpt2viz.loading import BUNDLED, default_device

from . import CORPUS_DIR, ROOT, TOKENS_DIR
from .card import render_card
from .evaluate import eval_loss, evaluate_saved, role_scores
from .objectives import lm_loss, synthetic_loss
from .prepare import Batches, known_ids, synthetic_pool, tokenize_split, toy_batch, val_sample_text

CONFIG_DIR = Path(__file__).with_name("config")
DEVICES = ("cpu", "cuda")
PATHS = ("corpus", "cache", "out")  # where the run reads and writes, not recorded with the run
# figures of the training run itself, kept by --eval-only (which re-evaluates saved weights)
TRAINING_FIELDS = ("seed", "hyperparameters", "command", "config", "parameters", "steps", "synthetic_steps",
                   "steps_planned",
                   "stopped_by", "tokens_seen", "train_tokens_available", "train_minutes",
                   "train_loss_ema_last", "history", "machine", "wall_minutes", "previous_run",
                   "tokens_seen_total", "steps_total", "train_minutes_total")


def _opt(default: Any, help: str = "") -> Any:
    """A TrainConfig field whose flag shows `help`."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every setting of a training run; each is also a flag (`seq_len` is --seq-len)."""

    corpus: Path = _opt(CORPUS_DIR, "folder of train.txt, val.txt, SOURCES.json")
    cache: Path = _opt(TOKENS_DIR, "folder of the token-id cache")
    out: Path = _opt(BUNDLED[gpt2viz.BUNDLED_NAME], "where the weights, training.json and README.md go")
    seed: int = _opt(1234)
    # model
    n_layer: int = _opt(4)
    n_head: int = _opt(4)
    n_embd: int = _opt(192)
    n_positions: int = _opt(512)
    # optimisation
    seq_len: int = _opt(512, "training window length (tokens)")
    batch_size: int = _opt(2, "windows per step")
    steps: int = _opt(950, "planned steps (sets the LR schedule)")
    hold: int = _opt(0, "steps at the full lr after the warm-up, before the cosine decay starts")
    minutes: float = _opt(48.0, "hard wall-clock budget for training")
    lr: float = _opt(2e-3)
    min_lr_frac: float = _opt(0.1)
    warmup: int = _opt(30)
    weight_decay: float = _opt(0.1)
    beta1: float = _opt(0.9)
    beta2: float = _opt(0.95)
    grad_clip: float = _opt(1.0)
    bf16: int = _opt(1, "bf16 autocast on the training device (1/0)")
    threads: int = _opt(2, "torch CPU threads")
    # repeated-span mixing (for induction heads)
    repeat_frac: float = _opt(0.35, "fraction of text windows with a repeated span")
    random_frac: float = _opt(0.5, "of those, fraction whose repeated span is uniform random tokens")
    repeat_min: int = _opt(10)
    repeat_max: int = _opt(100)
    # synthetic steps (for induction heads: training/TOY_INDUCTION.md)
    synthetic_frac: float = _opt(0.0, "fraction of steps (after --synthetic-first) on synthetic windows: "
                                      "random pool ids with one block r + r at a random offset, the loss "
                                      "only on r[1:] of the second copy, softmax over the pool")
    synthetic_first: int = _opt(0, "the first N steps are all synthetic (the circuit forms before text "
                                   "steps come in)")
    synthetic_batch_size: int = _opt(32, "windows per synthetic step")
    synthetic_seq_len: int = _opt(128, "synthetic window length (tokens)")
    synthetic_len_min: int = _opt(6, "shortest repeated block")
    synthetic_len_max: int = _opt(40, "longest repeated block (at most half the synthetic window)")
    synthetic_pool: int = _opt(0, "synthetic windows draw from the N most frequent training ids "
                                  "(0: every id)")
    synthetic_pool_later: int = _opt(-1, "the pool after --synthetic-first steps (-1: the same; 0: every "
                                         "id): a circuit learnt on frequent ids, then widened to all")
    induction_aux: float = _opt(0.0, "weight of a guide on synthetic steps: the --induction-head's attention "
                                     "from each second-copy token to the token after its earlier "
                                     "occurrence (−log of that weight)")
    induction_head: str = _opt("1.0", "layer.head that --induction-aux guides")
    # evaluation
    eval_every: int = _opt(250)
    eval_tokens: int = _opt(8192, "held-out tokens in the periodic val loss")
    final_eval_tokens: int = _opt(49152)
    sample_chars: int = _opt(5000, "chars per source in val_sample.txt")
    log_every: int = _opt(10)
    init_from: Path | None = _opt(None, "start from the weights (and record) of an earlier run's output "
                                        "folder")
    sinusoidal_wpe: float = _opt(0.0, "if > 0, (re)initialise the learned position embedding with "
                                      "sinusoids whose rows have this multiple of the mean token-embedding "
                                      "row norm (helps positional heads)")
    device: str = field(default_factory=lambda: default_device().type,
                        metadata={"help": "cpu or cuda (default: cuda when available)"})


def _field_type(name: str) -> type:
    """The scalar type of a TrainConfig field (Path for `Path | None`)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    return next((a for a in typing.get_args(hint) if a is not type(None)), hint)


def _optional(name: str) -> bool:
    return type(None) in typing.get_args(typing.get_type_hints(TrainConfig)[name])


def read_config(path: Path) -> dict[str, Any]:
    """The settings of a config file (a JSON object of TrainConfig fields), typed like the fields."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"--config {path}: cannot read it as JSON ({e}).") from e
    if not isinstance(raw, dict):
        raise SystemExit(f"--config {path}: write one JSON object of settings, like training/config/*.json.")
    names = [f.name for f in fields(TrainConfig)]
    settings = {}
    for name, value in raw.items():
        if name not in names:
            raise SystemExit(f"--config {path}: unknown setting {name!r}; the settings are: "
                             f"{', '.join(names)}.")
        kind = _field_type(name)
        if value is None and _optional(name):
            settings[name] = None
        elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            settings[name] = float(value)
        elif kind is int and isinstance(value, int) and not isinstance(value, bool):
            settings[name] = value
        elif kind in (str, Path) and isinstance(value, str):
            settings[name] = kind(value)
        else:
            raise SystemExit(f"--config {path}: {name} = {value!r} should be of type {kind.__name__}.")
    return settings


def build_parser(defaults: TrainConfig) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="JSON file of settings (see training/config/)")
    for f in fields(TrainConfig):
        kw: dict[str, Any] = {"choices": DEVICES} if f.name == "device" else {}
        p.add_argument("--" + f.name.replace("_", "-"), type=_field_type(f.name),
                       default=getattr(defaults, f.name), help=f.metadata.get("help") or None, **kw)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--eval-only", action="store_true",
                      help="re-evaluate the saved weights in --out, keeping the training figures of its "
                           "training.json, and rewrite training.json and README.md")
    mode.add_argument("--card-only", action="store_true",
                      help="only rewrite README.md from an existing training.json in --out")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, str]:
    """(the run's settings: defaults < --config file < flags, the action: "train", "eval" or "card")."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    config_path = pre.parse_known_args(argv)[0].config
    defaults = TrainConfig(**read_config(config_path)) if config_path else TrainConfig()
    a = build_parser(defaults).parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(a, f.name) for f in fields(TrainConfig)})
    return cfg, "eval" if a.eval_only else "card" if a.card_only else "train"


def run_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The settings training.json records as the run's hyper-parameters (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items() if k not in PATHS}


def shipped_config_for(hparams: dict[str, Any]) -> str | None:
    """The repository path of the file in training/config/ whose settings are exactly these
    hyper-parameters (where the run ran, its device, aside), or None."""
    def what(h: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in h.items() if k != "device"}

    for path in sorted(CONFIG_DIR.glob("*.json")):
        if what(run_hparams(TrainConfig(**read_config(path)))) == what(hparams):
            return path.relative_to(ROOT).as_posix()
    return None


def check_device(cfg: TrainConfig) -> None:
    """Stop with what to do instead when the run cannot use cfg.device."""
    if cfg.device not in DEVICES:
        raise SystemExit(f"device {cfg.device!r} is not one of {', '.join(DEVICES)}.")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device here: train with --device cpu, "
                         "or install a CUDA build of torch on a machine with a GPU.")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over `warmup` steps, `hold` steps at lr, then cosine decay to
    min_lr_frac × lr at `steps`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = cfg.warmup + cfg.hold
    t = min(1.0, max(0, step - start) / max(1, cfg.steps - start))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))


def parse_head(text: str, config: gpt2viz.GPT2Config) -> tuple[int, int]:
    """(layer, head) from "layer.head", checked against the model."""
    try:
        layer, head = (int(p) for p in text.split("."))
    except ValueError:
        raise SystemExit(f"--induction-head {text!r}: write layer.head, e.g. 1.0.") from None
    if not (0 <= layer < config.n_layer and 0 <= head < config.n_head):
        raise SystemExit(f"--induction-head {text}: this model has layers 0..{config.n_layer - 1} and heads "
                         f"0..{config.n_head - 1}.")
    return layer, head


def sinusoidal_positions(n_positions: int, d: int, row_norm: torch.Tensor) -> torch.Tensor:
    """[n_positions, d] sine/cosine position codes, every row scaled to `row_norm`."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # [P, 1]
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)  # [d/2]
    pe = torch.zeros(n_positions, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe / pe.norm(dim=1, keepdim=True) * row_norm


def previous_run(folder: Path) -> dict | None:
    """What training.json in an --init-from folder says about the run that made its weights."""
    path = folder / "training.json"
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    previous = {k: old.get(k) for k in ("command", "seed", "hyperparameters", "steps", "tokens_seen",
                                        "train_minutes", "wall_minutes", "val_loss", "previous_run")}
    previous["tokens_seen_total"] = old.get("tokens_seen_total", old.get("tokens_seen"))
    previous["steps_total"] = old.get("steps_total", old.get("steps"))
    return previous


def machine(cfg: TrainConfig) -> str:
    """The training machine, in the words training.json records."""
    text = (f"{platform.machine()} {platform.processor()} torch {torch.__version__}, "
            f"{cfg.threads} threads, cpu_count {os.cpu_count()}")
    return text + (f", {torch.cuda.get_device_name()}" if cfg.device == "cuda" else "")


def train_model(cfg: TrainConfig, train: np.ndarray, val: np.ndarray, command: str) -> dict:
    """Train, save fp16 weights to cfg.out, and return the run's figures for training.json."""
    device = torch.device(cfg.device)
    config = gpt2viz.GPT2Config(n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                                n_head=cfg.n_head)
    model = gpt2viz.GPT2(config, name=gpt2viz.BUNDLED_NAME)
    previous = None
    if cfg.init_from is not None:
        start = gpt2viz.load_model(str(cfg.init_from), device="cpu")
        if start.config != config:
            raise SystemExit(f"--init-from {cfg.init_from} has config {start.config}, not {config}: "
                             "give the model flags (--n-layer, --n-embd, ...) of that run.")
        model.load_state_dict(start.state_dict())
        previous = previous_run(cfg.init_from)
    if cfg.sinusoidal_wpe > 0:
        with torch.no_grad():
            target = cfg.sinusoidal_wpe * model.wte.weight.norm(dim=1).mean()
            model.wpe.weight.copy_(sinusoidal_positions(config.n_positions, config.n_embd, target))
    n_params = sum(p.numel() for p in model.parameters())
    hparams = run_hparams(cfg)
    print("hyper-parameters:", json.dumps(hparams), flush=True)
    print(f"parameters {n_params:,}", flush=True)

    model.to(device)
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    batches = Batches(train, seq_len=cfg.seq_len, batch_size=cfg.batch_size, repeat_frac=cfg.repeat_frac,
                      random_frac=cfg.random_frac, repeat_min=cfg.repeat_min, repeat_max=cfg.repeat_max,
                      seed=cfg.seed)
    step_rng = np.random.default_rng(cfg.seed + 2)  # synthetic-or-text choice, synthetic windows
    pools = [synthetic_pool(train, size) for size in (cfg.synthetic_pool, cfg.synthetic_pool_later)]
    if cfg.synthetic_pool_later < 0:
        pools[1] = pools[0]
    pool_ids = [torch.from_numpy(p).to(device) for p in pools]  # sorted
    guided = parse_head(cfg.induction_head, config) if cfg.induction_aux > 0 else None
    eval_ids = val[:cfg.eval_tokens + 1]
    known = known_ids(train)
    history: list[dict] = []
    t0 = time.time()
    step, tokens_seen, ema, synth_ema, synthetic_steps = 0, 0, None, None, 0
    stopped_by = "steps"
    model.train()
    while step < cfg.steps:
        if time.time() - t0 > cfg.minutes * 60:
            stopped_by = "time budget"
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        synthetic = step < cfg.synthetic_first or step_rng.random() < cfg.synthetic_frac
        if synthetic:
            later = int(step >= cfg.synthetic_first)
            x, y, keys = toy_batch(step_rng, cfg.synthetic_batch_size, cfg.synthetic_seq_len,
                                   cfg.synthetic_len_min, cfg.synthetic_len_max, pools[later])
            x, y, keys = x.to(device), y.to(device), keys.to(device)  # [B, T] each
            loss, lv = synthetic_loss(model, x, y, keys, pool_ids[later], bool(cfg.bf16), guided,
                                      cfg.induction_aux)
        else:
            x, y = batches.next()
            x, y = x.to(device), y.to(device)  # [B, T] each
            loss = lm_loss(model, x, y, bool(cfg.bf16))
            lv = loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        if synthetic:
            synthetic_steps += 1
            synth_ema = lv if synth_ema is None else 0.95 * synth_ema + 0.05 * lv
        else:
            ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        if step % cfg.log_every == 0 or step == 1:
            el = time.time() - t0
            print(f"step {step:5d}  {'synth' if synthetic else 'text '} loss {lv:.3f} "
                  f"(total {loss.item():.3f})  text ema "
                  f"{ema or float('nan'):.3f}  synthetic ema {synth_ema or float('nan'):.3f}  "
                  f"lr {lr_at(step - 1, cfg):.2e}  "
                  f"tokens {tokens_seen:,}  {tokens_seen / el:,.0f} tok/s  {el / 60:.1f} min", flush=True)
        if step % cfg.eval_every == 0:
            model.eval()
            vl, _ = eval_loss(model, eval_ids, cfg.seq_len, bool(cfg.bf16))
            scores = role_scores(model, val[:config.n_positions].tolist(), known=known)
            prev, ind, ind_known = (best_head(s) for s in scores)
            ind_pool = best_head(induction_scores(model, ids=pools[0]))
            model.train()
            history.append({"step": step, "tokens": tokens_seen, "train_loss_ema": ema,
                            "synthetic_loss_ema": synth_ema, "val_loss_first_tokens": vl,
                            "best_previous_token": prev, "best_induction": ind,
                            "best_induction_known_ids": ind_known, "best_induction_pool_ids": ind_pool,
                            "minutes": (time.time() - t0) / 60})
            print(f"  eval step {step}: val loss (first {cfg.eval_tokens} val tokens) {vl:.3f}; best "
                  f"previous-token head {prev[0]}.{prev[1]} = {prev[2]:.3f}, induction {ind[0]}.{ind[1]} "
                  f"= {ind[2]:.3f} (known ids: {ind_known[0]}.{ind_known[1]} = {ind_known[2]:.3f}; pool ids: "
                  f"{ind_pool[0]}.{ind_pool[1]} = {ind_pool[2]:.3f})",
                  flush=True)
    train_minutes = (time.time() - t0) / 60
    print(f"training stopped ({stopped_by}) after {step} steps, {tokens_seen:,} tokens, "
          f"{train_minutes:.1f} min", flush=True)
    model.eval()
    cfg.out.mkdir(parents=True, exist_ok=True)
    gpt2viz.save_model(model.cpu(), cfg.out, dtype=torch.float16)
    return {
        "seed": cfg.seed, "hyperparameters": hparams, "command": command, "config": config.to_hf_dict(),
        "parameters": n_params, "steps": step,
        "synthetic_steps": synthetic_steps, "steps_planned": cfg.steps, "stopped_by": stopped_by,
        "tokens_seen": tokens_seen, "train_tokens_available": int(len(train)),
        "train_minutes": round(train_minutes, 2), "train_loss_ema_last": ema, "history": history,
        "machine": machine(cfg),
        "previous_run": previous,
        "tokens_seen_total": tokens_seen + (previous["tokens_seen_total"] if previous else 0),
        "steps_total": step + (previous["steps_total"] if previous else 0),
        "train_minutes_total": round(train_minutes + (previous["train_minutes"] if previous else 0), 2),
    }


def write_card(out: Path, record: dict) -> None:
    """README.md in `out`, naming the shipped config that holds the record's hyper-parameters."""
    (out / "README.md").write_text(render_card(record, shipped_config_for(record["hyperparameters"])))


def main(argv: list[str] | None = None) -> None:
    cfg, action = parse_args(argv)
    if action == "card":
        write_card(cfg.out, json.loads((cfg.out / "training.json").read_text()))
        return
    check_device(cfg)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    tok = gpt2viz.load_tokenizer()

    train = tokenize_split(cfg.corpus, cfg.cache, "train", tok)
    val = tokenize_split(cfg.corpus, cfg.cache, "val", tok)
    sources = json.loads((cfg.corpus / "SOURCES.json").read_text())
    print(f"train tokens {len(train):,}  val tokens {len(val):,}", flush=True)
    command = "python -m training.train " + " ".join(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    if action == "eval":
        old = json.loads((cfg.out / "training.json").read_text())
        info = {k: old[k] for k in TRAINING_FIELDS}
        info["evaluation_rerun"] = {"command": command}
    else:
        info = train_model(cfg, train, val, command)

    (cfg.out / "val_sample.txt").write_text(val_sample_text(cfg.corpus, cfg.sample_chars))
    figures = evaluate_saved(cfg.out, tok, train, val, window=info["hyperparameters"]["seq_len"],
                             final_eval_tokens=cfg.final_eval_tokens, seed=cfg.seed)
    minutes = round((time.time() - t_start) / 60, 2)
    if action == "eval":
        info["evaluation_rerun"]["minutes"] = minutes
    else:
        info["wall_minutes"] = minutes
    record = {"model": gpt2viz.BUNDLED_NAME, **info, **figures, "sources": sources.get("sources", [])}
    (cfg.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    write_card(cfg.out, record)
    print(f"wrote {cfg.out} ({figures['file_bytes'] / 1e6:.1f} MB); generation 64+32 with recording "
          f"{figures['generation_64_plus_32_seconds']:.2f} s; wall {record['wall_minutes']:.1f} min",
          flush=True)


if __name__ == "__main__":
    main()
