"""The GPT-2 tokenizer, built offline from assets/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import gpt2viz
from gpt2viz.tokenizer import BPE_DIR, mergeable_ranks


def test_known_ids(tok) -> None:
    assert tok.encode("Hello, world!") == [15496, 11, 995, 0]
    assert tok.encode(" the") == [262]
    assert tok.n_vocab == 50257 and tok.eot_token == gpt2viz.EOT_ID == 50256
    assert tok.decode([15496, 11, 995, 0]) == "Hello, world!"


def test_endoftext_typed_by_a_user_is_text(tok) -> None:
    ids = tok.encode("a <|endoftext|> b")
    assert gpt2viz.EOT_ID not in ids
    assert tok.decode(ids) == "a <|endoftext|> b"
    assert tok.encode("<|endoftext|>", allowed_special="all") == [gpt2viz.EOT_ID]


@pytest.mark.parametrize("text", [
    "naïve café, façade", "日本語のテキスト", "مرحبا بالعالم", "emoji 🤖🎉 👩‍👩‍👧", "zero\u200bwidth",
    "tabs\tand\nnewlines\r\n", "<script>alert(1)</script><b>x</b>", "",
])
def test_unicode_round_trip(tok, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_token_text_shows_partial_bytes(tok) -> None:
    pieces = tok.token_texts(tok.encode("🤖"))
    assert len(pieces) > 1 and all("\\x" in p for p in pieces)
    assert tok.token_text(262) == " the"


def test_works_with_network_blocked(tok) -> None:
    # The autouse `no_network` fixture refuses every outside connection; building afresh works.
    gpt2viz.load_tokenizer.cache_clear()
    assert gpt2viz.load_tokenizer().encode("offline") == tok.encode("offline")


def test_damaged_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(BPE_DIR / "encoder.json", tmp_path / "encoder.json")
    (tmp_path / "vocab.bpe").write_bytes((BPE_DIR / "vocab.bpe").read_bytes()[:-10])
    with pytest.raises(gpt2viz.LoadError, match="vocab.bpe has sha256 .* damaged"):
        mergeable_ranks(tmp_path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(gpt2viz.LoadError, match="encoder.json is missing"):
        mergeable_ranks(tmp_path)


def test_character_groups_join_byte_tokens(tok) -> None:
    ids = tok.encode("I ❤️ 🐈 cats 漢字")
    groups = tok.character_groups(ids)
    for start, end, text in groups:
        assert tok.decode(ids[start:end]) == text
        assert all("\\x" in tok.token_text(i) for i in ids[start:end])  # each part alone is only bytes
    assert [text for _, _, text in groups] == [" ❤", " 🐈", " 漢", "字"]
    assert tok.character_groups(tok.encode("plain ascii text")) == []
    cut = tok.encode("🐈")[:-1]  # the last byte missing: nothing to join, nothing invented
    assert tok.character_groups(cut) == []


def test_single_token_names_what_must_be_one_token():
    tok = gpt2viz.load_tokenizer()
    assert tok.single_token(" Mary", "The answer") == tok.encode(" Mary")[0]
    two = r"The answer ' Mary Jane' is 2 tokens \[' Mary', ' Jane'\]; it must be"
    with pytest.raises(ValueError, match=two):
        tok.single_token(" Mary Jane", "The answer")
    with pytest.raises(ValueError, match=r"The distractor '' is 0 tokens \[\]; .*Type exactly one token"):
        tok.single_token("", "The distractor")
