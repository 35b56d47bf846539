"""Colour scales that several figures share.

Every scale here keeps its ends apart for readers with red-green colour blindness:
tests/test_colour_vision.py simulates deuteranopia and protanopia and asks for CIE ΔE 40 or more.
"""

from __future__ import annotations

# ColorBrewer's 9-class RdBu, from blue (negative) through near-white (0) to red (positive). The
# 11-class ends Plotly's "RdBu_r" has (#053061, #67001f) are both so dark that under protanopia
# they come within ΔE 35 of each other; these stay 61 apart, and 66 from the middle.
_RDBU_9 = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b")
BLUE_RED = [[i / (len(_RDBU_9) - 1), c] for i, c in enumerate(_RDBU_9)]  # low blue, high red
RED_BLUE = [[i / (len(_RDBU_9) - 1), c] for i, c in enumerate(reversed(_RDBU_9))]  # low red, high blue


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.1's relative luminance of an sRGB colour given as 0–255 channels."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """WCAG 2.1's contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def over_white(rgb: tuple[float, float, float], alpha: float) -> tuple[float, float, float]:
    """`rgb` drawn at opacity `alpha` on a white page."""
    return tuple(alpha * c + (1 - alpha) * 255 for c in rgb)


def ink_on(background: tuple[float, float, float]) -> str:
    """Black or white, whichever reads better on `background`: one of them is always 4.58:1 or more."""
    black, white = (0, 0, 0), (255, 255, 255)
    return "#000000" if contrast_ratio(background, black) >= contrast_ratio(background, white) else "#ffffff"
