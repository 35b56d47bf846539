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
NUMBERS_UP_TO = 64  # a strip of at most this many tokens shows every token's probability under it
KEY_TICKS = (1.0, 0.1, 0.01, 0.001)  # the probabilities the legend marks, besides its red end


def surprise_share(prob: float) -> float:
    """How far along the surprise scale, 0 (expected) to 1 (SURPRISE_SCALE_BITS or more), a token
    of probability `prob` is: its bits of surprise, −log₂ p, over the scale's."""
    return min(1.0, max(0.0, -math.log2(max(prob, 1e-30)) / SURPRISE_SCALE_BITS))


def surprise_colour(prob: float) -> str:
    """The colour of a token with probability `prob` given those before it: pale green when the
    model expected it, through to dark red, on a scale of bits (−log₂ p, so each halving of the
    probability moves it as far)."""
    share = surprise_share(prob)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(EXPECTED_RGB, SURPRISING_RGB, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def short_percent(prob: float) -> str:
    """A probability in at most five characters, to print under a token: 42%, 3%, 0.4%, <0.1%."""
    if prob >= 0.01:
        return f"{prob:.0%}"
    return f"{prob:.1%}" if prob >= 0.001 else "<0.1%"


def surprise_key_html(every_number: bool = True) -> str:
    """The legend of the surprise bars: the colour scale from expected to unexpected, marked with
    the probabilities p of KEY_TICKS and of its red end (1 in 2**SURPRISE_SCALE_BITS, or less).
    It names where p is written: under every token, or (not `every_number`) the selected one."""
    end = 2 ** -SURPRISE_SCALE_BITS
    marks = [(p, f"{p:.0%}" if p >= 0.01 else f"{p:.1%}") for p in KEY_TICKS]
    marks.append((end, f"≤ {end:.4%}"))
    ticks = "".join(f"<span class='tok-key-tick' style='left:{surprise_share(p):.1%}'>{text}</span>"
                    for p, text in marks)
    title = f"p of 1 in {round(1 / end):,} or less is as red as it gets"
    name = ("Under each token, its probability p and a bar:" if every_number
            else "Under each token a bar, and under the selected one its probability p:")
    return (f"<div class='tok-key' title='{title}'><span class='tok-key-name'>{name}</span>"
            "<span class='tok-key-scale'><span class='tok-key-ends'><span>expected</span>"
            "<span>unexpected</span></span><span class='tok-key-bar'></span>"
            f"<span class='tok-key-ticks'>{ticks}</span></span></div>")


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
    under each token shows how surprising it was (`surprise_colour`), and a legend under the strip
    says what its colours mean. The probability itself is written under each token while the strip
    has at most NUMBERS_UP_TO tokens, else under the selected one: visible without hovering (which
    touch screens cannot), in full on hover. It is drawn by CSS from the token's data-p attribute,
    so the tokens' text (and the strip's, as a browser copies it) stays the tokens'."""
    given = probs is not None
    probs = list(probs) if given else [None] * (len(prompt) + len(generated))

    def box(text: str, css: str, title: str, prob: float | None) -> str:
        shown = html.escape(visible_token(text))
        brk = "<br>" if text.endswith("\n") else ""
        extra = ""
        if prob is not None:
            number = html.escape(short_percent(prob))
            extra = f' style="box-shadow:inset 0 -4px 0 {surprise_colour(prob)}" data-p="{number}"'
            title += f": p = {prob:.2%}, {-math.log2(max(prob, 1e-30)):.1f} bits of surprise"
        return f'<span class="{css}"{extra} title="{html.escape(title)}">{shown}</span>{brk}'

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
    if not given:
        return f"<style>{_STRIP_CSS}</style>{bar}<div class='tok-strip'>{''.join(parts)}</div>"
    every = len(probs) <= NUMBERS_UP_TO
    numbers = "tok-numbers-all" if every else "tok-numbers-selected"
    return (f"<style>{_STRIP_CSS}{_KEY_CSS}</style>{bar}"
            f"<div class='tok-strip {numbers}'>{''.join(parts)}</div>{surprise_key_html(every)}")


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
# Each token's probability under its text, above its bar (drawn from data-p, so it is no part of
# the token's text); the legend under the strip. The gradient is the one surprise_colour
# interpolates (sRGB, even in bits), so a tick's place on it is its colour under a token.
_KEY_CSS = (
    ".tok-numbers-all .tok,.tok-numbers-selected [data-p].tok-selected{display:inline-block;"
    "vertical-align:top;text-align:center;line-height:1.25;padding-bottom:5px;margin:2px 1px}"
    ".tok-numbers-all [data-p]::after,.tok-numbers-selected [data-p].tok-selected::after{"
    "content:attr(data-p);display:block;font-size:0.68rem;line-height:1.1}"
    # a ruby's bracket would be drawn at the text's baseline, behind the taller boxes: under them
    ".tok-numbers-all .tok-group{border-bottom:0}"
    ".tok-numbers-all .tok-group .tok{border-bottom:2px solid #9c27b0}"
    ".tok-key{display:flex;flex-wrap:wrap;align-items:center;gap:2px 10px;margin:6px 0 2px;"
    "font-size:0.78rem;color:#37474f}"
    ".tok-key-scale{display:inline-block;width:18em;max-width:100%;line-height:1.2}"
    ".tok-key-ends{display:flex;justify-content:space-between}"
    f".tok-key-bar{{display:block;height:0.6em;border-radius:2px;"
    f"background:linear-gradient(to right,rgb{EXPECTED_RGB},rgb{SURPRISING_RGB})}}"
    ".tok-key-ticks{display:block;position:relative;height:1.3em;font-size:0.72rem}"
    ".tok-key-tick{position:absolute;top:0;transform:translateX(-50%);white-space:nowrap}"
    ".tok-key-tick:first-child{transform:none}.tok-key-tick:last-child{transform:translateX(-100%)}"
)
