"""The model this session chose: loaded before anything else of a run needs it (streamlit_app.py),
drawn as the sidebar's picker, and read by the pages (`current`). The one writer of the model
picker's keys (MODEL_CHOICE, LOCAL_PATH) and of this run's loaded model (LOADED)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import gpt2viz

from . import share, state
from .class_settings import ALLOW_LOCAL_ENV, MODELS_ENV, ClassSettings, class_settings
from .models import DEFAULT_SOURCE, CurrentModel, load

LOCAL = "local folder or file…"


@dataclass(frozen=True)
class NoModel:
    """Why this run has no model: shown under the picker, and the page is not run."""

    message: str
    is_error: bool  # a model that failed to load (else: one still to be named)


def model_choices(offered: ClassSettings) -> list[str]:
    """The picker's options: this server's default ("") first, then the other models it offers,
    then a local path when it allows them."""
    if offered.models is not None:
        choices = [DEFAULT_SOURCE, *offered.models[1:]]
    else:
        choices = [DEFAULT_SOURCE, gpt2viz.BUNDLED_NAME, *gpt2viz.PRESETS]
    return [*choices, LOCAL] if offered.allow_local else choices


def source_of(choice: str, offered: ClassSettings) -> str:
    """What `load` is given for a picker choice: the class's first model stands for the default."""
    return offered.models[0] if choice == DEFAULT_SOURCE and offered.models is not None else choice


def load_chosen() -> CurrentModel | NoModel:
    """Load the model the picker holds (before the picker is drawn: its value is already this
    run's). A link's model that fails to load falls back to the default, with a notice (the run
    starts again)."""
    offered = class_settings()
    state.fit_choice(state.MODEL_CHOICE, model_choices(offered), DEFAULT_SOURCE)
    choice = state.get(state.MODEL_CHOICE)
    source = source_of(choice, offered)
    if choice == LOCAL:
        source = state.get(state.LOCAL_PATH).strip()
        if not source:
            return _no_model(NoModel("Type the path of a local model.", is_error=False))
    try:
        loaded = load(source)
    except gpt2viz.LoadError as err:
        if share.drop_link_model(choice):  # a link's model: fall back to the default
            state.put(state.MODEL_CHOICE, DEFAULT_SOURCE)
            st.rerun()
        return _no_model(NoModel(f"Could not load this model. {err}", is_error=True))
    st.session_state[state.LOADED] = loaded
    return loaded


def _no_model(reason: NoModel) -> NoModel:
    st.session_state.pop(state.LOADED, None)
    return reason


def current() -> CurrentModel:
    """This run's model, loaded by streamlit_app.py before the page runs."""
    loaded = st.session_state.get(state.LOADED)
    if loaded is None:
        raise RuntimeError("No model was loaded in this run: pages run from streamlit_app.py, "
                           "which loads it.")
    return loaded


def _choice_label(choice: str, offered: ClassSettings) -> str:
    if choice == DEFAULT_SOURCE:
        return "default" if offered.models is None else f"{offered.models[0]} (default)"
    if choice == gpt2viz.BUNDLED_NAME:
        return f"{choice} (bundled, offline)"
    return choice


def picker_help(offered: ClassSettings) -> str:
    if offered.models is None:
        default = "default: $GPT2VIZ_MODEL if set, else gpt2, else the bundled model."
    else:
        default = f"This server offers {', '.join(offered.models)} ({MODELS_ENV})."
    if offered.allow_local:
        return default
    return (f"{default} Loading a folder or file from the server's disk is off: whoever starts the server "
            f"can allow it with {ALLOW_LOCAL_ENV}=1.")


def model_picker() -> None:
    """The picker (and, for a local model, its path box), drawn where the caller is."""
    offered = class_settings()
    choice = state.widget(st.selectbox, "Model", model_choices(offered), key=state.MODEL_CHOICE,
                          format_func=lambda option: _choice_label(option, offered),
                          help=picker_help(offered))
    if choice == LOCAL:
        state.widget(st.text_input, "Folder with config.json + model.safetensors, or a .safetensors file",
                     key=state.LOCAL_PATH)
