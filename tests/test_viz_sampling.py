"""The sampling chain: its rows against softmax(logits / T) and top-k / top-p done by hand, and
the four-column figure built from them; the candidates chart's probability axis and chosen bar."""

from __future__ import annotations

import html

import numpy as np
import pytest
import torch

import gpt2viz
from gpt2viz.sampling import sampling_stages
from gpt2viz.viz.candidates import (
    CHOSEN_COLOUR,
    OTHER_COLOUR,
    candidates_figure,
    percent,
    percent_axis,
    percent_ticks,
    step_candidates,
)
from gpt2viz.viz.sampling import CUT_COLOUR, bar_floor, chain_data, sampling_chain_figure
from gpt2viz.viz.tokens import visible_token


@pytest.fixture(scope="module")
def logits(tok) -> torch.Tensor:
    """The next-token logits of a small random GPT-2 after a short prompt: [vocab]."""
    torch.manual_seed(0)
    model = gpt2viz.GPT2(gpt2viz.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128)).eval()
    ids = tok.encode("The cat sat on the mat because")
    return model.run_with_capture(ids, names=gpt2viz.lens.residual_names(2)).logits[-1]


def by_rank(logits: torch.Tensor, rank: int) -> int:
    return int(logits.argsort(descending=True)[rank])


def test_rows_are_the_top_logits_through_every_stage(tok, logits) -> None:
    chosen = by_rank(logits, 2)
    c = chain_data(sampling_stages(logits, 0.7), tok, chosen, n=10)
    top = logits.topk(10).indices
    assert c.ids == top.tolist()
    assert c.labels == [visible_token(tok.token_text(i)) for i in top.tolist()]
    np.testing.assert_allclose(c.logits, logits[top].numpy(), rtol=1e-6)
    np.testing.assert_allclose(c.scaled, (logits[top] / 0.7).numpy(), rtol=1e-6)
    want = torch.softmax(logits.double() / 0.7, -1)[top].numpy()
    np.testing.assert_allclose(c.probs, want, rtol=1e-4)
    assert c.kept.tolist() == [True] * 10 and c.n_kept == logits.numel()
    assert c.chosen == 2
    assert c.shown_mass == pytest.approx(want.sum(), rel=1e-4)


def test_a_chosen_token_outside_the_top_n_comes_last(tok, logits) -> None:
    chosen = by_rank(logits, 100)
    c = chain_data(sampling_stages(logits, 1.0, top_k=5), tok, chosen, n=10)
    assert len(c.ids) == 11 and c.ids[-1] == chosen and c.chosen == 10
    assert c.labels[-1] == visible_token(tok.token_text(chosen))
    assert c.logits[-1] == pytest.approx(float(logits[chosen]))
    assert c.kept.tolist() == [True] * 5 + [False] * 6  # top-k=5 cut it (and ranks 6..10)
    assert c.probs[-1] == 0.0 and c.n_kept == 5
    want = torch.softmax(logits.topk(5).values.double(), -1).numpy()
    np.testing.assert_allclose(c.probs[:5], want, rtol=1e-4)
    assert c.shown_mass == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("settings", [dict(top_k=1), dict(top_p=1e-6), dict(top_k=3, top_p=1e-6)])
def test_top_k_one_or_a_tiny_top_p_keeps_only_the_best(tok, logits, settings) -> None:
    c = chain_data(sampling_stages(logits, 0.8, **settings), tok, by_rank(logits, 0))
    assert c.ids[0] == int(logits.argmax())
    assert c.kept.tolist() == [True] + [False] * 9
    assert c.probs.tolist() == [1.0] + [0.0] * 9
    assert c.n_kept == 1 and c.shown_mass == 1.0 and c.chosen == 0


