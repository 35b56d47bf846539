"""One session's generation: the live step iterator and a compact record of every step so far."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import gpt2viz
from gpt2viz import GPT2, Step
from gpt2viz.viz.steps import PATTERN_NAMES, StepRecord

STOP_MESSAGES = {
    gpt2viz.STOP_ENDOFTEXT: "the model chose `<|endoftext|>`",
    gpt2viz.STOP_CONTEXT: "the context limit of the model is reached",
    gpt2viz.STOP_MAX_TOKENS: "the number of new tokens asked for is reached",
}


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


@dataclass
class GenerationRun:
    """Steps generated so far for (source, prompt, settings); `advance` adds one more."""

    source: str
    prompt: str
    settings: Settings
    n_layer: int
    steps: list[StepRecord] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    _iterator: Iterator[Step] | None = None

    @classmethod
    def start(cls, model: GPT2, source: str, prompt: str, settings: Settings) -> GenerationRun:
        run = cls(source, prompt, settings, model.config.n_layer)
        run._iterator = gpt2viz.generate(model, gpt2viz.load_tokenizer(), prompt,
                                         names=PATTERN_NAMES, **settings.generate_kwargs())
        return run

    def matches(self, source: str, prompt: str, settings: Settings | None = None) -> bool:
        same = self.source == source and self.prompt == prompt
        return same and (settings is None or self.settings == settings)

    @property
    def finished(self) -> bool:
        return bool(self.steps) and self.steps[-1].stop_reason is not None

    @property
    def ids(self) -> list[int]:
        """Prompt and generated tokens."""
        return self.prompt_ids + [s.token_id for s in self.steps]

    def advance(self) -> StepRecord:
        """Generate one more token (raises gpt2viz.PromptError on the first call for a bad prompt)."""
        if self._iterator is None or self.finished:
            raise RuntimeError("This generation has finished.")
        step = next(self._iterator)
        if step.index == 0:
            self.prompt_ids = list(step.trace.ids)
        record = StepRecord.from_step(step, self.n_layer)
        self.steps.append(record)
        if record.stop_reason is not None:
            self._iterator = None  # frees the key/value cache
        return record
