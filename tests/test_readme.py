"""README's notebook example runs as written, and every figure factory returns a go.Figure
(which Jupyter draws when it is a cell's last value)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re

import numpy as np
import plotly.graph_objects as go

import gpt2viz.viz
from tests.app_support import ROOT


def notebook_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it from a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_like_a_notebook(code: str) -> tuple[dict, list]:
    """Run `code` statement by statement; keep the value of every bare expression (what a
    notebook cell would display if it were last)."""
    namespace: dict = {}
    shown = []
    for node in ast.parse(code).body:
        if isinstance(node, ast.Expr):
            shown.append(eval(compile(ast.Expression(node.value), "README", "eval"), namespace))
        else:
            exec(compile(ast.Module([node], []), "README", "exec"), namespace)
    return namespace, shown


def test_readme_notebook_example_runs(capsys) -> None:
    ns, shown = run_like_a_notebook(notebook_snippet())
    figures = [v for v in shown if isinstance(v, go.Figure)]
    assert len(figures) == 2
    layer, head, score = ns["layer"], ns["head"], ns["score"]
    assert f"head {layer}.{head} attends to the previous token {score:.0%}" in capsys.readouterr().out
    patterns = ns["patterns"]
    assert patterns.shape[:2] == (ns["model"].config.n_layer, ns["model"].config.n_head)
    diagonal = patterns[layer, head].diagonal(offset=-1)
    assert score == float(diagonal.mean()) == float(ns["scores"].max())
    # the head-score map: every head's score as computed here, the best head outlined
    grid = figures[0].data[0]
    np.testing.assert_allclose(np.asarray(grid.z, dtype=float), ns["scores"].numpy(), rtol=1e-6)
    (outline,) = figures[0].layout.shapes
    assert (outline.x0 + outline.x1) / 2 == head and (outline.y0 + outline.y1) / 2 == layer
    assert ns["best"].best == (layer, head, score)
    heatmap = figures[1].data[0]
    want = patterns[layer, head].numpy()
    z, n = np.asarray(heatmap.z, dtype=float), want.shape[0]
    assert np.isnan(z[np.triu_indices(n, 1)]).all()  # masked cells are NaN, not 0
    assert np.array_equal(z[np.tril_indices(n)], want[np.tril_indices(n)])


def test_every_figure_factory_returns_a_figure() -> None:
    factories = []
    for info in pkgutil.iter_modules(gpt2viz.viz.__path__):
        module = importlib.import_module(f"gpt2viz.viz.{info.name}")
        factories += [f for name, f in inspect.getmembers(module, inspect.isfunction)
                      if name.endswith("_figure") and f.__module__ == module.__name__]
    assert len(factories) >= 8
    for factory in factories:
        assert inspect.signature(factory).return_annotation in ("go.Figure", go.Figure), factory
