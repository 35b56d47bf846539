"""The sampling settings of a generation: their ranges (the widgets' and the links'), and the
`Settings` the Generate page starts a generation with (the widgets: app.sampling_controls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import state

TEMPERATURE_RANGE = (0.05, 2.0)
TOP_P_RANGE = (0.05, 1.0)  # 1.0 = off
SLIDER_STEP = 0.05
MAX_TOP_K = 50257  # the vocabulary: 0 = off
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Settings:
    greedy: bool
    temperature: float
    top_k: int  # 0 = off
    top_p: float  # 1.0 = off
    seed: int
    max_new_tokens: int

    def summary(self) -> str:
        """One line for beside the Sampling button, whose widgets are folded away."""
        if self.greedy:
            parts = ["greedy"]
        else:
            parts = [f"temperature {self.temperature:g}", f"seed {self.seed}"]
            parts += [f"top-k {self.top_k}"] if self.top_k else []
            parts += [f"top-p {self.top_p:g}"] if self.top_p < 1.0 else []
        tokens = f"{self.max_new_tokens} new token" + ("s" if self.max_new_tokens != 1 else "")
        return " · ".join([*parts, tokens])

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of gpt2viz.Generation (and its `settings`)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": 0.0 if self.greedy else self.temperature,
            "top_k": self.top_k or None,
            "top_p": self.top_p if self.top_p < 1.0 else None,
            "seed": self.seed,
        }


DEFAULT_SETTINGS = Settings(
    greedy=state.DEFAULTS[state.GREEDY], temperature=state.DEFAULTS[state.TEMPERATURE],
    top_k=state.DEFAULTS[state.TOP_K], top_p=state.DEFAULTS[state.TOP_P], seed=state.DEFAULTS[state.SEED],
    max_new_tokens=state.DEFAULTS[state.MAX_NEW_TOKENS],
)


def kept_settings(most_tokens: int | None = None) -> Settings:
    """The sampling settings as the widgets last left them (for when they are not drawn), asking
    for `most_tokens` new tokens at most."""
    get = state.get
    tokens = int(get(state.MAX_NEW_TOKENS))
    return Settings(bool(get(state.GREEDY)), float(get(state.TEMPERATURE)), int(get(state.TOP_K)),
                    float(get(state.TOP_P)), int(get(state.SEED)),
                    tokens if most_tokens is None else min(tokens, most_tokens))
