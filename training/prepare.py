"""The training data: token ids of the corpus splits and the windows a step trains on.

data/corpus/{train,val}.txt (from `python -m training.fetch_corpus`) are tokenized once with the
GPT-2 tokenizer and cached as data/tokens/{train,val}.npy. Three kinds of window come out of
them:

- text windows at random offsets of the training split, a fraction of which get a repeated
  span (a block of uniform random ids placed twice, or a corpus segment copied later in the
  window), so that induction heads can form within a small budget;
- synthetic windows made only of repeated random-id blocks r + r (`synthetic_batch`);
- the held-out sample committed beside the model (`val_sample_text`, `encode_sample`).

Targets that no model could predict (the first copy of a random block) are -100, which the
losses skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gpt2viz.tokenizer import EOT_ID, EOT_TEXT, GPT2Tokenizer

IGNORE = -100  # target id that the losses skip


def tokenize_split(corpus: Path, cache: Path, split: str, tok: GPT2Tokenizer) -> np.ndarray:
    """Token ids of `corpus`/{split}.txt, each document prefixed by <|endoftext|> (id 50256).

    Cached in `cache`/{split}.npy, keyed on the text file's size and modification time.
    """
    src = corpus / f"{split}.txt"
    if not src.is_file():
        raise SystemExit(f"{src} is missing: fetch the corpus first with `python -m training.fetch_corpus`.")
    out = cache / f"{split}.npy"
    stamp = cache / f"{split}.stamp"
    key = f"{src.stat().st_size}:{src.stat().st_mtime_ns}"
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return np.load(out)
    cache.mkdir(parents=True, exist_ok=True)
    ids: list[int] = []
    for doc in src.read_text().split(EOT_TEXT):
        doc = doc.strip("\n")
        if doc.strip():
            ids.append(EOT_ID)
            ids.extend(tok.encode_ordinary(doc))
    arr = np.asarray(ids, dtype=np.uint16)
    np.save(out, arr)
    stamp.write_text(key)
    return arr


def val_sample_text(corpus: Path, chars: int) -> str:
    """The held-out text committed as val_sample.txt: the first whole paragraphs (about `chars`
    characters) of the first Brown and of the first Python-docs document of val.txt."""
    docs = [d.strip("\n") for d in (corpus / "val.txt").read_text().split(EOT_TEXT) if d.strip()]
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

    return f"{head(brown)}\n{EOT_TEXT}\n{head(python)}\n"


def encode_sample(tok: GPT2Tokenizer, text: str) -> list[int]:
    """val_sample.txt as the evaluation and the tests encode it: <|endoftext|> first, then the text
    with the separator read as the special token."""
    return [EOT_ID] + tok.encode(text, allowed_special={EOT_TEXT})


class Batches:
    """Text windows at random offsets of `data`, a fraction `repeat_frac` of them with a repeated
    span of `repeat_min`..`repeat_max` tokens; of those, a fraction `random_frac` repeat a block of
    uniform random ids, the others a copy of the window's own text. Seeded: the same arguments
    give the same windows."""

    def __init__(self, data: np.ndarray, *, seq_len: int, batch_size: int, repeat_frac: float,
                 random_frac: float, repeat_min: int, repeat_max: int, seed: int) -> None:
        self.data = data
        self.seq_len, self.batch_size = seq_len, batch_size
        self.repeat_frac, self.random_frac = repeat_frac, random_frac
        self.repeat_min, self.repeat_max = repeat_min, repeat_max
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), both [batch_size, seq_len] int64 on the CPU."""
        rng, T = self.rng, self.seq_len
        xs, ys = [], []
        for _ in range(self.batch_size):
            start = int(rng.integers(0, len(self.data) - T - 1))
            w = self.data[start:start + T + 1].astype(np.int64)  # [T+1]
            mask = np.ones(T + 1, dtype=bool)  # which targets count in the loss
            if rng.random() < self.repeat_frac:
                L = min(int(rng.integers(self.repeat_min, self.repeat_max + 1)), T // 2)
                p1 = int(rng.integers(0, T + 1 - 2 * L))
                p2 = int(rng.integers(p1 + L, T + 2 - L))
                if rng.random() < self.random_frac:
                    span = rng.integers(0, EOT_ID, size=L)
                    w[p1:p1 + L] = span
                    mask[p1 + 1:p1 + L] = False  # the first random copy is unpredictable
                else:
                    span = w[p1:p1 + L].copy()
                w[p2:p2 + L] = span
            x, y = w[:-1], w[1:].copy()
            y[~mask[1:]] = IGNORE
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def synthetic_batch(rng: np.random.Generator, batch: int, T: int, len_max: int,
                    pool: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of <|endoftext|> then blocks r + r (r: 4..len_max ids drawn uniformly from `pool`)
    up to T+1 tokens, as (inputs, targets) [batch, T]; targets only on the second copies, which
    an induction head can predict."""
    xs, ys = [], []
    for _ in range(batch):
        w, known = [EOT_ID], [False]
        while len(w) < T + 1:
            L = int(rng.integers(4, len_max + 1))
            r = pool[rng.integers(0, len(pool), size=L)].tolist()
            w += r + r
            known += [False] * L + [True] * L
        w_arr, k_arr = np.asarray(w[:T + 1], dtype=np.int64), np.asarray(known[:T + 1])  # [T+1]
        y = w_arr[1:].copy()
        y[~k_arr[1:]] = IGNORE
        xs.append(w_arr[:-1])
        ys.append(y)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def synthetic_pool(train: np.ndarray, size: int) -> np.ndarray:
    """The ids synthetic blocks draw from: the `size` most frequent ids of the training split (ties
    by id), or every id but <|endoftext|> when size is 0. Frequent ids have trained embeddings, so
    a copying circuit can be learned on them first."""
    if size <= 0:
        return np.arange(EOT_ID, dtype=np.int64)
    counts = np.bincount(train, minlength=EOT_ID + 1)[:EOT_ID]
    return np.sort(np.argsort(-counts, kind="stable")[:size]).astype(np.int64)
