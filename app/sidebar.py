"""The sidebar every page draws first: `current_model()` shows the model picker, loads the chosen
model, and draws the memory line, the figures' download format, the share link and the presenter
switch."""

from __future__ import annotations

import streamlit as st

import gpt2viz
from gpt2viz.budget import byte_size

from . import session, share, state
from .charts import image_format_picker
from .class_settings import ALLOW_LOCAL_ENV, MODELS_ENV, ClassSettings, class_settings
from .memory import memory_box
from .models import DEFAULT_SOURCE, CurrentModel, device_label, load, loaded_models
from .presenter import presenter_toggle

LOCAL = "local folder or file…"


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


def _choice_label(choice: str, offered: ClassSettings) -> str:
    if choice == DEFAULT_SOURCE:
        return "default" if offered.models is None else f"{offered.models[0]} (default)"
    if choice == gpt2viz.BUNDLED_NAME:
        return f"{choice} (bundled, offline)"
    return choice


def _picker_help(offered: ClassSettings) -> str:
    if offered.models is None:
        default = "default: $GPT2VIZ_MODEL if set, else gpt2, else the bundled model."
    else:
        default = f"This server offers {', '.join(offered.models)} ({MODELS_ENV})."
    if offered.allow_local:
        return default
    return (f"{default} Loading a folder or file from the server's disk is off: whoever starts the server "
            f"can allow it with {ALLOW_LOCAL_ENV}=1.")


def loaded_line(loaded: list[tuple[str, int]]) -> str:
    """Which models the server holds now, and their weights' memory."""
    held = ", ".join(f"{name} ({byte_size(size)})" for name, size in loaded)
    return f"Models loaded on this server: {held} · {byte_size(sum(size for _, size in loaded))} in all"


def current_model() -> CurrentModel:
    """Draw the picker in the sidebar and load the chosen model; on failure show the reason
    and stop the page. Below the picker, the "Share this view" link (app.share), drawn once a
    link's settings have been checked against the model."""
    offered = class_settings()
    with st.sidebar:
        choices = model_choices(offered)
        state.keep_within(state.MODEL_CHOICE, choices, DEFAULT_SOURCE)
        choice = state.widget(st.selectbox, "Model", choices, key=state.MODEL_CHOICE,
                              format_func=lambda option: _choice_label(option, offered),
                              help=_picker_help(offered))
        source = source_of(choice, offered)
        if choice == LOCAL:
            source = state.widget(
                st.text_input, "Folder with config.json + model.safetensors, or a .safetensors file",
                key=state.LOCAL_PATH,
            ).strip()
            if not source:
                st.info("Type the path of a local model.")
                st.stop()
        try:
            current = load(source)
        except gpt2viz.LoadError as err:
            if share.model_failed():  # a link's model: fall back to the default, with a notice
                st.rerun()
            st.error(f"Could not load this model. {err}")
            st.stop()
        model, config = current.model, current.model.config
        st.caption(f"**{model.name}** · {config.n_layer} layers × {config.n_head} heads · "
                   f"d_model {config.n_embd} · context {config.n_positions}")
        st.caption(f"Device: **{device_label(model)}**")
        st.caption(loaded_line(loaded_models()), help=_picker_help(offered))
        memory_box()
        image_format_picker()
        box = share.share_box()
    presenter_toggle()
    share.apply_link(current)  # a link's settings checked against the model, its generation written
    session.open_example(current)  # a new session on the default prompt opens on the finished example
    share.show(current, box)
    return current


def fallback_banner(current: CurrentModel) -> None:
    """One calm line when the default model fell back to the bundled one, details folded away."""
    if current.fallback_reason is None:
        return
    st.info(f"Offline: showing **{gpt2viz.BUNDLED_NAME}**, a small model trained by this project, "
            "not OpenAI's GPT-2.", icon="ℹ️")
    with st.expander("How to get the real GPT-2"):
        st.markdown(
            "On a machine with internet, run `.venv/bin/hf download openai-community/gpt2 config.json "
            "model.safetensors` and copy `~/.cache/huggingface` here; the app then starts with it. "
            "Or pick a model in the sidebar, or set `GPT2VIZ_MODEL` to a preset, a Hugging Face repo "
            "id, a folder or a `.safetensors` file."
        )
        st.caption(f"Why the real one did not load: {current.fallback_reason}")
