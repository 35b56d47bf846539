"""gpt2viz.viz.why: the attribution figures, the saliency strip and aligned branches."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gpt2viz
from gpt2viz.attribution import direct_logit_attribution, saliency
from gpt2viz.paths import ASSETS
from gpt2viz.viz.attention import selected_head
from gpt2viz.viz.candidates import CHOSEN_COLOUR
from gpt2viz.viz.why import (
    NEGATIVE_COLOUR,
    branches,
    branches_html,
    dla_heads_figure,
    dla_parts,
    dla_parts_figure,
    ranked_saliency,
    ranked_saliency_figure,
    saliency_caption,
    saliency_html,
    saliency_scale,
    saliency_window,
)

IDS = list(range(300, 310))


@pytest.fixture(scope="module")
def dla(small_model):
    return direct_logit_attribution(small_model, small_model.run_with_capture(IDS), 9, 11, 12)


def test_heads_figure(dla) -> None:
    fig = dla_heads_figure(dla, (1, 3), "t")
    heat, markers = fig.data
    np.testing.assert_array_equal(heat.z, dla.heads.numpy())
    assert heat.zmid == 0 and heat.zmin == -heat.zmax == -float(np.abs(dla.heads.numpy()).max())
    assert heat.text[1][3] == f"{dla.heads[1, 3].item():+.2f}"
    assert len(markers.x) == 8 and [list(c) for c in markers.customdata][7] == [1, 3]
    assert selected_head([{"customdata": markers.customdata[5]}]) == (1, 1)  # a click selects that head
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (2.5, 3.5, 0.5, 1.5)


def test_parts_figure(dla) -> None:
    names, values = dla_parts(dla)
    assert names == ["MLP 0", "MLP 1", "embeddings", "attention output biases", "final LayerNorm bias"]
    fig = dla_parts_figure(dla, actual=1.5)
    assert list(fig.data[0].x) == ["all heads", *names]
    assert fig.data[0].y[0] == pytest.approx(float(dla.heads.sum()))
    assert sum(fig.data[0].y) == pytest.approx(dla.total)
    assert f"{dla.total:+.3f}" in fig.layout.title.text and "+1.500" in fig.layout.title.text


def test_saliency_strip() -> None:
    strip = saliency_html(["<b>", " cat", "\n"], np.array([0.5, -1.0, 0.0]))
    assert "&lt;b&gt;" in strip and "<b>" not in strip.split("</style>")[1]
    assert 'title="position 1: -1.0000"' in strip and "rgba(33,102,172,1.00)" in strip
    assert "rgba(228,87,46,0.50)" in strip and ">·cat<" in strip and ">↵<" in strip


def alphas(strip: str) -> list[float]:
    """Each box's colour strength, in order."""
    return [float(a) for a in re.findall(r"background:rgba\(\d+,\d+,\d+,([\d.]+)\)", strip)]


def test_the_colour_scale_leaves_out_the_explained_token() -> None:
    assert saliency_scale(np.array([0.1, -0.3, 2.0])) == pytest.approx(0.3)
    assert saliency_scale(np.array([-0.5])) == pytest.approx(0.5)  # no earlier token: its own
    assert saliency_scale(np.zeros(3)) == 1.0
    strip = saliency_html(["a", "b", "c"], np.array([0.1, -0.3, 2.0]))
    assert alphas(strip) == [0.33, 1.0, 1.0]  # 0.1 / 0.3, 0.3 / 0.3, and the explained token clipped
    assert strip.count("sal-explained") == 2  # its CSS rule and its one box
    assert 'title="position 2: +2.0000 (the explained token; beyond the colour scale)"' in strip
    assert saliency_caption(np.array([0.1, -0.3, 2.0])) == (
        "Full colour: |gradient × input| = 0.3000, the largest among the earlier tokens. The explained "
        "token (outlined) scores +2.0000, 6.7× that: drawn at full colour.")


