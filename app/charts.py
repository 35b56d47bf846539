"""Every figure the app shows goes through `chart`: the page draws the figure exactly as `present`
made it (its own light look, not Streamlit's theme, which a saved file would not have), so the
toolbar's PNG or SVG (the sidebar's choice, under a name that says what it is) and the small
"⤓ HTML" button beside it, a page that works offline, both keep what the page showed.

`chart` takes the figure function and its arguments, not a figure: the figure as shown is built
once per process for the same arguments and view (`shown_figure`, keyed by an exact digest of the
arguments' values) and every session drawing it gets that one. A class following its teacher runs
the same page in every student's session at once; building and fitting a figure took 20–30 ms,
most of a follower's page run (bench/class_follow.py). The figures are kept in a small LRU of
their own, not `st.cache_resource`: a hit there cost a follower's run more than the rest of
`chart` did."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from gpt2viz.viz.export import IMAGE_FORMATS, plotly_config, standalone_html
from gpt2viz.viz.projector import FIGURE_MIN_WIDTH

from . import state
from .presenter import present, presenter_on


def image_format_picker() -> None:
    """The sidebar's choice of what the toolbar's camera button saves."""
    state.widget(st.radio, "Figures download as", IMAGE_FORMATS, key=state.IMAGE_FORMAT, horizontal=True,
                 format_func=str.upper)


def chart(where: DeltaGenerator, build: Callable[..., go.Figure] | go.Figure, *args: Any, key: str,
          presenter_height: int | None = None, presenter_width: int = FIGURE_MIN_WIDTH,
          events: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """`where.plotly_chart(...)` of `present(build(*args, **kwargs))` with the export settings, then
    its HTML download; `presenter_height` and `presenter_width` (the width it will get, for its
    title) size the figure in presenter view; `events` go to `plotly_chart` (`on_select`, …).
    `build` is a module-level figure function, whose result every session asking with equal
    arguments shares; or a figure already built (the Lesson's cards), shown as it is."""
    presenter = presenter_on()
    if isinstance(build, go.Figure):
        shown = present(build, presenter_height, presenter_width, presenter)
    else:
        if "<" in build.__qualname__:
            raise TypeError(f"chart() takes a module-level figure function, not {build.__qualname__}: a "
                            "lambda or nested function may read values its arguments do not show.")
        name = f"{build.__module__}.{build.__qualname__}"
        view = (name, digest((args, kwargs)), presenter, presenter_height, presenter_width)
        shown = shown_figure(view, lambda: present(build(*args, **kwargs), presenter_height, presenter_width,
                                                   presenter))
    config = plotly_config(key, state.get(state.IMAGE_FORMAT))
    event = where.plotly_chart(shown, key=key, config=config, theme=None, **(events or {}))
    where.download_button("⤓ HTML", data=lambda: standalone_html(shown, key), file_name=f"gpt2viz-{key}.html",
                          mime="text/html", key=f"{key}.html", on_click="ignore", type="tertiary",
                          help="This figure as a web page that opens offline")
    return event


SHOWN_FIGURES = 64  # the figures kept: every figure of a few pages' views
_shown: OrderedDict[tuple, go.Figure] = OrderedDict()
_shown_lock = threading.Lock()


def shown_figure(view: tuple, make: Callable[[], go.Figure]) -> go.Figure:
    """The figure kept for `view` (a hashable key: the figure function, its arguments' digest and
    how the view shows it), made by `make()` the first time, kept among the SHOWN_FIGURES most
    recently used. Sessions share it, so nothing may change it: Streamlit and `standalone_html` only
    read it. Two sessions asking at once for a figure not yet kept may both make it."""
    with _shown_lock:
        if view in _shown:
            _shown.move_to_end(view)
            return _shown[view]
    figure = make()
    with _shown_lock:
        _shown[view] = figure
        while len(_shown) > SHOWN_FIGURES:
            _shown.popitem(last=False)
    return figure


def digest(value: Any) -> str:
    """An exact digest of `value`'s content: numbers, text, arrays and tensors (every element, with
    dtype and shape), dataclasses and containers of them. Two values with the same digest draw the
    same figure."""
    h = hashlib.blake2b(digest_size=20)
    _feed(h, value)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"a{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif value is None or isinstance(value, (bool, int, float, str, bytes)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (np.generic,)):
        _feed(h, value.item())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"d{type(value).__qualname__}(".encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _feed(h, getattr(value, f.name))
        h.update(b")")
    elif isinstance(value, (list, tuple, range)):
        h.update(f"{type(value).__name__}{len(value)}[".encode())
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(f"m{len(value)}{{".encode())
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
        h.update(b"}")
    else:
        raise TypeError(f"chart() cannot tell two {type(value).__name__} values apart; pass the figure "
                        "function numbers, text, arrays, tensors, dataclasses or containers of them.")
