"""Step-by-step generation with a key/value cache, recording each step's forward pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from .errors import PromptError
from .model import GPT2
from .recording import Recorder
from .tokenizer import EOT_ID, GPT2Tokenizer
from .trace import Trace

STOP_ENDOFTEXT = "endoftext"  # the model chose <|endoftext|>
STOP_CONTEXT = "context_limit"  # the sequence filled the model's context
STOP_MAX_TOKENS = "max_new_tokens"  # the caller's budget ran out


@dataclass(frozen=True)
class Step:
    """One generated token, what else the model considered, and what it computed on the way."""

    index: int  # 0 for the first generated token
    position: int  # absolute position of the chosen token in the sequence
    token_id: int
    text: str  # the token's text (partial UTF-8 bytes shown as \\xNN)
    prob: float  # the model's probability of the chosen token (softmax at temperature 1)
    top: list[tuple[int, str, float]]  # [(token_id, text, prob)], highest first, temperature 1
    trace: Trace | None  # this step's forward pass: the new positions over the cached ones
    stop_reason: str | None  # None, or why generation ends after this step


def encode_prompt(
    model: GPT2, tok: GPT2Tokenizer, prompt: str | Sequence[int], reserve: int = 1
) -> list[int]:
    """Token ids of `prompt` (text or ids), or a PromptError that tells the user what to change.

    `reserve` context positions must stay free: 1 to generate a token, 0 to only run the prompt.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError("The prompt is empty (or only whitespace). Type some text to continue.")
        prompt = tok.encode(prompt)
    return model.check_ids(prompt, reserve=reserve)


def _check_sampling(max_new_tokens: int, temperature: float, top_k: int | None,
                    top_p: float | None) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}.")
    if temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or positive, not {temperature}.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive number of tokens or None, not {top_k}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, not {top_p}.")


def sampling_distribution(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """Probabilities [vocab] to sample from: logits / temperature, cut to top-k, then top-p."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if top_p is not None and top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above
        drop = torch.zeros_like(probs, dtype=torch.bool)
        drop[order] = before >= top_p  # keep the smallest set reaching top_p (never empty)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum()
    return probs


def generate(
    model: GPT2,
    tok: GPT2Tokenizer,
    prompt: str | Sequence[int],
    max_new_tokens: int = 20,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    names: Iterable[str] | None = None,
    record: bool = True,
    n_top: int = 10,
    use_cache: bool = True,
) -> Iterator[Step]:
    """Yield generated tokens one by one. `temperature=0` is greedy; otherwise sampling with
    `seed` is reproducible. Each step records the hook points in `names` (all when None) unless
    `record` is False. The last step says why generation stopped (`stop_reason`).

    With `use_cache` (the default) each step runs only the new token over cached keys and
    values; without it each step re-runs the whole sequence, so its trace covers every position.
    """
    _check_sampling(max_new_tokens, temperature, top_k, top_p)
    ids = encode_prompt(model, tok, prompt)
    limit = model.config.n_positions
    cache = model.new_cache(capacity=min(limit, len(ids) + max_new_tokens)) if use_cache else None
    rng = torch.Generator().manual_seed(seed)
    new_ids = list(ids)
    for i in range(max_new_tokens):
        start = cache.length if cache is not None else 0
        rec = Recorder(names) if record else None
        with torch.inference_mode():
            logits = model(torch.tensor([new_ids], device=model.device), cache, rec)
            last = logits[0, -1].float().cpu()  # [vocab]
            probs = last.softmax(-1)
            if temperature == 0:
                token = int(last.argmax())
            else:
                dist = sampling_distribution(last, temperature, top_k, top_p)
                token = int(torch.multinomial(dist, 1, generator=rng))
            top_p_vals, top_ids = probs.topk(n_top)
        position = len(ids) + i
        if token == EOT_ID:
            stop = STOP_ENDOFTEXT
        elif position + 1 >= limit:
            stop = STOP_CONTEXT
        elif i == max_new_tokens - 1:
            stop = STOP_MAX_TOKENS
        else:
            stop = None
        yield Step(
            index=i,
            position=position,
            token_id=token,
            text=tok.token_text(token),
            prob=float(probs[token]),
            top=[(int(t), tok.token_text(int(t)), float(p))
                 for t, p in zip(top_ids, top_p_vals, strict=True)],
            trace=Trace(rec.tensors, logits, new_ids, start) if rec is not None else None,
            stop_reason=stop,
        )
        if stop:
            return
        new_ids = [token] if cache is not None else [*new_ids, token]
