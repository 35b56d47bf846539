"""The class's guesses: how a guess is checked, which token it is read as (checked against tiktoken's
own encoding of the text the model would write), how a round's guesses are counted, and ranks."""

from __future__ import annotations

import pytest
import torch

import gpt2viz
from gpt2viz.generation import Candidate
from gpt2viz.guesses import MAX_GUESS_CHARS, GuessError, clean_guess, guess_token, rank_of, tally


@pytest.fixture(scope="module")
def tok() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


# --- which token a guess is read as ------------------------------------------------------------------

# (text so far, what the student typed, what the model would write after the text)
READINGS = [
    ("I love the", "cat", " cat"),  # a word after a word: with its space
    ("line\n", "cat", "cat"),  # after a newline: as typed
    ("I love the ", "cat", "cat"),  # the space is already written
    ("I love the", ",", ","),  # punctuation sticks to the word before it
    ("I love the", ".", "."),
    ("John", "'s", "'s"),
    ("I am", "42", " 42"),  # a number is a word
    ("Count: 1", "1234567", " 1234567"),  # only its first token, " 123", counts
    ("I love the", "🐈", " 🐈"),  # an emoji is read like a word; its first token is a byte piece
    ("He said", "Привет", " Привет"),
    ("I live in", "東京", " 東京"),
    ("Она сказала\n", "Привет", "Привет"),
    ("I love the", "cats are great", " cats are great"),  # the first word's first token
    ("I love the (", "cat", "cat"),  # after an opening bracket: no space
    ("She said “", "hello", "hello"),
    ("", "Hello", "Hello"),  # nothing written yet: nothing to put a space after
    ("I love the", "  cat \n", " cat"),  # surrounding whitespace is the student's, not the model's
]


@pytest.mark.parametrize(("text", "guess", "written"), READINGS)
def test_a_guess_is_read_as_the_first_token_the_model_would_write(tok, text, guess, written) -> None:
    assert guess_token(tok, guess, text) == tok.encode(written)[0]
    # Independently: the first new token of the text with the guess written after it, wherever
    # tiktoken encodes the text the same on its own (not so after a trailing space, which joins
    # the word that follows it).
    before, after = tok.encode(text), tok.encode(text + written)
    if after[: len(before)] == before:
        assert guess_token(tok, guess, text) == after[len(before)]
    else:
        assert text.endswith(" ")


def test_the_space_makes_a_different_token(tok) -> None:
    # the readings above would pass by accident if the space made no difference
    assert tok.encode(" cat")[0] != tok.encode("cat")[0]
    assert tok.encode(" 🐈")[0] != tok.encode("🐈")[0]
    assert tok.encode(" Привет")[0] != tok.encode("Привет")[0]
    assert guess_token(tok, "cat", "I love the") != guess_token(tok, "cat", "line\n")


def test_guesses_that_share_their_first_token_are_one_token(tok) -> None:
    assert guess_token(tok, "cats", "I love the") == guess_token(tok, "cats are great", "I love the")
    assert tok.token_text(guess_token(tok, "1234567", "Count: 1")) == " 123"


def test_a_guess_is_checked_before_it_is_read(tok) -> None:
    with pytest.raises(GuessError):
        guess_token(tok, "   ", "I love the")
    with pytest.raises(GuessError):
        guess_token(tok, "x" * (MAX_GUESS_CHARS + 1), "I love the")


# --- checking a guess ---------------------------------------------------------------------------------

