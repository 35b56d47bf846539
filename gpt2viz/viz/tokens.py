"""Token text made visible: whitespace and invisible characters shown, labels unique, HTML escaped."""

from __future__ import annotations

import html
import math
import unicodedata
from collections.abc import Sequence

_VISIBLE = {" ": "·", "\n": "↵", "\t": "⇥", "\r": "␍"}
EMPTY = "∅"


def visible_token(text: str) -> str:
    """`text` with spaces as ·, newlines as ↵, tabs as ⇥ and invisible format characters
    (zero-width space, direction marks) as ⟨U+XXXX⟩, so every token has a visible shape."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp"):
            out.append(f"⟨U+{ord(ch):04X}⟩")
        else:
            out.append(ch)
    return "".join(out) or EMPTY


def token_labels(texts: Sequence[str], start: int = 0) -> list[str]:
    """One unique axis label per token: "position visible-text"."""
    return [f"{start + i} {visible_token(t)}" for i, t in enumerate(texts)]


def thinned(labels: Sequence[str], max_ticks: int = 40) -> list[str]:
    """Every k-th label from the first, so that at most `max_ticks` are shown on an axis."""
    stride = max(1, -(-len(labels) // max_ticks))
    return list(labels[::stride])


EXPECTED_RGB, SURPRISING_RGB = (200, 230, 201), (183, 28, 28)  # 0 bits, SURPRISE_SCALE_BITS or more
SURPRISE_SCALE_BITS = 16.0  # −log₂ p at which the colour is fully red: p ≈ 1 in 65,000


def surprise_colour(prob: float) -> str:
    """The colour of a token with probability `prob` given those before it: pale green when the
    model expected it, through to dark red, on a scale of bits (−log₂ p, so each halving of the
    probability moves it as far)."""
    share = min(1.0, -math.log2(max(prob, 1e-30)) / SURPRISE_SCALE_BITS)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(EXPECTED_RGB, SURPRISING_RGB, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def token_strip_html(prompt: Sequence[str], generated: Sequence[str], selected: int | None = None,
                     groups: Sequence[tuple[int, int, str]] = (), progress: int | None = None,
                     probs: Sequence[float | None] | None = None) -> str:
    """The sequence as boxed tokens: prompt tokens grey, generated ones blue, the selected
    generated token (index into `generated`) outlined. Each of `groups` (start, end, character,
    positions over prompt + generated) is bracketed with the character it spells written above,
    for byte-level tokens that are only part of a character alone. All text is HTML-escaped.

    While a generation of `progress` new tokens at most is being written, a progress bar above
    the strip says how far it has got. It is part of the strip, not an element of its own, so that
    each step changes one element in the browser, not two (bench/README.md, "Serving a class").

    With `probs` (each token's probability given those before it, None where unknown), a bar
    under each token shows how surprising it was (`surprise_colour`), its number on hover."""
    probs = list(probs) if probs is not None else [None] * (len(prompt) + len(generated))

    def box(text: str, css: str, title: str, prob: float | None) -> str:
        shown = html.escape(visible_token(text))
        brk = "<br>" if text.endswith("\n") else ""
        style = ""
        if prob is not None:
            style = f' style="box-shadow:inset 0 -4px 0 {surprise_colour(prob)}"'
            title += f": p = {prob:.2%}, {-math.log2(max(prob, 1e-30)):.1f} bits of surprise"
        return f'<span class="{css}"{style} title="{html.escape(title)}">{shown}</span>{brk}'

    parts = [box(t, "tok tok-prompt", f"prompt token {i}", probs[i]) for i, t in enumerate(prompt)]
    for i, t in enumerate(generated):
        css = "tok tok-gen tok-selected" if i == selected else "tok tok-gen"
        parts.append(box(t, css, f"generated step {i + 1}", probs[len(prompt) + i]))
    for start, end, text in sorted(groups, reverse=True):  # from the end, so indices stay valid
        title = html.escape(f"tokens {start}–{end - 1} are the bytes of {text!r}")
        inner = "".join(parts[start:end])
        parts[start:end] = [f'<ruby class="tok-group" title="{title}">{inner}'
                            f"<rt>{html.escape(visible_token(text))}</rt></ruby>"]
    bar = "" if progress is None else (
        f"<div class='tok-progress'><progress value='{len(generated)}' max='{progress}'></progress>"
        f"Generating… {len(generated)} of {progress} tokens</div>")
    return f"<style>{_STRIP_CSS}</style>{bar}<div class='tok-strip'>{''.join(parts)}</div>"


_STRIP_CSS = (
    ".tok-strip{line-height:2.1;font-family:monospace;font-size:0.95rem}"
    ".tok{border:1px solid #bbb;border-radius:4px;padding:1px 3px;margin:0 1px;"
    "unicode-bidi:isolate;white-space:pre}"
    ".tok-prompt{background:#eceff1;color:#37474f}"
    ".tok-gen{background:#d6eaff;color:#0b3d91;border-color:#6fa8dc}"
    ".tok-selected{outline:2px solid #e4572e;outline-offset:1px}"
    ".tok-group{ruby-position:over;border-bottom:2px solid #9c27b0;padding-bottom:1px}"
    ".tok-group rt{font-size:0.9rem;color:#6a1b9a}"
    ".tok-progress{font-size:0.85rem;color:#555}"
    ".tok-progress progress{appearance:none;display:block;width:100%;height:6px;border:0;"
    "border-radius:3px;background:#eceff1;margin:4px 0 2px}"
    ".tok-progress progress::-webkit-progress-bar{background:#eceff1;border-radius:3px}"
    ".tok-progress progress::-webkit-progress-value{background:#ff4b4b;border-radius:3px}"
    ".tok-progress progress::-moz-progress-bar{background:#ff4b4b;border-radius:3px}"
)
