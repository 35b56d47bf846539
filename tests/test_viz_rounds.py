"""The round's figure: the class's guesses beside the model's top candidates, tokens in both
highlighted alike, the drawn token marked in both panels, and an empty class said so."""

from __future__ import annotations

import pytest

import gpt2viz
from gpt2viz.generation import Candidate
from gpt2viz.guesses import RoundTally, tally
from gpt2viz.viz.candidates import percent, percent_ticks
from gpt2viz.viz.rounds import DRAWN_COLOUR, NO_GUESSES, PLAIN_COLOUR, SHARED_COLOUR, round_figure

TEXT = "I love the"
MODEL = [(" dog", 0.30), (" cat", 0.20), (" sun", 0.08), (" world", 0.05)]
GUESSES = ["cat", "cat", "cat", "pizza", "pizza", "dog", "sea", "<b>"]


@pytest.fixture(scope="module")
def tok() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


def model_top(tok, rows=MODEL) -> list[Candidate]:
    return [Candidate(tok.encode(text)[0], text, p) for text, p in rows]


@pytest.fixture(scope="module")
def round_(tok) -> RoundTally:
    return tally(tok, GUESSES, TEXT, model_top(tok))


def panel(fig, col: int):
    """The one bar trace of the left (1) or right (2) panel, or None."""
    axis = "x" if col == 1 else "x2"
    bars = [t for t in fig.data if t.xaxis == axis]
    assert len(bars) <= 1
    return bars[0] if bars else None


def ticks(fig, col: int) -> dict[str, str]:
    axis = fig.layout.yaxis if col == 1 else fig.layout.yaxis2
    return dict(zip(axis.tickvals, axis.ticktext, strict=True))


def outlines(fig) -> list[str]:
    """Every bar's outline colour, both panels."""
    return [c for col in (1, 2) if panel(fig, col) is not None for c in panel(fig, col).marker.line.color]


def labels(fig, col: int) -> list[str]:
    """Each bar's label, top to bottom."""
    names = ticks(fig, col)
    return [names[y] for y in panel(fig, col).y]


def test_each_panel_shows_its_counts_top_down(tok, round_) -> None:
    fig = round_figure(round_)
    left, right = panel(fig, 1), panel(fig, 2)
    assert left.orientation == right.orientation == "h"
    assert list(left.x) == [3, 2, 1, 1, 1] and list(left.text) == ["3", "2", "1", "1", "1"]
    # visible spaces, ties in order of text, and a student's "<b>" shown as text, not taken for markup
    assert labels(fig, 1) == ["·cat", "·pizza", "·&lt;", "·dog", "·sea"]
    assert list(right.x) == [p for _, p in MODEL] and list(right.text) == [percent(p) for _, p in MODEL]
    assert labels(fig, 2) == ["·dog", "·cat", "·sun", "·world"]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["The class's guesses", f"The model's top {len(MODEL)}"]


def test_highest_at_the_top_with_rows_of_one_height(tok, round_) -> None:
    fig = round_figure(round_)
    rows = max(len(round_.guesses), len(round_.model))
    for axis, bar in ((fig.layout.yaxis, panel(fig, 1)), (fig.layout.yaxis2, panel(fig, 2))):
        assert list(axis.range) == [rows - 0.5, -0.5]  # reversed: the first category at the top
        assert list(bar.y) == [f"#{i + 1}" for i in range(len(bar.x))]
        assert list(bar.x) == sorted(bar.x, reverse=True)
    taller = round_figure(tally(tok, [str(n) for n in range(12)], TEXT, round_.model))
    assert taller.layout.height > fig.layout.height


def test_tokens_both_guessed_and_in_the_model_list_share_the_highlight(round_) -> None:
    fig = round_figure(round_)
    both = {" cat", " dog"}  # guessed (GUESSES) and in MODEL
    for col, texts in ((1, [g.text for g in round_.guesses]), (2, [text for text, _ in MODEL])):
        colours = list(panel(fig, col).marker.color)
        assert colours == [SHARED_COLOUR if t in both else PLAIN_COLOUR for t in texts]
    assert "dark bars: guessed and in the model's top 4" in fig.layout.title.text


def test_no_highlight_without_a_shared_token(tok) -> None:
    fig = round_figure(tally(tok, ["pizza"], TEXT, model_top(tok)))
    assert set(panel(fig, 1).marker.color) == set(panel(fig, 2).marker.color) == {PLAIN_COLOUR}
    assert "dark bars" not in fig.layout.title.text


