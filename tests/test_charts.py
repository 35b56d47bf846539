"""app/charts.py: a figure is built once per process for equal arguments and view, and every
session drawing it shares it; the digest that keys it tells every difference in content apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from app import charts
from gpt2viz.viz import heads
from tests.app_support import ATTENTION, figure, generate, new_app


@dataclass
class Holder:
    values: np.ndarray
    labels: list[str]


def test_the_digest_is_equal_for_equal_content_and_differs_for_any_difference() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    same = charts.digest(Holder(a.copy(), ["x", "y"]))
    assert charts.digest(Holder(np.arange(12, dtype=np.float32).reshape(3, 4), ["x", "y"])) == same
    changed = a.copy()
    changed[2, 3] += 1e-6  # one element, by a hair
    others = [Holder(changed, ["x", "y"]), Holder(a.astype(np.float64), ["x", "y"]),
              Holder(a.reshape(4, 3), ["x", "y"]), Holder(a, ["x", "z"]), Holder(a, ("x", "y")),
              (a, ["x", "y"]), Holder(a[:, ::-1], ["x", "y"])]
    digests = [charts.digest(other) for other in others]
    assert same not in digests and len(set(digests)) == len(digests)
    assert charts.digest(torch.arange(3.0)) == charts.digest(np.arange(3, dtype=np.float32))
    assert charts.digest((1, "1")) != charts.digest(("1", 1)) and charts.digest(1) != charts.digest(1.0)
    assert charts.digest({"a": 1, "b": 2}) != charts.digest({"a": 2, "b": 1})


def test_the_digest_refuses_what_it_cannot_tell_apart() -> None:
    with pytest.raises(TypeError, match="cannot tell two object values apart"):
        charts.digest([object()])


def test_a_lambda_is_refused_as_a_figure_function() -> None:
    with pytest.raises(TypeError, match="module-level figure function"):
        charts.chart(None, lambda: go.Figure(), key="any")


def test_kept_figures_are_made_once_and_the_least_recently_used_go_first(monkeypatch) -> None:
    monkeypatch.setattr(charts, "_shown", type(charts._shown)())
    made: list[int] = []

    def make(i: int):
        return lambda: made.append(i) or go.Figure(layout=dict(title=str(i)))

    first = charts.shown_figure(("f", 0), make(0))
    assert charts.shown_figure(("f", 0), make(0)) is first and made == [0]
    for i in range(1, charts.SHOWN_FIGURES + 1):  # one more than it keeps
        charts.shown_figure(("f", i), make(i))
        if i == 1:
            charts.shown_figure(("f", 0), make(0))  # used again: now 1 is the oldest
    assert len(charts._shown) == charts.SHOWN_FIGURES and made == list(range(charts.SHOWN_FIGURES + 1))
    assert charts.shown_figure(("f", 0), make(0)) is first  # kept
    charts.shown_figure(("f", 1), make(1))
    assert made[-1] == 1  # dropped, so made again


BUILT: list[tuple[int, int]] = []


def counting_head_scores(data, selected):
    """heads.head_scores_figure, counting its calls (module-level, as chart() wants)."""
    BUILT.append(selected)
    return REAL_HEAD_SCORES(data, selected)


REAL_HEAD_SCORES = heads.head_scores_figure


@pytest.mark.usefixtures("app_model")
def test_two_sessions_on_the_same_view_share_each_figure(monkeypatch) -> None:
    monkeypatch.setattr(heads, "head_scores_figure", counting_head_scores)
    monkeypatch.setattr(charts, "_shown", type(charts._shown)())
    BUILT.clear()
    sessions = [generate(new_app(), "The same words for both", max_new_tokens=2) for _ in range(2)]
    for at in sessions:
        at.switch_page(ATTENTION).run()
        assert not at.exception
    per_run = BUILT.count((0, 0))
    assert per_run == 4  # the first session built the four head-score charts; the second, none
    first, second = (figure(at, "induction_scores") for at in sessions)
    assert first["layout"] == second["layout"]
    np.testing.assert_array_equal(first["data"][0]["z"], second["data"][0]["z"])
    other = generate(new_app(), "Other words entirely here", max_new_tokens=2)
    other.switch_page(ATTENTION).run()
    assert BUILT.count((0, 0)) == 4 + 3  # its own text's three scores; the induction scores are the model's
