"""Activation patching figures: a patching grid as a heatmap, and exact patching against its
first-order estimate (attribution patching) as a scatter.

The grids come from `gpt2viz.patching`; this module only shapes them for display and builds the
figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from gpt2viz.patching import PatchingResult

from .colours import RED_BLUE

PATCHED = "the corrupted run, with one activation taken from the clean run"  # what a cell runs, in words
METHODS = {"exact": "Activation patching", "attribution": "Attribution patching (first-order estimate)"}


@dataclass(frozen=True)
class PatchingMap:
    values: np.ndarray  # [layer, position | head] float32: 0 = corrupted run, 1 = clean run
    columns: list[str]  # a label per column
    across: str  # "position" or "head"
    limit: float  # the colour scale runs from −limit to limit, centred at 0 (limit ≥ 1)
    title: str


def metric_name(result: PatchingResult) -> str:
    """What the grid measures, in words."""
    return "logit difference" if result.answer is not None else "metric"


def _title(result: PatchingResult) -> str:
    return (f"{METHODS[result.method]} of {result.site}: {PATCHED}<br><sup>{metric_name(result)} at the last "
            f"position: clean {result.clean_value:.2f}, corrupted {result.corrupted_value:.2f} "
            "(0 = corrupted, 1 = clean)</sup>")


def patching_map(result: PatchingResult, labels: Sequence[str] | None = None) -> PatchingMap:
    """A patching result's grid with its column labels (`labels`, e.g. token texts, replace the
    result's own) and a symmetric colour range that always shows 1, the clean run."""
    values = result.grid.float().numpy().astype(np.float32)
    columns = list(result.labels if labels is None else labels)
    if len(columns) != values.shape[1]:
        raise ValueError(f"{len(columns)} labels for {values.shape[1]} {result.across}s.")
    finite = values[np.isfinite(values)]
    limit = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    return PatchingMap(values, columns, result.across, limit, _title(result))


def patching_figure(m: PatchingMap, opacity: float | None = None) -> go.Figure:
    """Layers down, positions (or heads) across, every cell labelled; blue restores the clean
    run's answer, red pushes the other way. An `opacity` below 1 fades a grid that explains noise."""
    n_layer, n_col = m.values.shape
    fig = go.Figure(go.Heatmap(
        z=m.values, x=list(range(n_col)), y=list(range(n_layer)), zmin=-m.limit, zmax=m.limit, zmid=0.0,
        colorscale=RED_BLUE, colorbar=dict(title="restored", thickness=10),
        text=[[f"{round(float(v), 2) + 0.0:.2f}" for v in row] for row in m.values], texttemplate="%{text}",
        textfont=dict(size=11 if n_col <= 16 else 8),
        customdata=[m.columns] * n_layer,  # [layer, column]: each cell's column label
        hovertemplate=f"layer %{{y}}, {m.across} %{{x}} (%{{customdata}}): %{{z:.3f}}<extra></extra>",
        opacity=opacity,
    ))
    fig.update_xaxes(title_text=m.across, tickmode="array", tickvals=list(range(n_col)), ticktext=m.columns,
                     showgrid=False, zeroline=False)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", showgrid=False, zeroline=False)
    fig.update_layout(title=m.title, height=int(min(640, max(240, 110 + 32 * n_layer))),
                      margin=dict(l=10, r=10, t=80, b=10))
    return fig


@dataclass(frozen=True)
class PatchingComparison:
    exact: np.ndarray  # [cell] float32, the grid flattened layer by layer
    estimate: np.ndarray  # [cell] float32, attribution patching's grid the same way
    cells: list[str]  # "layer 2, position 5 (' Mary')" per cell
    correlation: float  # Pearson's r of the two; NaN when either is constant
    title: str


def patching_comparison(exact: PatchingResult, estimate: PatchingResult) -> PatchingComparison:
    """Exact patching's cells beside attribution patching's estimate of the same cells."""
    if (exact.site, exact.answer, exact.wrong) != (estimate.site, estimate.answer, estimate.wrong):
        raise ValueError("The two results patch different sites or compare different answers.")
    if exact.grid.shape != estimate.grid.shape:
        raise ValueError(f"Grids of shapes {tuple(exact.grid.shape)} and {tuple(estimate.grid.shape)}: "
                         "they come from different prompts or models.")
    x = exact.grid.float().numpy().ravel().astype(np.float32)
    y = estimate.grid.float().numpy().ravel().astype(np.float32)
    n_layer, n_col = exact.grid.shape
    cells = [f"layer {layer}, {exact.across} {col} ({exact.labels[col]})"
             for layer in range(n_layer) for col in range(n_col)]
    defined = x.size > 1 and x.std() > 0 and y.std() > 0
    r = float(np.corrcoef(x.astype(np.float64), y.astype(np.float64))[0, 1]) if defined else float("nan")
    said = f"correlation r = {r:.3f}" if defined else "correlation undefined (a grid is constant)"
    title = f"Attribution patching against activation patching, {exact.site}: {said}"
    return PatchingComparison(x, y, cells, r, title)


def patching_comparison_figure(c: PatchingComparison) -> go.Figure:
    """One point per cell, exact across and estimate up, with the line where they would agree."""
    values = np.concatenate([c.exact, c.estimate])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    low, high = min(low, 0.0), max(high, 1.0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="estimate = exact",
                             line=dict(color="#999999", dash="dash"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=c.exact, y=c.estimate, mode="markers", name="cells", text=c.cells,
                             marker=dict(color="#2b6cb0", size=7),
                             hovertemplate="%{text}<br>exact %{x:.3f}, estimate %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="activation patching (exact)", zeroline=True)
    fig.update_yaxes(title_text="attribution patching (estimate)", zeroline=True)
    fig.update_layout(title=c.title, height=420, showlegend=False, margin=dict(l=10, r=10, t=60, b=10))
    return fig
