"""The Lesson's numbers: what each card of the guided walk through GPT-2 shows, from the live model.

Small pure functions (attention from one token to another, how much sharper a softmax gets
without the ÷√d_k, the causal and the bidirectional mask, probabilities at several temperatures)
and `Lesson`, which runs the model once for a prompt and hands each card its data on first use.
The card texts are in assets/lesson/cards.md (`load_cards`); the figures are in app.lesson.views.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from gpt2viz import GPT2, Candidate, Generation, GPT2Tokenizer, Trace, act_name, encode_prompt
from gpt2viz.analysis import best_head
from gpt2viz.attribution import DirectLogitAttribution, attribution_names, direct_logit_attribution
from gpt2viz.generation import top_tokens
from gpt2viz.lens import ResidualNorms, residual_names, residual_norms
from gpt2viz.paths import ASSETS
from gpt2viz.sampling import sampling_stages
from gpt2viz.viz.qkv import softmax

from ..navigation import URL_PATHS
from ..state import DEFAULT_PROMPT

CARDS_FILE = ASSETS / "lesson" / "cards.md"
CAT_SENTENCE = DEFAULT_PROMPT  # the app opens on it: its "cat" looks back at "black"
QUERY_WORD, KEY_WORD = "cat", "black"
TEMPERATURES = (0.5, 1.0, 1.5)  # the model's own distribution (1) between a safe and a bold one
MASK_TOKENS = 10  # the mask card shows the first this-many tokens
CONTINUE_TOKENS = 10  # the one-token-at-a-time card writes this many
MLP_LAYER = 0  # the layer the feed-forward and heads cards show
DEMOS = (
    ("Summary", "The town council met on Tuesday to talk about the old bridge over the river. "
                "Engineers told the council that the bridge is no longer safe for cars and must be "
                "repaired within a year. The repairs will cost two million dollars, and the council "
                "agreed to pay for them with money it had saved for new roads.\nTL;DR:", 24),
    ("Translation", "English: Good morning.\nFrench: Bonjour.\nEnglish: Thank you very much.\n"
                    "French: Merci beaucoup.\nEnglish: The cat is black.\nFrench:", 12),
)


# --- the card texts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Card:
    id: str  # which live numbers the card shows (app.lesson.views.VIEWS)
    title: str
    text: str  # Markdown
    see: str  # url path of the page that shows the same thing (one of PAGES)


def parse_cards(text: str) -> list[Card]:
    """Cards from Markdown: each "## title", then "id: …" and "see: …" lines, a blank line, the text.
    HTML comments are ignored. A ValueError names a card that lacks its id, its page or its text."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    cards = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, rest = section.partition("\n")
        head, _, body = rest.strip().partition("\n\n")
        fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        body = " ".join(body.split())
        if not fields.get("id") or "see" not in fields or not body:
            raise ValueError(f"Lesson card {title.strip()!r} needs an id: line, a see: line and a text.")
        if fields["see"] not in URL_PATHS:
            raise ValueError(f"Lesson card {title.strip()!r} links to {fields['see']!r}, not one of "
                             f"{URL_PATHS}.")
        cards.append(Card(fields["id"], title.strip(), body, fields["see"]))
    return cards


@functools.cache
def load_cards(path: Path = CARDS_FILE) -> tuple[Card, ...]:
    return tuple(parse_cards(path.read_text(encoding="utf-8")))


# --- small pure functions ---------------------------------------------------------------------

def word_position(texts: Sequence[str], word: str) -> int:
    """The position of the first token whose text is `word` (leading/trailing spaces ignored)."""
    for i, t in enumerate(texts):
        if t.strip() == word:
            return i
    raise ValueError(f"No token {word!r} among {list(texts)}.")


def attention_to(trace: Trace, query_pos: int, key_pos: int) -> torch.Tensor:
    """[layer, head]: the attention weight from the token at `query_pos` to the one at `key_pos`
    (absolute positions), in every head, from a trace that recorded every layer's pattern."""
    row = query_pos - trace.start
    if not 0 <= row < len(trace.ids) or not 0 <= key_pos <= query_pos:
        raise ValueError(f"Query {query_pos} must lie in {trace.positions} and key {key_pos} at or "
                         "before it.")
    # one cell per head and layer: stacking every [head, pos, pos] pattern first would copy them all
    n_layer = trace.config.n_layer
    return torch.stack([trace["pattern", layer][:, row, key_pos] for layer in range(n_layer)])


