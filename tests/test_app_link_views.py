"""A link is the view: on every page, every linked control set to a value a fresh visit does not
show, then the share link opened in a new session draws the same figures (each trace's x, y, z
and text, and the title), for the opening example and for a sampled generation with a step chosen.

The controls are found on the page, not listed here: a new widget is set (and so checked) as soon
as it is drawn, and one this test does not know how to change fails it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.link_params import PUBLIC_URL_ENV
from tests.app_support import (
    ATTENTION,
    GENERATE,
    INSIDE_STEP,
    LESSON,
    MLP,
    PATCHING,
    QKV,
    WHY,
    figure,
    generate,
    new_app,
    session_generation,
)
from tests.test_app_links import HOST, address, open_link

pytestmark = pytest.mark.usefixtures("app_model")

# The value each linked control takes here, where it is not "another option" or "one step more".
TEXTS = {state.FIND_TOKEN: "cat", state.DISTRACTOR_TEXT: " dog", state.ABLATE_UNITS: "0.1, 1.0",
         state.COMPARE_PROMPT: "The dog sat on the rug", state.PROMPT: None,
         state.PATCH_CLEAN: "When Anna and Paul went to the park, Paul gave a ball to",
         state.PATCH_CORRUPTED: "When Anna and Paul went to the park, Anna gave a ball to",
         state.PATCH_ANSWER: " Anna", state.PATCH_WRONG: " Paul"}
RADIOS = {state.ATTN_KIND: "scores", state.MLP_STAGE: "pre", state.ABLATE_KIND: "heads",
          state.ABLATE_MODE: "mean", state.PATCH_METHOD: "exact"}
SLIDERS = {state.STEP_TEMPERATURE: 1.5, state.STEP_TOP_P: 0.8, state.MLP_TOP_N: 8, state.TEMPERATURE: 1.2,
           state.TOP_P: 0.9}
LEFT_ALONE = {state.PROMPT, state.MODEL_CHOICE, state.MAX_NEW_TOKENS, state.GREEDY, state.TEMPERATURE,
              state.TOP_K, state.TOP_P, state.SEED}  # set on the Generate page before generating
LINKED_KEYS = set(state.LINKED)


@pytest.fixture(autouse=True)
def public_url(monkeypatch):
    monkeypatch.setenv(PUBLIC_URL_ENV, HOST.rstrip("/"))


def linked_widgets(at: AppTest) -> list[Any]:
    kinds = ("selectbox", "radio", "slider", "number_input", "toggle", "text_input", "select_slider")
    found = [w for kind in kinds for w in at.get(kind)]
    return [w for w in found if w.key in LINKED_KEYS and w.key not in LEFT_ALONE and not w.proto.disabled]


def change(at: AppTest, widget: Any) -> None:
    """Give one control a value a fresh visit does not show."""
    kind, key = widget.type, widget.key
    if kind == "selectbox":
        widget.select_index(len(widget.options) - 1 if widget.index != len(widget.options) - 1 else 0)
    elif kind == "select_slider":
        widget.set_value(0)  # the first step: a fresh visit selects the last
    elif kind == "radio":
        widget.set_value(RADIOS[key])
    elif kind == "slider":
        widget.set_value(SLIDERS[key])
    elif kind == "number_input":
        widget.increment()
    elif kind == "toggle":
        widget.set_value(not widget.value)
    elif kind == "text_input":
        widget.input(TEXTS[key])
    else:
        raise AssertionError(f"no way to change the {kind} {key!r}: teach this test")
    at.run()
    assert not at.exception, (key, at.exception)


def set_every_control(at: AppTest) -> set[str]:
    """Change each linked control once, including those that appear after another changed."""
    done: set[str] = set()
    while True:
        # the step first: other controls offer what the selected step has (its candidates)
        todo = sorted((w for w in linked_widgets(at) if w.key not in done), key=lambda w: w.key != state.STEP)
        if not todo:
            return done
        done.add(todo[0].key)
        change(at, todo[0])


def drawn(at: AppTest) -> dict[str, dict]:
    """Each figure's data as a person sees it: traces' x, y, z and text, and the title."""
    charts = {}
    for element in at.get("plotly_chart"):
        key = element.proto.id.rsplit("-", 1)[-1]
        spec = figure(at, key)
        traces = [{name: trace.get(name) for name in ("x", "y", "z", "text")} for trace in spec["data"]]
        title = spec["layout"].get("title", {})
        charts[key] = {"traces": traces, "title": title.get("text") if isinstance(title, dict) else title}
    return charts


def assert_same(seen: Any, again: Any, where: str) -> None:
    if isinstance(seen, dict):
        assert seen.keys() == again.keys(), where
        for name in seen:
            assert_same(seen[name], again[name], f"{where}.{name}")
    elif isinstance(seen, (list, tuple, np.ndarray)) and not isinstance(seen, str):
        seen_array, again_array = np.asarray(seen, dtype=object), np.asarray(again, dtype=object)
        assert seen_array.shape == again_array.shape, where
        for index, value in np.ndenumerate(seen_array):
            assert_same(value, again_array[index], f"{where}{list(index)}")
    elif isinstance(seen, float) and np.isnan(seen):
        assert isinstance(again, float) and np.isnan(again), where
    else:
        assert seen == again, where


def check_page(at: AppTest, page: str) -> None:
    at.context["url"] = address(page)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    changed = set_every_control(at)
    assert changed, f"no control changed on {page}"
    seen = drawn(at)
    params = dict(at.query_params)
    for key in changed - {state.STEP}:  # the step is in the link as `step` (absent for the last)
        assert state.LINKED[key] in params, (page, key)
    other = open_link(params, page)
    assert dict(other.query_params) == params, page
    assert_same(seen, drawn(other), page)


PAGES = [ATTENTION, QKV, MLP, INSIDE_STEP, WHY, LESSON, GENERATE, PATCHING]


@pytest.mark.parametrize("page", PAGES)
def test_the_example_with_every_control_changed(page):
    at = new_app()  # no Generate pressed: the opening example
    assert session_generation(at).finished
    check_page(at, page)


@pytest.mark.parametrize("page", PAGES)
def test_a_sampled_generation_with_a_step_chosen(page):
    at = new_app()
    at.toggle(key="greedy").set_value(False).run()
    at.number_input(key="seed").set_value(7).run()
    generate(at, "The cat sat on the mat because it was", max_new_tokens=6)
    at.select_slider(key="step").set_value(2).run()
    check_page(at, page)
