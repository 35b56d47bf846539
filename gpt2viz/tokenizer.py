"""GPT-2's byte-pair tokenizer: tiktoken's `gpt2` encoding, built offline from files in assets/.

tiktoken would download vocab.bpe and encoder.json on first use; we ship byte-identical copies
(see assets/gpt2_bpe/README.md) and check the same sha256 hashes tiktoken checks.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Literal

import tiktoken
from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

from .errors import LoadError
from .paths import ASSETS

BPE_DIR = ASSETS / "gpt2_bpe"
EOT_TEXT = ENDOFTEXT  # "<|endoftext|>", GPT-2's one special token
EOT_ID = 50256
_HASHES = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


class GPT2Tokenizer(tiktoken.Encoding):
    """tiktoken's gpt2 Encoding whose `encode` treats `<|endoftext|>` in text as plain text.

    A user who types "<|endoftext|>" gets the characters, not the special token, unless the
    caller passes ``allowed_special={"<|endoftext|>"}`` (or "all").
    """

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = (),
    ) -> list[int]:
        return super().encode(
            text, allowed_special=allowed_special, disallowed_special=disallowed_special
        )

    def token_text(self, token_id: int) -> str:
        """One token as readable text; bytes that are only part of a character show as \\xNN."""
        return self.decode_single_token_bytes(token_id).decode("utf-8", errors="backslashreplace")

    def token_texts(self, ids: Iterable[int]) -> list[str]:
        return [self.token_text(i) for i in ids]

    def single_token(self, text: str, what: str) -> int:
        """The id of `text` when it is exactly one token; else a ValueError that names `what` (an
        answer, a distractor) and says what to type."""
        ids = self.encode(text)
        if len(ids) != 1:
            raise ValueError(f"{what} {text!r} is {len(ids)} tokens {self.token_texts(ids)}; it must be "
                             "exactly one token. Type exactly one token, with its leading space if it "
                             "has one (e.g. ' Mary').")
        return ids[0]

    def character_groups(self, ids: Sequence[int]) -> list[tuple[int, int, str]]:
        """(start, end, text) for each run of tokens that are only parts of characters on their own
        (byte-level BPE splits an emoji or a CJK character into several tokens) and whole together:
        ids[start:end] decode to `text`."""
        pieces = [self.decode_single_token_bytes(int(i)) for i in ids]
        groups, i = [], 0
        while i < len(pieces):
            if _decodes(pieces[i]):
                i += 1
                continue
            for end in range(i + 2, min(i + 8, len(pieces)) + 1):  # a character is at most 4 bytes
                joined = b"".join(pieces[i:end])
                if _decodes(joined):
                    groups.append((i, end, joined.decode("utf-8")))
                    i = end
                    break
            else:
                i += 1  # bytes that never become a character (cut off at the end): left as they are
        return groups


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_verified(name: str, directory: Path) -> bytes:
    path = directory / name
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LoadError(
            f"The GPT-2 tokenizer file {path} is missing ({err.strerror}). It ships with "
            "gpt2viz in assets/gpt2_bpe/; restore it from the repository."
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != _HASHES[name]:
        raise LoadError(
            f"{path} has sha256 {digest}, not OpenAI's {_HASHES[name]}: the file is damaged or "
            "not GPT-2's. Restore it from the repository."
        )
    return data


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each of the 256 bytes (from its encoder.py)."""
    direct = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    table = {chr(b): b for b in direct}
    shifted = 0
    for b in range(256):
        if b not in table.values():
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


def mergeable_ranks(directory: Path = BPE_DIR) -> dict[bytes, int]:
    """Token bytes → id, from encoder.json, checked against the merge order in vocab.bpe."""
    alphabet = _byte_alphabet()

    def to_bytes(s: str) -> bytes:
        return bytes(alphabet[c] for c in s)

    encoder = json.loads(_read_verified("encoder.json", directory))
    merges = _read_verified("vocab.bpe", directory).decode().split("\n")[1:-1]
    ranks = {to_bytes(k): v for k, v in encoder.items() if k != EOT_TEXT}
    # tiktoken needs ids ordered like merge priority: 256 single bytes, then one per merge.
    if len(ranks) != 256 + len(merges):
        raise LoadError("encoder.json and vocab.bpe disagree on the number of tokens.")
    return ranks


@functools.cache
def load_tokenizer() -> GPT2Tokenizer:
    """The GPT-2 tokenizer (50257 ids, `<|endoftext|>` = 50256), with no network access."""
    return GPT2Tokenizer(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=r50k_pat_str,
        mergeable_ranks=mergeable_ranks(),
        special_tokens={EOT_TEXT: EOT_ID},
    )
