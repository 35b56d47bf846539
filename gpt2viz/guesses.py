"""A class's guesses for the next word: each guess checked, read as the token the model would
write first, counted, and ranked among the model's own probabilities."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .generation import Candidate
from .tokenizer import GPT2Tokenizer

MAX_GUESS_CHARS = 40

# Characters that break a guess onto several lines or are not text at all: control characters
# (newline, tab, NUL, DEL, ...) and Unicode's line and paragraph separators.
_CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")
# The text just written ends in an opening bracket or quote: the next word follows it without a
# space ('(' -> 'cat', not ' cat').
_OPENING_CATEGORIES = ("Ps", "Pi")


class GuessError(ValueError):
    """str() is one sentence telling the student what to change."""


def clean_guess(text: str) -> str:
    """The guess as it is kept: stripped of surrounding whitespace; GuessError if empty, longer than
    MAX_GUESS_CHARS, or containing control characters (newlines, tabs, \\x00...)."""
    guess = text.strip()
    if not guess:
        raise GuessError("Your guess is empty: type the word you think comes next.")
    if any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in guess):
        raise GuessError("Your guess has a line break, a tab or another control character in it: "
                         "type it on one line, with letters, digits or punctuation only.")
    if len(guess) > MAX_GUESS_CHARS:
        raise GuessError(f"Your guess is {len(guess)} characters long: shorten it to at most "
                         f"{MAX_GUESS_CHARS} (only its first word counts).")
    return guess


def guess_token(tok: GPT2Tokenizer, guess: str, text_so_far: str) -> int:
    """The token a guess stands for: the first token of the guess as the model would write it after
    `text_so_far`. GPT-2 writes a word after another with its space ('I love the' -> ' cat'), so a guess
    that starts with a letter or digit after text that does not end in whitespace is read with a space
    before it; punctuation (',' '.') and a guess after text ending in whitespace/newline are read as typed.

    A guess that starts with an emoji or another symbol is read like a word (with the space). A guess at
    the very start (empty `text_so_far`) or after an opening bracket or quote ('(', '“') is read as typed:
    no space goes there. The guess is checked first (`clean_guess`), so an empty or overlong one raises
    GuessError."""
    guess = clean_guess(guess)
    if _written_with_space(guess, text_so_far):
        guess = " " + guess
    return tok.encode(guess)[0]


def _written_with_space(guess: str, text_so_far: str) -> bool:
    if not text_so_far or text_so_far[-1].isspace():
        return False
    if unicodedata.category(text_so_far[-1]) in _OPENING_CATEGORIES:
        return False
    return not unicodedata.category(guess[0]).startswith("P")


@dataclass(frozen=True)
class GuessCount:
    token_id: int
    text: str  # the token's text (tok.token_text)
    count: int


@dataclass(frozen=True)
class RoundTally:
    guesses: list[GuessCount]  # most guessed first; ties in order of token text
    model: list[Candidate]  # the model's top candidates, highest first (gpt2viz.generation.Candidate)
    answered: int  # how many guesses in all


def tally(tok: GPT2Tokenizer, guesses: Iterable[str], text_so_far: str,
          model_top: list[Candidate]) -> RoundTally:
    """The class's guesses counted by the token each stands for (`guess_token`), beside the model's top
    candidates (`top_tokens` of the step's probabilities). Guesses are the ones `clean_guess` accepted;
    one it would refuse raises GuessError."""
    counts = Counter(guess_token(tok, g, text_so_far) for g in guesses)
    rows = [GuessCount(token_id, tok.token_text(token_id), n) for token_id, n in counts.items()]
    rows.sort(key=lambda r: (-r.count, r.text, r.token_id))
    return RoundTally(guesses=rows, model=list(model_top), answered=sum(counts.values()))


def rank_of(probs: torch.Tensor, token_id: int) -> int:
    """1 for the likeliest token of `probs` [vocab]; ties share the best rank (count of strictly larger
    + 1)."""
    if probs.dim() != 1:
        raise ValueError(f"rank_of needs one step's probabilities [vocab], not a tensor of shape "
                         f"{tuple(probs.shape)}: pass the last position's row.")
    if not 0 <= token_id < probs.numel():
        raise ValueError(f"Token id {token_id} is outside the vocabulary of {probs.numel()} tokens: "
                         "pass the id guess_token returned.")
    return int((probs > probs[token_id]).sum()) + 1
