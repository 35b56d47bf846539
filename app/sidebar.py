"""The sidebar every page shows, drawn by streamlit_app.py once the model is loaded: the model
picker, the model's line, the memory line, the figures' download format, the share link and the
presenter switch. It only draws: what the run does, in what order, is in streamlit_app.py."""

from __future__ import annotations

import streamlit as st

import gpt2viz
from gpt2viz.budget import byte_size

from . import live_class, share
from .charts import image_format_picker
from .chosen_model import NoModel, model_picker, picker_help
from .class_settings import class_settings
from .memory import memory_box
from .models import CurrentModel, device_label, loaded_models
from .presenter import presenter_toggle


def loaded_line(loaded: list[tuple[str, int]]) -> str:
    """Which models the server holds now, and their weights' memory."""
    held = ", ".join(f"{name} ({byte_size(size)})" for name, size in loaded)
    return f"Models loaded on this server: {held} · {byte_size(sum(size for _, size in loaded))} in all"


def draw_sidebar(loaded: CurrentModel | NoModel) -> None:
    """The sidebar for this run's model; with no model, the picker and why, and the run stops."""
    with st.sidebar:
        live_class.sidebar()  # in a live class only
        model_picker()
        if isinstance(loaded, NoModel):
            (st.error if loaded.is_error else st.info)(loaded.message)
            st.stop()
        model, config = loaded.model, loaded.model.config
        st.caption(f"**{model.name}** · {config.n_layer} layers × {config.n_head} heads · "
                   f"d_model {config.n_embd} · context {config.n_positions}")
        st.caption(f"Device: **{device_label(model)}**")
        st.caption(loaded_line(loaded_models()), help=picker_help(class_settings()))
        memory_box()
        image_format_picker()
        box = share.share_box()
    presenter_toggle()
    share.show(loaded, box)


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