def test_a_guess_is_kept_stripped() -> None:
    assert clean_guess("  cat \n") == "cat"
    assert clean_guess("New York") == "New York"  # spaces inside stay
    assert clean_guess("x" * MAX_GUESS_CHARS) == "x" * MAX_GUESS_CHARS
    assert clean_guess("  " + "x" * MAX_GUESS_CHARS + "  ") == "x" * MAX_GUESS_CHARS  # counted once stripped


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("   ", "empty"),
    ("\n\t ", "empty"),
    ("x" * (MAX_GUESS_CHARS + 1),
     f"{MAX_GUESS_CHARS + 1} characters long: shorten it to at most {MAX_GUESS_CHARS}"),
    ("two\nlines", "line break"),
    ("tab\there", "line break, a tab"),
    ("nul\x00byte", "control character"),
    ("bell\x07", "control character"),
    ("line\u2028separator", "line break"),
])
def test_a_guess_that_cannot_be_kept_says_what_to_change(text, says) -> None:
    with pytest.raises(GuessError) as caught:
        clean_guess(text)
    message = str(caught.value)
    assert says in message
    # one sentence, addressed to the student
    assert message.startswith("Your guess") and message.endswith(".") and "\n" not in message
    assert message.count(". ") == 0
    assert isinstance(caught.value, ValueError)


# --- a round's tally ----------------------------------------------------------------------------------

def test_guesses_are_counted_by_token_most_guessed_first(tok) -> None:
    top = [Candidate(tok.encode(" dog")[0], " dog", 0.3), Candidate(tok.encode(" cat")[0], " cat", 0.2)]
    guesses = ["dog", "cat", "cat", " cat ", "cats", "cats are great", "bird", "ant"]
    result = tally(tok, iter(guesses), "I love the", top)

    counted = [(g.token_id, g.text, g.count) for g in result.guesses]
    assert counted == [
        (tok.encode(" cat")[0], " cat", 3),
        (tok.encode(" cats")[0], " cats", 2),
        # ties in order of the token's text
        (tok.encode(" ant")[0], " ant", 1),
        (tok.encode(" bird")[0], " bird", 1),
        (tok.encode(" dog")[0], " dog", 1),
    ]
    assert result.answered == len(guesses)
    assert result.model == top


def test_a_round_with_no_guesses(tok) -> None:
    top = [Candidate(tok.encode(" dog")[0], " dog", 0.3)]
    result = tally(tok, [], "I love the", top)
    assert result.guesses == [] and result.answered == 0 and result.model == top


def test_a_tally_reads_each_guess_after_the_same_text(tok) -> None:
    result = tally(tok, ["cat", ","], "line\n", [])
    assert {g.token_id for g in result.guesses} == {tok.encode("cat")[0], tok.encode(",")[0]}


def test_a_guess_that_was_never_checked_stops_the_tally(tok) -> None:
    with pytest.raises(GuessError, match="empty"):
        tally(tok, ["cat", "  "], "I love the", [])


# --- ranks --------------------------------------------------------------------------------------------

def test_rank_of_counts_the_strictly_likelier_tokens() -> None:
    probs = torch.tensor([0.1, 0.4, 0.2, 0.2, 0.05, 0.05])
    ranks = [rank_of(probs, i) for i in range(len(probs))]
    assert ranks == [4, 1, 2, 2, 5, 5]
    # independently: a token's place in the list sorted highest first, ties taking the first place
    ordered = sorted(probs.tolist(), reverse=True)
    assert ranks == [ordered.index(p) + 1 for p in probs.tolist()]


def test_rank_of_a_real_distribution_agrees_with_its_top_tokens(tok) -> None:
    probs = torch.softmax(torch.randn(tok.n_vocab, generator=torch.Generator().manual_seed(0)), dim=0)
    top = gpt2viz.generation.top_tokens(probs, tok, k=10)
    assert [rank_of(probs, c.token_id) for c in top] == list(range(1, 11))


@pytest.mark.parametrize(("probs", "token_id", "says"), [
    (torch.ones(2, 5) / 5, 0, "shape (2, 5)"),
    (torch.ones(5) / 5, 5, "outside the vocabulary of 5"),
    (torch.ones(5) / 5, -1, "outside the vocabulary of 5"),
])
def test_rank_of_refuses_what_it_cannot_rank(probs, token_id, says) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        rank_of(probs, token_id)
