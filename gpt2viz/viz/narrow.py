"""Figures on narrow screens (tablets, phones, a figure in a column): the widths a figure is laid out
for, and its category axes' tick labels thinned to what fits each width. Pure arithmetic on a
figure's own numbers; `export.fitted` puts the layouts in the figure (`layout.meta["narrow"]`) and
the page applies the one for the width the figure gets (app/static/screens.js), so the toolbar's
PNG or SVG is what the page shows at any width (the "⤓ HTML" file opens at the wide layout).

A figure's narrow layouts are a list of `[below, update]`: for a figure narrower than `below` px,
`update` (Plotly.relayout's keys: "title.text", "margin.t", "xaxis.dtick", …) applies, the last
such entry winning; `wide` holds the same keys' values as the figure has them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

WIDEST, NARROWEST, WIDTH_STEP = 1400, 240, 40  # px: the figure widths laid out for, every WIDTH_STEP
SLANTED_SPACING = 1.6  # px between slanted tick labels along their axis, in font sizes
UPRIGHT_GAP = 8  # px between upright labels
AUTO_SPACING = 1.2  # px Plotly gives a category label along its axis, in font sizes (its `bigFont`)
LABEL_CHAR = 0.6  # width of a tick label's character, in font sizes (generous)
COLOUR_BAR = 90  # px a colour bar takes at the right, with its labels
SIDE_PAD = 24  # px of margins and ticks at the left and right besides the labels
NUMBER_CHARS = 4  # characters of a number axis's tick label ("0.25", "10%"), near enough
LONGEST_LABEL = 24  # characters: Plotly's automargin gives no label more room than this, near enough


def widths() -> range:
    """The figure widths a figure's layout is computed for, widest first."""
    return range(WIDEST, NARROWEST - 1, -WIDTH_STEP)


def layouts(wide: dict[str, Any], at_width: Sequence[tuple[int, dict[str, Any]]]) -> list[list]:
    """The `[below, update]` entries for the updates computed at each of `widths()` (widest first),
    each holding only what differs from `wide` (which has every key): an update holds for figures
    from its width up to the next wider one, and only those that differ from the one before are
    kept."""
    kept, previous = [], {}
    for width, update in at_width:
        changed = {key: value for key, value in update.items() if value != wide[key]}
        if changed != previous:
            kept.append([width + WIDTH_STEP, changed])
            previous = changed
    return kept


def _font(fig: go.Figure, axis) -> float:
    return axis.tickfont.size or fig.layout.font.size or 12


def _slanted(axis) -> bool:
    return isinstance(axis.tickangle, int | float) and axis.tickangle % 180 != 0


def _traces_on(fig: go.Figure, axis_id: str, letter: str) -> list:
    return [t for t in fig.data if (getattr(t, f"{letter}axis", None) or letter) == axis_id]


def _categories(fig: go.Figure, axis, axis_id: str) -> list[str] | None:
    """The axis's category labels in order, or None when it is not a category axis."""
    if axis.categoryarray is not None and axis.type in ("category", None):
        return [str(c) for c in axis.categoryarray]
    labels: dict[str, None] = {}
    for trace in _traces_on(fig, axis_id, axis_id[0]):
        values = getattr(trace, axis_id[0], None)
        if values is None:
            continue
        if isinstance(values, dict) or not all(isinstance(v, str) for v in values):  # dict: numbers, packed
            return None
        labels.update(dict.fromkeys(values))
    return list(labels) or None


def _label_chars(values: Sequence[Any]) -> int:
    return min(LONGEST_LABEL, max((len(str(v)) for v in values), default=4))


def side_px(fig: go.Figure) -> float:
    """Pixels of a figure's width beside its plot: the y axes' labels and titles, a colour bar."""
    side = SIDE_PAD
    for axis in (fig.layout[name] for name in fig.layout.to_plotly_json() if name.startswith("yaxis")):
        if axis.visible is False or axis.overlaying is not None:
            continue
        labels = axis.ticktext if axis.ticktext is not None else None
        if labels is None:
            axis_id = "y" + (axis.plotly_name[5:] or "")
            labels = [v for t in _traces_on(fig, axis_id, "y") if getattr(t, "y", None) is not None
                      and not isinstance(t.y, dict) and all(isinstance(v, str) for v in t.y)
                      for v in t.y] or ["0.000"]
        shown = axis.showticklabels is not False
        width = _label_chars(labels) * LABEL_CHAR * _font(fig, axis) if shown else 0
        title = 1.6 * (fig.layout.font.size or 12) if axis.title.text else 0
        side = max(side, SIDE_PAD + width + title)
    bars = any(getattr(t, "showscale", None) is not False and hasattr(t, "colorbar") and t.type == "heatmap"
               for t in fig.data)
    return side + (COLOUR_BAR if bars else 0)


