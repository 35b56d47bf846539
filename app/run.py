"""One session's generation: the sampling settings, their widgets, and the `gpt2viz.Generation`
they start or extend."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import gpt2viz
from gpt2viz import GPT2, Generation, act_name

from . import state
from .model_picker import CurrentModel
from .resources import advance_in_turns, tokenizer

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


DEFAULT_SETTINGS = Settings(
    greedy=state.DEFAULTS[state.GREEDY], temperature=state.DEFAULTS[state.TEMPERATURE],
    top_k=state.DEFAULTS[state.TOP_K], top_p=state.DEFAULTS[state.TOP_P], seed=state.DEFAULTS[state.SEED],
    max_new_tokens=state.DEFAULTS[state.MAX_NEW_TOKENS],
)


@st.cache_resource(show_spinner="Writing the example…", max_entries=2)
def example_run(_model: GPT2, source: str) -> Generation:
    """The default prompt generated to the end with the default settings, once per process and
    model: the finished example a new session opens on. Finished, so sessions can share it."""
    run = start(_model, state.DEFAULTS[state.PROMPT], DEFAULT_SETTINGS)
    advance_in_turns(run)  # sessions opening together interleave
    return run


def matches(run: Generation, model: GPT2, prompt: str, settings: Settings | None = None) -> bool:
    """True when `run` is this model's generation of `prompt` (with these settings, if given)."""
    same = run.model is model and run.prompt == prompt
    return same and (settings is None or run.settings == settings.generate_kwargs())


def kept_settings() -> Settings:
    """The sampling settings as the widgets last left them (for when they are not drawn)."""
    get = state.get
    return Settings(bool(get(state.GREEDY)), float(get(state.TEMPERATURE)), int(get(state.TOP_K)),
                    float(get(state.TOP_P)), int(get(state.SEED)), int(get(state.MAX_NEW_TOKENS)))


def settings_controls(max_tokens: int) -> Settings:
    """The sampling widgets (in the Generate page's popover); their values as Settings."""
    greedy = state.widget(st.toggle, "Greedy (always the most likely token)", key=state.GREEDY)
    c1, c2, c3 = st.columns(3)
    temperature = state.widget(c1.slider, "Temperature", 0.05, 2.0, step=0.05, key=state.TEMPERATURE,
                               disabled=greedy)
    top_k = state.widget(c2.number_input, "Top-k (0 = off)", 0, 50257, step=1, key=state.TOP_K,
                         disabled=greedy)
    top_p = state.widget(c3.slider, "Top-p (1 = off)", 0.05, 1.0, step=0.05, key=state.TOP_P, disabled=greedy)
    c4, c5 = st.columns(2)
    seed = state.widget(c4.number_input, "Seed", 0, 2**31 - 1, step=1, key=state.SEED, disabled=greedy)
    state.keep_within(state.MAX_NEW_TOKENS, range(1, max_tokens + 1), min(20, max_tokens))
    max_new = state.widget(c5.number_input, "Max new tokens", 1, max_tokens, step=1, key=state.MAX_NEW_TOKENS)
    return Settings(greedy, float(temperature), int(top_k), float(top_p), int(seed), int(max_new))


def run_to_extend(
    current: CurrentModel, prompt: str, settings: Settings, restart_finished: bool
) -> Generation | None:
    """The session's run to extend: the current one if it matches and can go on, else a new one."""
    run = st.session_state.get(state.RUN)
    if run is not None and run.steps and matches(run, current.model, prompt, settings):
        if not run.finished:
            return run
        if not restart_finished:
            st.info("This generation has finished. Press Generate to run it again, or change the "
                    "prompt or settings.")
            return None
    return start(current.model, prompt, settings)
