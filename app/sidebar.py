"""The sidebar every page draws first: `current_model()` shows the model picker, loads the chosen
model, and draws the memory line, the figures' download format, the share link and the presenter
switch."""

from __future__ import annotations

import streamlit as st

import gpt2viz

from . import session, share, state
from .charts import image_format_picker
from .memory import memory_box
from .models import DEFAULT_SOURCE, CurrentModel, device_label, load
from .presenter import presenter_toggle

LOCAL = "local folder or file…"
_CHOICES = [DEFAULT_SOURCE, gpt2viz.BUNDLED_NAME, *gpt2viz.PRESETS, LOCAL]


def _choice_label(choice: str) -> str:
    if choice == DEFAULT_SOURCE:
        return "default"
    if choice == gpt2viz.BUNDLED_NAME:
        return f"{choice} (bundled, offline)"
    return choice


def current_model() -> CurrentModel:
    """Draw the picker in the sidebar and load the chosen model; on failure show the reason
    and stop the page. Below the picker, the "Share this view" link (app.share), drawn once a
    link's settings have been checked against the model."""
    with st.sidebar:
        choice = state.widget(st.selectbox, "Model", _CHOICES, key=state.MODEL_CHOICE,
                              format_func=_choice_label,
                              help="default: $GPT2VIZ_MODEL if set, else gpt2, else the bundled model")
        source = choice
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
