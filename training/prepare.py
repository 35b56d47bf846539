"""The training data: token ids of the corpus splits and the windows a step trains on.

data/corpus/{train,val}.txt (from `python -m training.fetch_corpus`) are tokenized once with the
GPT-2 tokenizer and cached as data/tokens/{train,val}.npy. Three kinds of window come out of
them:

- text windows at random offsets of the training split, a fraction of which get a repeated
  span (a block of uniform random ids placed twice, or a corpus segment copied later in the
  window), so that induction heads can form within a small budget;
- synthetic windows of random ids holding one repeated block r + r at a random offset
  (`toy_windows`, `toy_batch`);
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


def toy_windows(rng: np.random.Generator, batch: int, T: int, len_min: int, len_max: int,
                pool: np.ndarray, bos: int = EOT_ID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows [batch, T+1], block lengths L [batch], first-copy starts S [batch]).

    Each window is [bos] then T ids drawn uniformly from `pool`, in which a block r of L ids
    (L uniform in len_min..len_max) at S (uniform in 1..T+1-2L) is copied right after itself:
    w[S+L : S+2L] = w[S : S+L] = r. The random length and offset leave no fixed position to copy
    from, so only an induction circuit (a previous-token head, then a head attending to the token
    after the earlier occurrence) can predict the second copy (training/TOY_INDUCTION.md)."""
    if not 2 <= len_min <= len_max or 2 * len_max > T:
        raise ValueError(f"need 2 <= len_min <= len_max and 2 * len_max <= T (got {len_min}, {len_max}, {T})")
    w = pool[rng.integers(0, len(pool), size=(batch, T + 1))].astype(np.int64)  # [batch, T+1]
    w[:, 0] = bos
    L = rng.integers(len_min, len_max + 1, size=batch)  # [batch]
    S = 1 + (rng.random(batch) * (T + 1 - 2 * L)).astype(np.int64)  # [batch], 1 .. T+1-2L
    for b in range(batch):
        w[b, S[b] + L[b]:S[b] + 2 * L[b]] = w[b, S[b]:S[b] + L[b]]
    return w, L, S


def target_masks(T: int, L: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(second, first) [batch, T] bool masks over the targets of `toy_windows` (target t is token
    t+1): `second` holds r[1:] of the second copy (targets S+L .. S+2L-2), the tokens copying can
    predict; `first` holds r of the first copy (targets S-1 .. S+L-2), which nothing can predict.
    r[0] of the second copy follows the end of the first copy and is as unpredictable as the rest."""
    t = np.arange(T)[None, :]
    L, S = L[:, None], S[:, None]
    second = (t >= S + L) & (t <= S + 2 * L - 2)
    first = (t >= S - 1) & (t <= S + L - 2)
    return second, first


def toy_batch(rng: np.random.Generator, batch: int, T: int, len_min: int, len_max: int,
              pool: np.ndarray, bos: int = EOT_ID) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, targets, induction keys), each [batch, T] int64, of `toy_windows`: inputs are
    tokens 0..T-1, targets tokens 1..T, IGNORE (-100) everywhere but r[1:] of the second copy.
    The induction key of a counted target t is t - L + 1, the position right after the earlier
    occurrence of input t (it holds the target); -1 elsewhere."""
    w, L, S = toy_windows(rng, batch, T, len_min, len_max, pool, bos)
    x, y = w[:, :-1], w[:, 1:].copy()
    second = target_masks(T, L, S)[0]
    y[~second] = IGNORE
    keys = np.where(second, np.arange(T)[None, :] - L[:, None] + 1, -1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), torch.from_numpy(keys)


def known_ids(train: np.ndarray, skip: int = 4096, size: int = 4096) -> np.ndarray:
    """The ids ranked skip+1 .. skip+size by frequency in the training split (ties by id), sorted:
    by default 4,097..8,192, well outside the 2,048 ids of the first synthetic steps (ranks
    2,049..4,096 are left as a margin). On a small corpus the
    ranks run past the ids that occur, into ids that never do."""
    counts = np.bincount(train, minlength=EOT_ID + 1)[:EOT_ID]
    return np.sort(np.argsort(-counts, kind="stable")[skip:skip + size]).astype(np.int64)


def synthetic_pool(train: np.ndarray, size: int) -> np.ndarray:
    """The ids synthetic blocks draw from: the `size` most frequent ids of the training split (ties
    by id), or every id but <|endoftext|> when size is 0. Frequent ids have trained embeddings, so
    a copying circuit can be learned on them first."""
    if size <= 0:
        return np.arange(EOT_ID, dtype=np.int64)
    return known_ids(train, skip=0, size=size)
