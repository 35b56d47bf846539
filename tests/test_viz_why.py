"""gpt2viz.viz.why: the attribution figures, the saliency strip and aligned branches."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2viz.attribution import direct_logit_attribution
from gpt2viz.viz.attention import selected_head
from gpt2viz.viz.why import (
    branches,
    branches_html,
    dla_heads_figure,
    dla_parts,
    dla_parts_figure,
    saliency_html,
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
