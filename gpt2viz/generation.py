"""Step-by-step generation with a key/value cache, recording each step's forward pass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch

from .errors import EMPTY_PROMPT, PromptError
from .hooks import act_name
from .model import GPT2, Segments
from .recording import Edit, PassRecorder, Recorder
from .sampling import check_sampling, draw, sampling_stages
from .surprise import probabilities_from_logits
from .tokenizer import EOT_ID, GPT2Tokenizer
from .trace import Trace

STOP_ENDOFTEXT = "endoftext"  # the model chose <|endoftext|>
STOP_CONTEXT = "context_limit"  # the sequence filled the model's context
STOP_MAX_TOKENS = "max_new_tokens"  # the caller's budget ran out


class Candidate(NamedTuple):
    """One of the likeliest next tokens at a step."""

    token_id: int
    text: str
    prob: float  # softmax at temperature 1


@dataclass(frozen=True)
class Step:
    """One generated token, what else the model considered, and what it computed on the way."""

    index: int  # 0 for the first generated token
    position: int  # absolute position of the chosen token in the sequence
    token_id: int
    text: str  # the token's text (partial UTF-8 bytes shown as \\xNN)
    prob: float  # the model's probability of the chosen token (softmax at temperature 1)
    top: list[Candidate]  # highest first
    trace: Trace | None  # this step's forward pass: the new positions over the cached ones
    stop_reason: str | None  # None, or why generation ends after this step
    # [layer, head, key] float16: the last query's attention over every key (None unless every
    # layer's pattern was recorded). Small enough to keep for every step of a long generation.
    attention_row: torch.Tensor | None = None

    @property
    def query_position(self) -> int:
        """The position whose output predicted this token."""
        return self.position - 1


def encode_prompt(
    model: GPT2, tok: GPT2Tokenizer, prompt: str | Sequence[int], reserve: int = 1
) -> list[int]:
    """Token ids of `prompt` (text or ids), or a PromptError that tells the user what to change.

    `reserve` context positions must stay free: 1 to generate a token, 0 to only run the prompt.
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError(EMPTY_PROMPT)
        prompt = tok.encode(prompt)
    return model.check_ids(prompt, reserve=reserve)


def top_tokens(probs: torch.Tensor, tok: GPT2Tokenizer, k: int = 10) -> list[Candidate]:
    """The `k` likeliest tokens of `probs` [vocab], highest first (the form of `Step.top`)."""
    values, ids = probs.topk(min(k, probs.numel()))
    return [Candidate(int(t), tok.token_text(int(t)), float(p)) for t, p in zip(ids, values, strict=True)]


def _check_settings(max_new_tokens: int, temperature: float, top_k: int | None,
                    top_p: float | None) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}.")
    check_sampling(temperature, top_k, top_p)