def query_key_dots(trace: Trace, layer: int, head: int, query_pos: int) -> np.ndarray:
    """[key] q·k of the query at `query_pos` with every key up to it, before any division."""
    row = query_pos - trace.start
    q = trace["q", layer][row, head].double()
    k = trace["k", layer][: query_pos + 1, head].double()
    return (k @ q).numpy()


def entropy_bits(p: np.ndarray) -> float:
    """Shannon entropy in bits (0 for certainty, log2 n for n equal weights)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@dataclass(frozen=True)
class Sharpness:
    d_k: int
    dots: np.ndarray  # [key] q·k
    scaled: np.ndarray  # [key] q·k / √d_k
    weights: np.ndarray  # softmax(scaled): what the model uses
    unscaled_weights: np.ndarray  # softmax(dots): without the division
    max_weight: float
    unscaled_max_weight: float
    entropy: float  # bits
    unscaled_entropy: float


def softmax_sharpness(scores: np.ndarray, d_k: int) -> Sharpness:
    """The softmax of raw q·k `scores` with the ÷√d_k and without it, and how peaked each is."""
    dots = np.asarray(scores, dtype=np.float64)
    scaled = dots / np.sqrt(d_k)
    weights, unscaled = softmax(scaled), softmax(dots)
    return Sharpness(d_k, dots, scaled, weights, unscaled, float(weights.max()), float(unscaled.max()),
                     entropy_bits(weights), entropy_bits(unscaled))


def bidirectional_mask(n: int) -> np.ndarray:
    """[query, key] the mask BERT's encoder would use: every token sees every token."""
    return np.ones((n, n), dtype=bool)


@dataclass(frozen=True)
class TemperatureTable:
    temperatures: tuple[float, ...]
    ids: list[int]  # the n highest-logit tokens, highest first
    labels: list[str]  # their text
    probs: np.ndarray  # [temperature, token]


def temperature_table(logits: torch.Tensor, tok: GPT2Tokenizer, temperatures: Sequence[float] = TEMPERATURES,
                      n: int = 8) -> TemperatureTable:
    """The probabilities of the `n` likeliest tokens at each temperature (`sampling_stages`)."""
    ids = [int(i) for i in logits.float().topk(n).indices]
    probs = np.stack([sampling_stages(logits, t).probs[ids].numpy() for t in temperatures])
    return TemperatureTable(tuple(temperatures), ids, tok.token_texts(ids), probs.astype(np.float64))


def block_parameters(model: GPT2) -> int:
    """Parameters of one block (every block has the same shape)."""
    return sum(p.numel() for p in model.h[0].parameters())


@dataclass(frozen=True)
class Continuation:
    label: str
    prompt_ids: list[int]
    new_ids: list[int]
    stop_reason: str | None


def greedy_continuation(model: GPT2, tok: GPT2Tokenizer, prompt: str | Sequence[int], max_new_tokens: int,
                        label: str = "") -> Continuation:
    """What the model writes after `prompt`, always taking the likeliest token."""
    g = Generation(model, tok, prompt, max_new_tokens=max_new_tokens, temperature=0.0, record=False)
    list(g)
    return Continuation(label, g.prompt_ids, [s.token_id for s in g.steps], g.stop_reason)


def lesson_names(n_layer: int) -> list[str]:
    """What `Lesson` records for the prompt: the residual points and what direct logit
    attribution reads, and layer MLP_LAYER's attention output and MLP stages (no attention
    patterns: those are [head, pos, pos] per layer)."""
    layer = min(MLP_LAYER, n_layer - 1)
    names = residual_names(n_layer) + attribution_names(n_layer)
    return names + [act_name("attn_out", layer), act_name("normalized", layer, "ln2"),
                    act_name("post", layer)]


# --- the numbers of one lesson ----------------------------------------------------------------

@dataclass(frozen=True)
class CatSentence:
    ids: list[int]
    texts: list[str]
    query: int  # position of "cat"
    key: int  # position of "black"
    trace: Trace  # every hook point
    attention: torch.Tensor  # [layer, head] weight from "cat" to "black"
    layer: int  # the head that gives "black" the most weight
    head: int
    weight: float