def _spacing(axis, labels: Sequence[str], font: float) -> float:
    """Pixels a tick label needs along its axis: slanted, its line's height and a gap; upright, its
    longest label's width."""
    if _slanted(axis):
        return SLANTED_SPACING * font
    return _label_chars(labels) * LABEL_CHAR * font + UPRIGHT_GAP


@dataclass(frozen=True)
class _Axis:
    """An x axis whose labels may crowd: its name, how many labels it has (0: a number axis), the
    pixels each needs along it, the share of the plot's width it spans, the stride it is drawn with
    (every k-th label; a number axis: its `nticks`), and its own tick values and texts when it has
    them (else None)."""

    name: str
    count: int
    spacing: float
    share: float
    stride: int | None  # None: Plotly's own choice, from the axis's length (`auto_font`)
    auto_font: float
    own: tuple[tuple, tuple] | None


@dataclass(frozen=True)
class TickAxes:
    """A figure's category x axes and the room beside its plot, measured once (`of`); `updates`
    thins them for a width."""

    axes: tuple[_Axis, ...]
    side: float
    layout: dict[str, Any]

    @classmethod
    def of(cls, fig: go.Figure, side: float) -> TickAxes:
        """`fig`'s axes, with `side` px of its width beside its plot (`side_px`)."""
        axes = []
        for name in (n for n in fig.layout.to_plotly_json() if n.startswith("xaxis")):
            axis = fig.layout[name]
            if axis.visible is False or axis.showticklabels is False:
                continue
            share = axis.domain[1] - axis.domain[0] if axis.domain is not None else 1.0
            font = _font(fig, axis)
            own = axis.tickmode == "array" and axis.tickvals is not None
            if own and axis.ticktext is not None:  # its own values and texts: every k-th of them,
                if not _slanted(axis):  # when slanted (upright ones are Plotly's to turn)
                    continue
                texts = tuple(axis.ticktext)
                axes.append(_Axis(name, len(texts), _spacing(axis, texts, font), share, 1, font,
                                  (tuple(axis.tickvals), texts)))
                continue
            labels = _categories(fig, axis, "x" + name[5:])
            number = labels is None and axis.type in (None, "linear")
            if number and not own and axis.tickmode in (None, "auto"):
                spacing = NUMBER_CHARS * LABEL_CHAR * font + UPRIGHT_GAP  # numbers: Plotly's, fewer
                axes.append(_Axis(name, 0, spacing, share, axis.nticks or None, font, None))
                continue
            if labels is None or (own and not all(isinstance(v, str) for v in axis.tickvals)):
                continue
            if own:  # every k-th category (`tokens.thinned`)
                stride = math.ceil(len(labels) / max(1, len(axis.tickvals)))
            elif axis.tickmode in (None, "auto") and _slanted(axis):  # Plotly's own: `nticks`, else by
                # the axis's length (upright labels are Plotly's to turn when they crowd: a bar each)
                stride = math.ceil(len(labels) / axis.nticks) if axis.nticks else None
            else:
                continue
            axes.append(_Axis(name, len(labels), _spacing(axis, labels, font), share, stride, font, None))
        layout = {a.name: fig.layout[a.name].to_plotly_json() for a in axes}
        return cls(tuple(axes), side, layout)

    def updates(self, width: float) -> dict[str, Any]:
        """Relayout updates thinning each axis to the labels that fit a figure `width` px wide,
        where it would show more (empty when every axis fits): a stride of categories (`tickmode`
        "linear", `dtick`), or every k-th of an axis's own tick values and texts."""
        out: dict[str, Any] = {}
        for axis in self.axes:
            length = max(1.0, (width - self.side) * axis.share)
            if not axis.count:  # a number axis: no more ticks than fit, where Plotly's would not
                fit = max(2, int(length / axis.spacing))
                if fit < (axis.stride or min(9.0, max(4.0, length / 80)) + 1):
                    out[f"{axis.name}.nticks"] = fit
                continue
            stride = math.ceil(axis.count / max(1, int(length / axis.spacing)))
            if axis.own is not None:
                if stride > 1:
                    out[f"{axis.name}.tickvals"] = list(axis.own[0][::stride])
                    out[f"{axis.name}.ticktext"] = list(axis.own[1][::stride])
                continue
            shown = axis.stride or math.ceil(axis.count * AUTO_SPACING * axis.auto_font / length)
            if stride > shown:
                out.update({f"{axis.name}.tickmode": "linear", f"{axis.name}.tick0": 0,
                            f"{axis.name}.dtick": stride})
        return out

    def originals(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values the figure has for relayout `keys` of these axes (None where unset)."""
        out = {}
        for key in keys:
            name, attribute = key.split(".")
            value = self.layout[name].get(attribute)
            out[key] = list(value) if isinstance(value, tuple | list) else value
        return out