class Generation:
    """A generation that goes on one token at a time: `advance()` runs one step.

    `temperature=0` is greedy; otherwise sampling with `seed` is reproducible: step i draws with the
    random number of (`seed`, `first_draw` + i) (`sampling.draw`). A branch written in place of a
    generation's steps from k on draws with that generation's own numbers with `first_draw=k`, and
    with numbers no generation of that seed drew with `first_draw` ≥ the model's context. Each step records
    the hook points in `names` (all when None) unless `record` is False, and applies `edits` (as
    `run_with_capture` takes them) to its forward pass. With `use_cache` (the default) each step
    runs only the new token over cached keys and values; without it each step re-runs the whole
    sequence, so its trace covers every position. The cache is freed when the generation ends,
    unless `retain_cache`: then `release_key_values` hands its keys and values over.

    `advance` returns the step with its trace; `steps` keeps every step without it (the
    attention row stays), so a long generation stays small. A bad prompt or setting raises here,
    in the constructor.
    """

    def __init__(
        self,
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
        edits: Mapping[str, Edit] | None = None,
        retain_cache: bool = False,
        first_draw: int = 0,
    ) -> None:
        _check_settings(max_new_tokens, temperature, top_k, top_p)
        if first_draw < 0:
            raise ValueError(f"first_draw must be 0 or more, not {first_draw}.")
        self.first_draw = first_draw
        self.model, self.tok, self.prompt = model, tok, prompt
        self.settings = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                             top_p=top_p, seed=seed)
        self.prompt_ids = encode_prompt(model, tok, prompt)
        self.steps: list[Step] = []
        self._names = None if names is None else list(names)
        self._record, self._n_top, self._edits = record, n_top, dict(edits or {})
        self._patterns = [act_name("pattern", layer) for layer in range(model.config.n_layer)]
        capacity = min(model.config.n_positions, len(self.prompt_ids) + max_new_tokens)
        self._cache = model.new_cache(capacity=capacity) if use_cache else None
        self._use_cache, self._keep_cache = use_cache, retain_cache
        self._pending = list(self.prompt_ids)  # the ids the next forward pass runs
        # Each prompt token's probability given those before it, from the first step's logits
        # (None until then, and where that step was not recorded: only its last position was read).
        self.prompt_probs: list[float | None] = [None] * len(self.prompt_ids)

    @property
    def ids(self) -> list[int]:
        """Prompt and generated tokens."""
        return self.prompt_ids + [s.token_id for s in self.steps]

    @property
    def token_probs(self) -> list[float | None]:
        """Every token's probability given the tokens before it: the prompt's (see `prompt_probs`),
        then each generated token's at temperature 1."""
        return [*self.prompt_probs, *(step.prob for step in self.steps)]

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the generation ended (STOP_*), or None while it can go on."""
        return self.steps[-1].stop_reason if self.steps else None

    def to_dict(self) -> dict:
        """The generation as plain data (for JSON): model, settings, prompt, every id and token,
        and each step's chosen token, probability, top candidates and stop reason."""
        return {
            "model": self.model.name,
            "settings": dict(self.settings),
            "prompt": self.prompt if isinstance(self.prompt, str) else None,
            "prompt_ids": list(self.prompt_ids),
            "ids": self.ids,
            "tokens": self.tok.token_texts(self.ids),
            "steps": [{"index": s.index, "position": s.position, "token_id": s.token_id, "text": s.text,
                       "prob": s.prob, "top": [{"token_id": t, "text": x, "prob": p} for t, x, p in s.top],
                       "stop_reason": s.stop_reason} for s in self.steps],
            "stop_reason": self.stop_reason,
        }

    def key_values(self) -> Trace | None:
        """The keys and values of every position run so far (all but the last token chosen), as a
        trace of every layer's `k` and `v` hook points, [pos, head, d_head] each, as this
        generation's forward passes (and edits) made them: views of the cache on the CPU, copies
        from another device. None without a cache, or once it is freed.
        `cached_step.step_over_cache` runs any of these positions again over them."""
        cache = self._cache
        if cache is None:
            return None
        n, tensors = cache.length, {}
        for layer in range(self.model.config.n_layer):
            tensors[act_name("k", layer)] = cache.keys[layer, 0, :n]  # [pos, head, d_head]
            tensors[act_name("v", layer)] = cache.values[layer, 0, :n]
        return Trace(tensors, None, self.ids[:n], 0, self.model.config, self.model.name, batch_index=None)

    def release_key_values(self) -> Trace | None:
        """A finished generation's `key_values`, handed over: the generation no longer holds its
        cache, so whoever keeps the trace decides how long that memory lives."""
        if not self.finished:
            raise RuntimeError("Only a finished generation hands its cache over: it still needs it.")
        key_values, self._cache = self.key_values(), None
        return key_values

    def __iter__(self) -> Iterator[Step]:
        while not self.finished:
            yield self.advance()

    def advance(self) -> Step:
        """Generate one more token and return its step (with this step's trace): a batch of one
        (`advance_together`). A step that fails leaves the generation as it was."""
        return advance_together([self])[0]

    def _next_recorder(self) -> Recorder | None:
        """The recorder of the next step (None when it neither records nor edits); raises once the
        generation has finished."""
        if self.finished:
            raise RuntimeError(f"This generation has finished ({self.stop_reason}); start a new "
                               "Generation to write more.")
        if self._record or self._edits:
            return Recorder(self._names if self._record else [], self._edits)
        return None

    @torch.inference_mode()
    def _step_from(self, logits: torch.Tensor, rec: Recorder | None) -> tuple[Step, list[float | None]]:
        """The step whose forward pass gave `logits` ([pos, vocab] when recorded, else [1, vocab]
        of the last position) and filled `rec`: the token chosen and what the model computed, and
        the prompt's token probabilities as they then stand. Nothing about the generation changes
        here (`_commit` does that)."""
        index, model = len(self.steps), self.model
        last = logits[-1].float().cpu()  # [vocab]
        probs = last.softmax(-1)
        token = self._choose(last, index)
        position = len(self.prompt_ids) + index
        trace = None
        if self._record:
            start = position - len(self._pending)
            trace = Trace(rec.tensors, logits[None], self._pending, start, model.config, model.name)
        prompt_probs = self.prompt_probs
        if index == 0 and self._record:
            prompt_probs = probabilities_from_logits(logits, self.prompt_ids)
        step = Step(
            index=index,
            position=position,
            token_id=token,
            text=self.tok.token_text(token),
            prob=float(probs[token]),
            top=top_tokens(probs, self.tok, self._n_top),
            trace=trace,
            stop_reason=self._stop_reason(token, position, index),
            attention_row=self._attention_row(trace),
        )
        return step, prompt_probs

    def _commit(self, step: Step, prompt_probs: list[float | None]) -> None:
        """Take `step`: it is kept (without its trace), the cache keeps the positions its pass
        ran, and the next pass runs its token (or frees the cache at the end)."""
        self.prompt_probs = prompt_probs
        self.steps.append(replace(step, trace=None))
        if self._cache is not None:
            self._cache.commit(len(self._pending))
        if step.stop_reason is not None and not self._keep_cache:
            self._cache = None  # frees the key/value cache
        else:
            self._pending = [step.token_id] if self._use_cache else self.ids

    def _choose(self, logits: torch.Tensor, index: int) -> int:
        s = self.settings
        if s["temperature"] == 0:
            return int(logits.argmax())
        probs = sampling_stages(logits, s["temperature"], s["top_k"], s["top_p"]).probs
        return draw(probs, s["seed"], self.first_draw + index)

    def _stop_reason(self, token: int, position: int, index: int) -> str | None:
        if token == EOT_ID:
            return STOP_ENDOFTEXT
        if position + 1 >= self.model.config.n_positions:
            return STOP_CONTEXT
        if index == self.settings["max_new_tokens"] - 1:
            return STOP_MAX_TOKENS
        return None

    def _attention_row(self, trace: Trace | None) -> torch.Tensor | None:
        if trace is None or not all(name in trace for name in self._patterns):
            return None
        return torch.stack([trace[name][:, -1, :] for name in self._patterns]).to(torch.float16)