@pytest.mark.skipif(not (ASSETS / gpt2viz.BUNDLED_NAME).is_dir(), reason="needs the bundled model")
def test_a_real_saliency_colours_more_than_the_last_token(tok) -> None:
    """On a trained model the last token's own value dwarfs the rest: scaled by the largest of all,
    one box has visible colour; scaled by the largest earlier one, several do."""
    model = gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")
    ids = tok.encode("Once upon a time there was a little girl who lived in a village near the forest. "
                     "Whenever she went out, the little girl wore a red riding cloak, so everyone in the "
                     "village called her")
    target = int(model.next_token_logits(ids).argmax())
    values = saliency(model, ids, len(ids) - 1, target).numpy()
    visible = 0.25
    old = np.abs(values) / np.abs(values).max()  # the former scale
    assert (old >= visible).sum() == 1
    shown = np.array(alphas(saliency_html(tok.token_texts(ids), values)))
    np.testing.assert_allclose(shown, np.minimum(1, np.abs(values) / np.abs(values[:-1]).max()), atol=0.006)
    assert (shown[:-1] >= visible).sum() >= 3 and shown[-1] == 1.0


def test_a_long_strip_shows_the_last_tokens_up_to_the_explained_one() -> None:
    assert saliency_window(128) == range(128) and saliency_window(129) == range(65, 129)
    assert saliency_window(1000, 64) == range(936, 1000)
    values = np.linspace(-1.0, 1.0, 1000)
    texts = [f"t{i}" for i in range(1000)]
    strip = saliency_html(texts, values, saliency_window(1000))
    boxes = re.findall(r'title="position (\d+):', strip)
    assert [int(b) for b in boxes] == list(range(936, 1000))
    assert "… 936 earlier tokens" in strip and ">t935<" not in strip and ">t936<" in strip
    # the scale is the whole sequence's (the earlier tokens' largest |value|: position 0, −1.0)
    assert alphas(strip)[0] == pytest.approx(abs(values[936]), abs=0.006)


def test_ranked_saliency_lists_the_strongest_earlier_tokens() -> None:
    values = np.array([0.2, -0.5, 0.05, 0.5, -0.01, 9.0])  # the last is the explained token
    rows = ranked_saliency(["a", " b", "c", "\n", "e", "f"], values, k=4)
    assert [(r.position, r.text, r.value) for r in rows] == [
        (1, " b", -0.5), (3, "\n", 0.5), (0, "a", 0.2), (2, "c", 0.05)]  # a tie: the earlier first
    assert len(ranked_saliency(["a", "b"], np.array([1.0, 2.0]))) == 1
    fig = ranked_saliency_figure(rows, "t")
    bar = fig.data[0]
    assert list(bar.y) == ["1 ·b", "3 ↵", "0 a", "2 c"] and list(bar.x) == [-0.5, 0.5, 0.2, 0.05]
    assert list(bar.text) == ["-0.5000", "+0.5000", "+0.2000", "+0.0500"]
    assert list(bar.marker.color) == [NEGATIVE_COLOUR, CHOSEN_COLOUR, CHOSEN_COLOUR, CHOSEN_COLOUR]
    assert fig.layout.yaxis.autorange == "reversed"
    assert list(bar.textposition) == ["inside", "inside", "outside", "outside"]  # half the largest or more
    assert fig.layout.xaxis.range == pytest.approx((-0.5 - 0.225, 0.5 + 0.225))  # room on the sides with bars
    one_sided = ranked_saliency_figure(ranked_saliency(["a", "b", "c"], np.array([0.2, 0.1, 5.0])), "t")
    assert one_sided.layout.xaxis.range == pytest.approx((-0.02, 0.2 + 0.09))


@pytest.mark.parametrize("a, b, diverge", [
    ([1, 2, 3, 4], [1, 2, 3, 4], None), ([1, 2, 3, 4], [1, 2, 5, 4], 0), ([1, 2, 3, 4], [1, 2, 3, 9], 1),
    ([1, 2, 3], [1, 2, 3, 4], 1),
])
def test_branches(a, b, diverge) -> None:
    br = branches(2, a, b, lambda i: f"t{i}")
    assert br.diverge == diverge and br.first == [f"t{i}" for i in a[2:]]
    html = branches_html(br, ("original", "forced"))
    outlined = 0 if diverge is None else len(br.first) - diverge + len(br.second) - diverge
    assert html.count('class="sal differs"') == outlined