def test_top_k_then_top_p_as_done_by_hand(tok, logits) -> None:
    c = chain_data(sampling_stages(logits, 0.5, top_k=6, top_p=0.6), tok, None)
    p = torch.softmax(logits.topk(6).values.double() / 0.5, -1)  # top-k first, highest first
    n_keep = int((p.cumsum(0) - p < 0.6).sum())  # the smallest prefix whose mass reaches 0.6
    assert 1 <= n_keep < 6
    assert c.kept.tolist() == [True] * n_keep + [False] * (10 - n_keep)
    want = (p[:n_keep] / p[:n_keep].sum()).numpy()
    np.testing.assert_allclose(c.probs[:n_keep], want, rtol=1e-4)
    assert c.n_kept == n_keep and c.chosen is None


def test_a_token_ranked_far_above_the_rest_takes_all_the_probability(tok, logits) -> None:
    boosted = logits.clone()
    star = by_rank(logits, 500)
    boosted[star] += 40.0
    c = chain_data(sampling_stages(boosted, 1.0), tok, star, n=10)
    assert c.ids[0] == star and c.chosen == 0 and len(c.ids) == 10
    want = torch.softmax(boosted.double(), -1)[star].item()
    assert c.probs[0] == pytest.approx(want, abs=1e-7) and want > 0.999
    assert c.shown_mass == pytest.approx(1.0, abs=1e-4)
    fig = sampling_chain_figure(c, "boosted")
    assert fig.data[3].text[0] == "100.0%"


def test_figure_has_four_linked_columns_with_the_chosen_row_marked(tok, logits) -> None:
    chosen = by_rank(logits, 100)
    c = chain_data(sampling_stages(logits, 1.0, top_k=5), tok, chosen, n=10)
    fig = sampling_chain_figure(c, "Step 3")
    assert [t.type for t in fig.data] == ["bar", "bar", "scatter", "bar"]
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3", "y4"]
    assert [a.text for a in fig.layout.annotations] == [
        "logits", "÷ temperature", "kept by top-k / top-p", "probability"]
    rows = [f"#{i + 1}" for i in range(11)]
    for trace in fig.data:
        assert list(trace.y) == rows
        colours = list(trace.marker.color)
        assert colours[10] == CHOSEN_COLOUR and colours.count(CHOSEN_COLOUR) == 1
    logit_bar, scaled_bar, kept, prob_bar = fig.data
    for bar, values in ((logit_bar, c.logits), (scaled_bar, c.scaled)):
        # bars start a little below the lowest shown value and end at each value
        assert bar.base < values.min() and bar.base == bar_floor(values)
        np.testing.assert_allclose(np.asarray(bar.x) + bar.base, values, rtol=1e-6)
        assert list(bar.text) == [f"{v:.2f}" for v in values]
    np.testing.assert_allclose(prob_bar.x, c.probs)
    assert list(logit_bar.marker.color[:10]) == [OTHER_COLOUR] * 10
    assert list(prob_bar.marker.color[:10]) == [OTHER_COLOUR] * 5 + [CUT_COLOUR] * 5
    assert list(kept.text) == ["kept"] * 5 + ["cut"] * 6
    assert list(prob_bar.text) == [percent(p) for p in c.probs[:5]] + ["cut"] * 6
    # every column shares the first one's y axis: one list of candidate names, rank 1 on top
    assert all(fig.layout[f"yaxis{i}"].matches == "y" for i in (2, 3, 4))
    assert fig.layout.yaxis.autorange == "reversed" and list(fig.layout.yaxis.tickvals) == rows
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[:10] == [html.escape(label, quote=False) for label in c.labels[:10]]
    assert ticks[10].endswith("◀ chosen") and sum("◀ chosen" in t for t in ticks) == 1
    (band,) = fig.layout.shapes
    assert (band.y0, band.y1, band.xref) == (9.5, 10.5, "paper")
    assert "these 11 rows carry 100.0% of the probability · 5 tokens kept in all" in fig.layout.title.text
    assert fig.layout.title.text.startswith("Step 3")