def advance_together(generations: Sequence[Generation]) -> list[Step]:
    """Advance every generation by one step in one forward pass of their shared model; their
    steps, in order, each what its own `advance()` would have returned (up to float rounding).
    `advance()` is this with one generation: there is one step path.

    Prompts of any length, first steps (the whole prompt) and later ones (one token over the
    cache), recorded or not, edited or not, go together: their new positions are packed along one
    axis with no padding, so the weights are read once for all of them (`Segments`). Every step
    is taken only once all of them are computed: whatever fails (a finished generation, an edit
    that raises, the memory running out) raises before any generation or cache changes."""
    if not generations:
        return []
    model = generations[0].model
    if any(g.model is not model for g in generations):
        raise ValueError("advance_together needs generations of one model: they share its forward pass.")
    if len({id(g) for g in generations}) < len(generations):
        raise ValueError("A generation appears twice: each advances by one step.")
    recorders = [g._next_recorder() for g in generations]  # raises for a finished one
    pending = [g._pending for g in generations]
    with torch.inference_mode():
        idx = torch.tensor([[i for ids in pending for i in ids]], dtype=torch.long,
                           device=model.device)  # [1, N]
        segments = Segments([len(ids) for ids in pending], [g._cache for g in generations], recorders)
        resid = model.run_segments(idx, segments)  # [1, N, d_model]
        # Only what each one's own step unembeds: every position when it records, else its last.
        rows = [part if g._record else part[:, -1:] for g, part in
                zip(generations, resid.split(segments.lengths, 1), strict=True)]
        lengths = [row.shape[1] for row in rows]
        logits = model.unembed(rows[0] if len(rows) == 1 else torch.cat(rows, 1),
                               PassRecorder.of(recorders, lengths))[0]  # [sum of lengths, vocab]
    # A part of several is cloned: a step's trace then holds its own logits, not everyone's.
    parts = [logits] if len(generations) == 1 else [part.clone() for part in logits.split(lengths)]
    taken = [g._step_from(part, r) for g, part, r in zip(generations, parts, recorders, strict=True)]
    for g, (step, prompt_probs) in zip(generations, taken, strict=True):  # nothing here can fail
        g._commit(step, prompt_probs)
    return [step for step, _ in taken]


def generate(model: GPT2, tok: GPT2Tokenizer, prompt: str | Sequence[int], *args: Any,
             **kwargs: Any) -> Iterator[Step]:
    """Yield generated tokens one by one: `iter(Generation(model, tok, prompt, ...))`, with the
    same arguments (see `Generation`). The last step says why generation stopped (`stop_reason`);
    a bad prompt or setting raises here, before the first step."""
    return iter(Generation(model, tok, prompt, *args, **kwargs))
