"""This session's generation, the one owner of it: which one it is, its serial number, and the
token sequence the analysis pages show (the generation's, else the prompt's).

A generation becomes the session's with `set_generation` (the Generate page, a link's replay,
the example a new session opens on) and is numbered by a serial that grows within the session:
widgets that follow a generation (the step sampling controls, the Q·K·V query) compare serials,
never objects (`state.follows`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

import gpt2viz
from gpt2viz import GPT2, Generation, act_name
from gpt2viz.errors import EMPTY_PROMPT
from gpt2viz.viz.tokens import token_labels

from . import state
from .class_settings import class_settings
from .computations import store_key_values
from .models import CurrentModel, tokenizer
from .settings import DEFAULT_SETTINGS, Settings
from .step_worker import SessionGone, take_steps

log = logging.getLogger(__name__)

STOP_MESSAGES = {
    gpt2viz.STOP_ENDOFTEXT: f"the model chose `{gpt2viz.EOT_TEXT}`",
    gpt2viz.STOP_CONTEXT: "the context limit of the model is reached",
    gpt2viz.STOP_MAX_TOKENS: "the number of new tokens asked for is reached",
}
# Every layer's pattern: what each step's attention row (shown on the Attention page) needs.
PATTERNS = (act_name("pattern", "*"),)


@dataclass(frozen=True)
class SessionGeneration:
    serial: int  # 1 for the session's first generation, then 2, …
    generation: Generation
    opened_on: bool = False  # the example the session opened on, not one it wrote

    def is_for(self, model: GPT2, prompt: str, settings: Settings | None = None) -> bool:
        """True when this is `model`'s generation of `prompt` as the session now starts it (with
        these settings, if given)."""
        generation = self.generation
        same = generation.model is model and generation.prompt == prompt_input(prompt)
        return same and (settings is None or generation.settings == settings.generate_kwargs())


def prompt_input(prompt: str, start_with_eot: bool | None = None) -> str | list[int]:
    """What the model is given for the prompt text: the text, or its tokens after <|endoftext|>
    when prompts start with it (as GPT-2 saw each text begin in training; default: the session's
    choice)."""
    if not (state.get(state.START_WITH_EOT) if start_with_eot is None else start_with_eot):
        return prompt
    if not prompt.strip():
        raise gpt2viz.PromptError(EMPTY_PROMPT)
    return [gpt2viz.EOT_ID, *tokenizer().encode(prompt)]


def start(model: GPT2, prompt: str, settings: Settings, start_with_eot: bool | None = None) -> Generation:
    """A new generation, not yet the session's (raises gpt2viz.PromptError for a prompt that cannot run).
    Its cache outlives its end, to be handed to the recording store by `generate`."""
    return Generation(model, tokenizer(), prompt_input(prompt, start_with_eot), names=PATTERNS,
                      retain_cache=True, **settings.generate_kwargs())


def browser_gone() -> Callable[[], bool]:
    """Whether this session's browser has gone (closed, or lost its connection), asked cheaply
    between steps. Never, outside a served app (a test's AppTest)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return lambda: False
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: not runtime.is_active_session(session_id)


def generate(source: str, generation: Generation, until: int | None = None,
             after_step: Callable[[], None] | None = None) -> None:
    """Advance a generation of `start` through the step worker (`step_worker.take_steps`); once it
    has finished, its keys and values go to the recording store, where the Why page's steps read
    them. When the browser goes away the steps stop (no CPU for a page nobody sees), and so does
    the run: between two steps, or at the next redraw, where Streamlit stops a run whose browser
    left."""
    gone = browser_gone()
    try:
        take_steps(generation, until, after_step, gone)
    except SessionGone:
        st.stop()
    finally:  # a rerun asked for during the last step's redraw stops the page there
        if not generation.finished and gone():
            log.info("A generation stopped after %d of %d new tokens: its browser left.",
                     len(generation.steps), generation.settings["max_new_tokens"])
        store_key_values(source, generation)


def set_generation(generation: Generation, opened_on: bool = False) -> SessionGeneration:
    """Make `generation` this session's, under a new serial; its last step becomes the selected one."""
    serial = st.session_state.get(state.GENERATION_SERIAL, 0) + 1
    st.session_state[state.GENERATION_SERIAL] = serial
    kept = SessionGeneration(serial, generation, opened_on)
    st.session_state[state.GENERATION] = kept
    select_step(max(0, len(generation.steps) - 1))
    return kept


def forget() -> None:
    st.session_state.pop(state.GENERATION, None)


def last() -> SessionGeneration | None:
    """The session's generation, whatever prompt or model it was made with."""
    kept = st.session_state.get(state.GENERATION)
    return kept if kept is not None and kept.generation.steps else None


def current(loaded: CurrentModel) -> SessionGeneration | None:
    """The session's generation when it is of the current model and prompt: what the pages analyse."""
    kept = last()
    return kept if kept is not None and kept.is_for(loaded.model, state.get(state.PROMPT)) else None


def select_step(index: int, chosen: bool = False) -> None:
    """Select step `index` of the session's generation (`chosen`: as the person's choice, which a
    share link then holds)."""
    (state.choose if chosen else state.put)(state.STEP, index)


def step_picker(kept: SessionGeneration) -> gpt2viz.Step:
    """The shared step picker (same key on every page); returns the selected step."""
    steps = kept.generation.steps
    select_step(selected_step(kept))
    if len(steps) == 1:
        return steps[0]
    index = state.widget(st.select_slider, "Generation step", list(range(len(steps))), key=state.STEP,
                         format_func=lambda i: f"{i + 1}: {steps[i].text!r}")
    return steps[index]


def selected_step(kept: SessionGeneration) -> int:
    """The index of the selected step, the last one when none (or one past the end) was selected."""
    index, count = state.get(state.STEP), len(kept.generation.steps)
    return index if index in range(count) else count - 1


def example_settings(model: GPT2) -> Settings:
    """The default settings, asking for no more tokens than this server allows."""
    most = class_settings().token_cap(model.config.n_positions)
    return replace(DEFAULT_SETTINGS, max_new_tokens=min(DEFAULT_SETTINGS.max_new_tokens, most))


@st.cache_resource(show_spinner="Writing the example…", max_entries=4)
def example(_model: GPT2, source: str, start_with_eot: bool, settings: Settings) -> Generation:
    """The default prompt written to the end, once per process, model, start and settings: the
    finished example a new session opens on. Finished, so sessions can share it."""
    generation = start(_model, state.DEFAULT_PROMPT, settings, start_with_eot)
    generate(source, generation)  # sessions opening together interleave
    return generation


def open_example(loaded: CurrentModel) -> None:
    """A session on the default prompt with no generation of its own shows the finished example
    (the one for its start with or without <|endoftext|>), on whatever page it is, as a fresh
    visit does."""
    kept = last()
    if state.get(state.PROMPT) != state.DEFAULT_PROMPT or (kept is not None and not kept.opened_on):
        return
    if kept is None or current(loaded) is None:
        set_generation(example(loaded.model, loaded.source, bool(state.get(state.START_WITH_EOT)),
                     example_settings(loaded.model)), opened_on=True)


def is_example(kept: SessionGeneration) -> bool:
    """True when the generation is the example a new session opens on (written to the end with
    the default prompt and settings): a fresh visit shows the same tokens."""
    generation = kept.generation
    return (generation.finished and generation.prompt == prompt_input(state.DEFAULT_PROMPT)
            and generation.settings == example_settings(generation.model).generate_kwargs())


def analysed_ids(loaded: CurrentModel) -> list[int]:
    """Prompt + generated tokens; raises gpt2viz.PromptError for a prompt that cannot run."""
    kept = current(loaded)
    if kept is not None:
        return kept.generation.ids
    return gpt2viz.encode_prompt(loaded.model, tokenizer(), prompt_input(state.get(state.PROMPT)), reserve=0)


def analysed_ids_or_stop(loaded: CurrentModel) -> list[int]:
    """`analysed_ids`, or the prompt's problem shown as a warning and the page stopped."""
    try:
        return analysed_ids(loaded)
    except gpt2viz.PromptError as err:
        st.warning(str(err))
        st.stop()


def labels_for(ids: list[int]) -> list[str]:
    """Each token's display label (unique: text and position)."""
    return token_labels(tokenizer().token_texts(ids))


def to_extend(loaded: CurrentModel, prompt: str, settings: Settings,
              restart_finished: bool) -> SessionGeneration | None:
    """The generation Next token / Generate goes on with: the session's, if it is of this model,
    prompt and settings and can go on, else a new one, kept (raises gpt2viz.PromptError). None,
    with a note, for Next token on a finished one."""
    kept = last()
    if kept is not None and kept.is_for(loaded.model, prompt, settings):
        if not kept.generation.finished:
            return kept
        if not restart_finished:
            st.info("This generation has finished. Press Generate to run it again, or change the "
                    "prompt or settings.")
            return None
    return set_generation(start(loaded.model, prompt, settings))