def test_figure_height_grows_with_the_rows_and_escapes_token_text(tok, logits) -> None:
    stages = sampling_stages(logits, 1.0)
    angle = tok.encode("<b")[0]
    ten = sampling_chain_figure(chain_data(stages, tok, angle, n=10), "ten")
    twenty = sampling_chain_figure(chain_data(stages, tok, None, n=20), "twenty")
    assert twenty.layout.height - ten.layout.height >= 9 * 20  # at least 20 px a row
    assert ten.layout.yaxis.ticktext[-1] == tok.token_text(angle).replace("<", "&lt;") + "  ◀ chosen"
    assert not twenty.layout.shapes and not any("◀" in t for t in twenty.layout.yaxis.ticktext)
    assert len(twenty.data[0].y) == 20


def test_bars_of_negative_logits_grow_with_the_logit(tok, logits) -> None:
    """GPT-2's logits are often all negative: the highest must still have the longest bar."""
    c = chain_data(sampling_stages(logits - 100.0, 2.0), tok, None, n=10)
    assert c.logits.max() < 0
    fig = sampling_chain_figure(c, "negative")
    for bar in fig.data[:2]:
        lengths = np.asarray(bar.x)
        assert (lengths > 0).all() and lengths.argmax() == 0 and (np.diff(lengths) <= 0).all()
    with pytest.raises(ValueError, match="positive number of rows"):
        chain_data(sampling_stages(logits, 1.0), tok, None, n=0)


# --- the candidates chart ------------------------------------------------------------------------

def tick_labels(fig) -> list[str]:
    """The x ticks a candidates chart shows, as d3 writes them: from 0 every dtick up to the range's end,
    each in percent with the format's decimals."""
    axis = fig.layout.xaxis
    decimals = int(axis.tickformat[1:-1])
    n = int(round(axis.range[1] / axis.dtick, 9))
    return [f"{k * axis.dtick * 100:.{decimals}f}%" for k in range(n + 1)]


@pytest.mark.parametrize("largest", [0.9, 0.31, 0.04, 0.0072, 0.0009, 2.3e-5, 4e-6])
def test_probability_ticks_never_repeat(largest) -> None:
    top = [(1, " a", largest), (2, " b", largest / 2)]
    fig = candidates_figure(step_candidates(top, 1, " a", largest), "t")
    labels = tick_labels(fig)
    assert fig.layout.xaxis.tick0 == 0 and fig.layout.xaxis.range[1] == pytest.approx(min(1, 1.25 * largest))
    assert 3 <= len(labels) <= 7 and len(set(labels)) == len(labels), labels


def test_percent_ticks_steps() -> None:
    # 1, 2 or 5 × 10ⁿ, the least of those giving at most 6 steps, with the decimals that step needs
    assert percent_ticks(1.0) == (0.2, ".0%") and percent_ticks(0.3) == (0.05, ".0%")
    assert percent_ticks(0.0064) == (0.002, ".1%") and percent_ticks(2.9e-5) == (5e-6, ".4%")
    assert percent_ticks(0.00025) == (5e-5, ".3%")
    # the untrained model of the issue: top probabilities near 1/50257 gave 0.00%, 0.01%, 0.01% at .2%
    assert percent_ticks(1.25 * 2.0e-5)[1] == ".4%"
    assert [percent_axis(x) for x in (0.6, 0.03, 0.004, 0.0004, 2e-5)] == [".0%", ".1%", ".2%", ".3%", ".4%"]


def test_a_chosen_token_outside_the_top_list_gets_its_bar_and_number() -> None:
    top = [(1, " a", 0.6), (2, " b", 0.2), (3, " c", 0.1)]
    fig = candidates_figure(step_candidates(top, 9, " to", 3e-4), "after")
    bar = fig.data[0]
    assert list(bar.x) == [0.6, 0.2, 0.1, 3e-4] and list(fig.layout.yaxis.ticktext)[-1] == "·to  ◀ chosen"
    assert list(bar.text) == ["60.0%", "20.0%", "10.0%", "0.03%"]
    # too short for its number inside: beside the bar, and outlined in the chosen colour so that it shows
    assert list(bar.textposition) == ["auto", "auto", "outside", "outside"]
    assert bar.marker.color[-1] == CHOSEN_COLOUR and bar.marker.line.color[-1] == CHOSEN_COLOUR
    assert bar.marker.line.color[0] == "rgba(0,0,0,0)" and bar.cliponaxis is False
