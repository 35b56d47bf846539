"""Every colour scale the app draws, and every pair of colours a figure tells apart by colour
alone, stays distinguishable for readers with red-green colour blindness: after simulating full
deuteranopia and protanopia (colorspacious, Machado et al. 2009), the two colours are at least
ΔE 40 apart (CIE 1976 ΔE*ab: the distance in CIELAB)."""

from __future__ import annotations

import numpy as np
import plotly.colors
import pytest
from colorspacious import cspace_convert

from gpt2viz.viz import candidates, lesson, rounds, sampling, surprise, why
from gpt2viz.viz.colours import BLUE_RED, RED_BLUE
from gpt2viz.viz.lens import MLP_COLOUR
from gpt2viz.viz.tokens import EXPECTED_RGB, SURPRISING_RGB, surprise_colour

APART = 40.0
DEFICIENCIES = ("deuteranomaly", "protanomaly")  # at severity 100: deuteranopia, protanopia


def rgb(colour: str | tuple[float, float, float]) -> tuple[float, float, float]:
    """0–255 channels of '#rrggbb', 'rgb(r, g, b)' or a tuple."""
    if isinstance(colour, tuple):
        return colour
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return plotly.colors.unlabel_rgb(colour)


def delta_e(first, second) -> float:
    """CIE 1976 ΔE*ab of two colours given as 0–1 sRGB channels."""
    a, b = (cspace_convert(np.clip(x, 0, 1), "sRGB1", "CIELab") for x in (first, second))
    return float(np.linalg.norm(a - b))


def seen_apart(first, second, deficiency: str) -> float:
    """ΔE between two colours as a reader with `deficiency` (severity 100) sees them."""
    space = {"name": "sRGB1+CVD", "cvd_type": deficiency, "severity": 100}
    a, b = (cspace_convert([c / 255 for c in rgb(x)], space, "sRGB1") for x in (first, second))
    return delta_e(a, b)


def ends(scale) -> tuple[str, str]:
    """A scale's two ends, from a Plotly name or a list of [position, colour]."""
    stops = plotly.colors.get_colorscale(scale) if isinstance(scale, str) else scale
    return stops[0][1], stops[-1][1]


PAIRS = {  # what the figures tell apart by colour alone
    "Viridis (attention weights, lens, head scores)": ends("Viridis"),
    "BLUE_RED (scores, activations, vectors, attribution)": ends(BLUE_RED),
    "BLUE_RED's middle and either end": (BLUE_RED[len(BLUE_RED) // 2][1], BLUE_RED[0][1]),
    "BLUE_RED's middle and its red end": (BLUE_RED[len(BLUE_RED) // 2][1], BLUE_RED[-1][1]),
    "RED_BLUE (patching)": ends(RED_BLUE),
    "surprise cue: expected, unexpected": (EXPECTED_RGB, SURPRISING_RGB),
    "drawn token, the other candidates": (candidates.CHOSEN_COLOUR, candidates.OTHER_COLOUR),
    "kept candidates, cut ones (sampling)": (candidates.OTHER_COLOUR, sampling.CUT_COLOUR),
    "two prompts compared (surprise)": (surprise.FIRST_COLOUR, surprise.SECOND_COLOUR),
    "towards, away from the target (saliency)": (why.TOWARDS_RGB, why.AWAY_RGB),
    "lesson: scaled, unscaled": (candidates.OTHER_COLOUR, lesson.UNSCALED_COLOUR),
    "lesson: allowed, hidden (mask)": (lesson.ALLOWED_COLOUR, lesson.HIDDEN_COLOUR),
    "lesson: attention, MLP": (candidates.OTHER_COLOUR, MLP_COLOUR),
    "round: the class's guess, also the model's": (rounds.PLAIN_COLOUR, rounds.SHARED_COLOUR),
    "round: drawn, shared": (rounds.DRAWN_COLOUR, rounds.SHARED_COLOUR),
    **{f"lesson temperatures {i} and {j}": (lesson.TEMPERATURE_COLOURS[i], lesson.TEMPERATURE_COLOURS[j])
       for i, j in ((0, 1), (0, 2), (1, 2))},
}


@pytest.mark.parametrize("deficiency", DEFICIENCIES)
@pytest.mark.parametrize("name", list(PAIRS))
def test_colours_told_apart_by_colour_stay_apart_without_red_green(name: str, deficiency: str) -> None:
    first, second = PAIRS[name]
    assert seen_apart(first, second, deficiency) >= APART, (name, first, second)


def test_the_measure_tells_red_from_green_for_normal_vision_but_not_without_red_green() -> None:
    """The check itself: a red and a green of the same lightness are far apart for normal vision
    and close without red-green vision; black and white stay far apart for everyone."""
    red, green = "#d62728", "#4a9a2a"
    assert delta_e([c / 255 for c in rgb(red)], [c / 255 for c in rgb(green)]) > 40
    assert seen_apart(red, green, "deuteranomaly") < 20
    assert seen_apart("#000000", "#ffffff", "protanomaly") > 90


def test_the_surprise_cue_runs_between_its_ends_in_lightness() -> None:
    """Lighter for expected, darker for unexpected, step by step: the order survives any hue loss."""
    lightness = [cspace_convert([c / 255 for c in rgb(surprise_colour(2.0 ** -bits))], "sRGB1", "CIELab")[0]
                 for bits in range(17)]
    assert all(a > b for a, b in zip(lightness, lightness[1:], strict=False)), lightness