T = TypeVar("T")


def _runs_model(compute: Callable[[Lesson], T]) -> Callable[[Lesson], T]:
    """A part of the lesson that runs the model: computed inside the lesson's `turn`."""
    @functools.wraps(compute)
    def in_turn(lesson: Lesson) -> T:
        with lesson.turn():
            return compute(lesson)
    return in_turn


class Lesson:
    """The live numbers behind every card for one model and prompt, each computed on first use,
    the model's runs inside `turn()` (the app shares a lesson, and the model, between sessions:
    it passes its model turn). Raises gpt2viz.PromptError (in the constructor) for a prompt that
    cannot run."""

    def __init__(self, model: GPT2, tok: GPT2Tokenizer, prompt: str,
                 turn: Callable[[], AbstractContextManager] = nullcontext) -> None:
        self.model, self.tok, self.prompt, self.turn = model, tok, prompt, turn
        self.config = model.config
        self.ids = encode_prompt(model, tok, prompt, reserve=0)
        self.texts = tok.token_texts(self.ids)
        self.last = len(self.ids) - 1

    @functools.cached_property
    @_runs_model
    def trace(self) -> Trace:
        return self.model.run_with_capture(self.ids, names=lesson_names(self.config.n_layer))

    @functools.cached_property
    def next_tokens(self) -> list[Candidate]:
        return top_tokens(self.trace.logits[-1].float().softmax(-1), self.tok, 10)

    @functools.cached_property
    @_runs_model
    def cat(self) -> CatSentence:
        ids = self.tok.encode(CAT_SENTENCE)
        texts = self.tok.token_texts(ids)
        query, key = word_position(texts, QUERY_WORD), word_position(texts, KEY_WORD)
        trace = self.model.run_with_capture(ids, names=[act_name(s, "*") for s in ("q", "k", "v", "pattern")])
        attention = attention_to(trace, query, key)
        layer, head, weight = best_head(attention)
        return CatSentence(ids, texts, query, key, trace, attention, layer, head, weight)

    @property
    def cat_query_in_prompt(self) -> int | None:
        """The position of "cat" when the prompt starts with the cat sentence, else None."""
        cat = self.cat
        return cat.query if self.ids[: len(cat.ids)] == cat.ids else None

    @functools.cached_property
    def sharpness(self) -> Sharpness:
        cat = self.cat
        dots = query_key_dots(cat.trace, cat.layer, cat.head, cat.query)
        return softmax_sharpness(dots, self.config.d_head)

    @functools.cached_property
    @_runs_model
    def mask_trace(self) -> Trace:
        """Layer 0's recorded mask and pattern over the prompt's first MASK_TOKENS tokens."""
        names = [act_name("mask", 0), act_name("pattern", 0)]
        return self.model.run_with_capture(self.ids[:MASK_TOKENS], names=names)

    @functools.cached_property
    def norms(self) -> ResidualNorms:
        return residual_norms(self.trace, self.config.n_layer)

    @functools.cached_property
    @_runs_model
    def attribution(self) -> DirectLogitAttribution:
        """Each part's direct push on the top next token's logit at the prompt's last position."""
        return direct_logit_attribution(self.model, self.trace, self.last, self.next_tokens[0].token_id)

    @functools.cached_property
    def temperatures(self) -> TemperatureTable:
        return temperature_table(self.trace.logits[-1], self.tok)

    @functools.cached_property
    @_runs_model
    def continuation(self) -> Continuation | None:
        """CONTINUE_TOKENS greedy tokens after the prompt (fewer near the end of the context),
        or None when the prompt fills the context."""
        room = self.config.n_positions - len(self.ids)
        if room < 1:
            return None
        return greedy_continuation(self.model, self.tok, self.ids, min(CONTINUE_TOKENS, room))

    @functools.cached_property
    @_runs_model
    def demos(self) -> list[Continuation]:
        """The prompting demos (a TL;DR summary, a translation), written greedily; those whose
        prompt does not fit the model's context are left out."""
        fits = [(label, prompt, n) for label, prompt, n in DEMOS
                if len(self.tok.encode(prompt)) < self.config.n_positions]
        return [greedy_continuation(self.model, self.tok, prompt, n, label) for label, prompt, n in fits]
