"""Loading the model and the tokenizer, once per process: every session shares them (read-only)."""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass

import streamlit as st
import torch

import gpt2viz
from gpt2viz import GPT2

DEFAULT_SOURCE = ""  # gpt2viz.load_default_model(): $GPT2VIZ_MODEL, else gpt2, else the bundled model
_LOADED: weakref.WeakValueDictionary[int, GPT2] = weakref.WeakValueDictionary()  # alive, by id


@dataclass(frozen=True)
class CurrentModel:
    """What loading a model gives the pages."""

    source: str  # the key the model is cached under (DEFAULT_SOURCE for the default)
    model: GPT2
    fallback_reason: str | None  # why the default fell back to the bundled model, or None


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def load(source: str) -> CurrentModel:
    """The model `source` names. Raises gpt2viz.LoadError with a readable message."""
    if source == DEFAULT_SOURCE:
        model, fallback_reason = gpt2viz.load_default_model()
    else:
        model, fallback_reason = gpt2viz.load_model(source), None
    _LOADED[id(model)] = model
    settle_heap()
    return CurrentModel(source, model, fallback_reason)


def loaded_models() -> list[tuple[str, int]]:
    """(name, bytes of its weights) of every model this process holds now."""
    return [(model.name, sum(p.numel() * p.element_size() for p in model.parameters()))
            for model in list(_LOADED.values())]


def settle_heap() -> None:
    """Take every object alive now (the libraries, the model) out of the cyclic collector's scans
    with gc.freeze(): a full collection holds the GIL, and with it every session's messages, for
    as long as it scans (bench/README.md, "Serving a class"). Frozen objects are still freed when
    their last reference goes."""
    gc.collect()
    gc.freeze()


@st.cache_resource
def tokenizer() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


def device_label(model: GPT2) -> str:
    if model.device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(model.device)})"
    return "CPU"
