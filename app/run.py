"""One session's generation: the page's sampling settings and the `gpt2viz.Generation` they start."""

from __future__ import annotations

from dataclasses import dataclass

import gpt2viz
from gpt2viz import GPT2, Generation, act_name

from .resources import tokenizer

STOP_MESSAGES = {
    gpt2viz.STOP_ENDOFTEXT: f"the model chose `{gpt2viz.EOT_TEXT}`",
    gpt2viz.STOP_CONTEXT: "the context limit of the model is reached",
    gpt2viz.STOP_MAX_TOKENS: "the number of new tokens asked for is reached",
}
# Every layer's pattern: what each step's attention row (shown on the Attention page) needs.
PATTERNS = (act_name("pattern", "*"),)


@dataclass(frozen=True)
class Settings:
    greedy: bool
    temperature: float
    top_k: int  # 0 = off
    top_p: float  # 1.0 = off
    seed: int
    max_new_tokens: int

    def generate_kwargs(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": 0.0 if self.greedy else self.temperature,
            "top_k": self.top_k or None,
            "top_p": self.top_p if self.top_p < 1.0 else None,
            "seed": self.seed,
        }


def start(model: GPT2, prompt: str, settings: Settings) -> Generation:
    """A new generation (raises gpt2viz.PromptError for a prompt that cannot run)."""
    return Generation(model, tokenizer(), prompt, names=PATTERNS, **settings.generate_kwargs())


def matches(run: Generation, model: GPT2, prompt: str, settings: Settings | None = None) -> bool:
    """True when `run` is this model's generation of `prompt` (with these settings, if given)."""
    same = run.model is model and run.prompt == prompt
    return same and (settings is None or run.settings == settings.generate_kwargs())