def test_the_drawn_token_is_marked_in_both_panels(tok, round_) -> None:
    cat = tok.encode(" cat")[0]
    fig = round_figure(round_, drawn=cat)
    for col, row in ((1, 0), (2, 1)):  # " cat" is guessed most, and the model's second
        bar = panel(fig, col)
        lines = list(bar.marker.line.color)
        assert lines[row] == DRAWN_COLOUR
        assert [c for i, c in enumerate(lines) if i != row] == ["rgba(0,0,0,0)"] * (len(lines) - 1)
        names = labels(fig, col)
        assert names[row] == "<b>·cat  ◀ drawn</b>"
        assert sum("drawn" in n for n in names) == 1
    assert "◀ drawn: the token the model wrote" in fig.layout.title.text
    # before the reveal nothing is marked
    hidden = round_figure(round_)
    assert DRAWN_COLOUR not in outlines(hidden)
    assert not any("drawn" in n for n in labels(hidden, 1) + labels(hidden, 2))
    assert "drawn" not in hidden.layout.title.text


def test_a_drawn_token_in_one_list_only_is_marked_there(tok, round_) -> None:
    sun = tok.encode(" sun")[0]  # in the model's list, guessed by no one
    fig = round_figure(round_, drawn=sun)
    assert DRAWN_COLOUR not in list(panel(fig, 1).marker.line.color)
    assert list(panel(fig, 2).marker.line.color).index(DRAWN_COLOUR) == 2


def test_a_drawn_token_in_neither_list_is_said_so(tok, round_) -> None:
    fig = round_figure(round_, drawn=tok.encode(" banana")[0])
    assert DRAWN_COLOUR not in outlines(fig)
    assert "the model wrote a token no one guessed, outside its top list" in fig.layout.title.text


def test_no_guesses_yet_is_said_not_drawn_as_an_empty_axis(tok) -> None:
    fig = round_figure(tally(tok, [], TEXT, model_top(tok)))
    assert panel(fig, 1) is None and panel(fig, 2) is not None
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    note = next(a for a in fig.layout.annotations if a.text == NO_GUESSES)
    # in the middle of the left panel
    assert note.x == pytest.approx(sum(fig.layout.xaxis.domain) / 2)
    assert note.y == pytest.approx(sum(fig.layout.yaxis.domain) / 2)
    assert (note.xanchor, note.yanchor) == ("center", "middle")
    assert "0 guesses" in fig.layout.title.text
    # once someone answers, the note goes
    answered = round_figure(tally(tok, ["cat"], TEXT, model_top(tok)))
    assert NO_GUESSES not in [a.text for a in answered.layout.annotations]
    assert "1 guess ·" in answered.layout.title.text


@pytest.mark.parametrize(("n", "dtick"), [(1, 1), (3, 1), (7, 2), (30, 10), (60, 20)])
def test_counts_have_whole_ticks(tok, n, dtick) -> None:
    fig = round_figure(tally(tok, ["cat"] * n, TEXT, model_top(tok)))
    axis = fig.layout.xaxis
    assert axis.tickformat == "d" and axis.dtick == dtick and axis.range[1] > n
    assert axis.range[1] / axis.dtick <= 6  # few enough ticks to read


def test_probabilities_are_in_percent(tok, round_) -> None:
    axis = round_figure(round_).layout.xaxis2
    largest = max(p for _, p in MODEL)
    assert axis.range[1] == pytest.approx(1.25 * largest)
    assert (axis.dtick, axis.tickformat) == percent_ticks(1.25 * largest)


def test_hover_tells_counts_and_percent(tok, round_) -> None:
    fig = round_figure(round_)
    left, right = panel(fig, 1), panel(fig, 2)
    assert left.customdata[0] == "·cat<br>3 of 8 guesses (37.5%)<br>the model: 20.0%"
    assert left.customdata[1] == "·pizza<br>2 of 8 guesses (25.0%)"
    assert right.customdata[1] == "·cat<br>p = 0.200000 (20.0%)<br>guessed by 3 of 8"
    assert right.customdata[2] == "·sun<br>p = 0.080000 (8.0%)"
    assert left.hovertemplate == right.hovertemplate == "%{customdata}<extra></extra>"


def lightness(colour: str) -> float:
    """CIE L* (0 black … 100 white) of a #rrggbb colour."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 116 * y ** (1 / 3) - 16 if y > 216 / 24389 else y * 24389 / 27


def test_the_marks_differ_in_lightness_not_hue_alone() -> None:
    # told apart without colour vision (and in grey): at least 15 L* between any two
    values = sorted(lightness(c) for c in (PLAIN_COLOUR, SHARED_COLOUR, DRAWN_COLOUR))
    assert all(b - a >= 15 for a, b in zip(values, values[1:], strict=False)), values
