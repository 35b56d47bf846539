"""Token text made visible and safely escaped."""

from gpt2viz.viz.candidates import CHOSEN_COLOUR, candidates_figure, step_candidates
from gpt2viz.viz.tokens import EMPTY, thinned, token_labels, token_strip_html, visible_token


def test_whitespace_and_invisible_characters_are_visible():
    assert visible_token(" the") == "·the"
    assert visible_token("\n\n") == "↵↵"
    assert visible_token("\t") == "⇥"
    assert visible_token("a\u200bb") == "a⟨U+200B⟩b"
    assert visible_token("\u200f") == "⟨U+200F⟩"  # right-to-left mark
    assert visible_token("") == EMPTY
    assert visible_token("שלום") == "שלום"


def test_labels_are_unique_even_for_repeated_tokens():
    labels = token_labels([" a", " a", "\n"], start=5)
    assert labels == ["5 ·a", "6 ·a", "7 ↵"]


def test_thinned_keeps_at_most_max_ticks():
    labels = [str(i) for i in range(500)]
    picked = thinned(labels, 40)
    assert len(picked) <= 40 and picked[:2] == ["0", "13"]
    assert thinned(labels[:10], 40) == labels[:10]


def test_strip_escapes_html_and_marks_prompt_generated_and_selected():
    html = token_strip_html(["<script>", "alert(1)", "</script>", "<b>x</b>"], [" &", "\n"], selected=1)
    assert "<script>" not in html and "<b>x" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("tok-prompt") == 4 + 1  # four tokens plus the CSS rule
    assert html.count('class="tok tok-gen') == 2
    assert html.count("tok-selected") == 2  # CSS rule and the selected token
    assert "·&amp;" in html and "↵</span><br>" in html


def test_a_strip_being_written_shows_how_far_it_has_got_above_the_tokens():
    tokens = (["The"], [" cat", " sat", " on"])
    writing = token_strip_html(*tokens, progress=8)
    bar = "<progress value='3' max='8'></progress>Generating… 3 of 8 tokens"
    assert writing.count("<progress") == 1 and bar in writing
    assert writing.index(bar) < writing.index("<div class='tok-strip'>")
    assert writing.replace(f"<div class='tok-progress'>{bar}</div>", "") == token_strip_html(*tokens)
    assert "<progress" not in token_strip_html(["The"], [" cat"])


def test_candidates_mark_the_chosen_token():
    top = [(1, " a", 0.5), (2, " b", 0.3), (3, "\n", 0.1)]
    c = step_candidates(top, 2, " b", 0.3)
    assert c.chosen == 1 and c.labels == ["·a", "·b", "↵"]
    fig = candidates_figure(c, "step")
    bar = fig.data[0]
    assert bar.type == "bar" and bar.orientation == "h"
    assert list(bar.x) == [0.5, 0.3, 0.1]
    assert bar.marker.color[1] == CHOSEN_COLOUR and bar.marker.color[0] != CHOSEN_COLOUR
    assert "chosen" in fig.layout.yaxis.ticktext[1]
    assert fig.layout.xaxis.title.text == "probability"
    assert fig.layout.yaxis.title.text == "candidate token"


def test_a_sampled_token_outside_the_top_list_is_appended():
    c = step_candidates([(1, " a", 0.9)], 7, " z", 0.001)
    assert c.labels == ["·a", "·z"] and c.chosen == 1 and c.probs[1] == 0.001


def test_probabilities_are_always_percent():
    from gpt2viz.viz.candidates import percent, percent_axis

    assert [percent(p) for p in (0.5, 0.0123, 0.001, 0.00049, 0.0001, 0.00002, 0.0)] == [
        "50.0%", "1.2%", "0.1%", "0.05%", "0.01%", "<0.01%", "<0.01%"]
    for small in ([(1, " a", 0.004), (2, " b", 0.002)], [(1, " a", 0.03)], [(1, " a", 0.6)]):
        fig = candidates_figure(step_candidates(small, 1, " a", small[0][2]), "t")
        assert fig.layout.xaxis.tickformat.endswith("%")  # never 5.0e-3 beside bars labelled in %
        assert all(t.endswith("%") for t in fig.data[0].text)
    assert [percent_axis(x) for x in (0.6, 0.03, 0.004)] == [".0%", ".1%", ".2%"]


def test_strip_draws_the_character_over_its_byte_tokens():
    html = token_strip_html(["A", " \\xf0\\x9f", "\\x90"], ["\\x88", "!"], groups=[(1, 4, " 🐈")])
    assert html.count("<ruby") == 1 and "<rt>·🐈</rt>" in html
    inner = html.split('<ruby class="tok-group"', 1)[1].split("<rt>")[0]
    assert inner.count('class="tok tok-prompt"') == 2 and inner.count('class="tok tok-gen') == 1
    assert 'title="tokens 1–3 are the bytes of &#x27; 🐈&#x27;"' in html


def test_each_tokens_probability_is_written_under_it_without_hover():
    import re

    from gpt2viz.viz.tokens import short_percent

    assert [short_percent(p) for p in (1.0, 0.4249, 0.031, 0.0099, 0.0042, 0.00099, 1e-9)] == [
        "100%", "42%", "3%", "1.0%", "0.4%", "<0.1%", "<0.1%"]
    html = token_strip_html(["A", " cat"], [" sat", " on"], selected=1, probs=[None, 0.25, 0.0004, 0.5])
    numbers = re.findall(r'<span class="tok[^"]*"[^>]* data-p="([^"]*)"', html)
    assert numbers == ["25%", "&lt;0.1%", "50%"]  # the first token has none; "<" escaped
    # the number is drawn by CSS from data-p: the boxes' text is still the tokens' alone
    assert re.findall(r'<span class="tok [^>]*>(.*?)</span>', html) == ["A", "·cat", "·sat", "·on"]
    assert ".tok-numbers-all [data-p]::after" in html and "content:attr(data-p)" in html
    assert "<div class='tok-strip tok-numbers-all'>" in html
    assert "data-p" not in token_strip_html(["A"], [" b"])  # no probabilities, no numbers


def test_a_long_strip_writes_the_probability_under_the_selected_token_only():
    from gpt2viz.viz.tokens import NUMBERS_UP_TO

    def strip(n: int) -> str:
        return token_strip_html(["A"] * (n - 3), ["b", "c", "d"], selected=1, probs=[None] + [0.5] * (n - 1))

    assert "<div class='tok-strip tok-numbers-all'>" in strip(NUMBERS_UP_TO)
    long = strip(NUMBERS_UP_TO + 1)
    assert "<div class='tok-strip tok-numbers-selected'>" in long
    assert ".tok-numbers-selected [data-p].tok-selected::after{content:attr(data-p)" in long
    assert "under the selected one its probability p" in long
    assert "Under each token, its probability p" in strip(NUMBERS_UP_TO)


def test_the_surprise_bars_have_a_legend_under_the_strip():
    import re

    from gpt2viz.viz.tokens import (
        EXPECTED_RGB,
        SURPRISE_SCALE_BITS,
        SURPRISING_RGB,
        surprise_colour,
        surprise_key_html,
    )

    html = token_strip_html(["A", " cat"], [" sat"], probs=[None, 0.25, 0.5])
    key = surprise_key_html()
    assert html.endswith(key) and html.count("class='tok-key'") == 1
    assert html.index("<div class='tok-strip") < html.index(key)  # under the strip, not in it
    assert "<span>expected</span>" in key and "<span>unexpected</span>" in key
    # the gradient runs between the very colours a token of p = 1 and one at the scale's end get
    assert surprise_colour(1.0) == "#{:02x}{:02x}{:02x}".format(*EXPECTED_RGB)
    assert surprise_colour(2 ** -SURPRISE_SCALE_BITS) == "#{:02x}{:02x}{:02x}".format(*SURPRISING_RGB)
    assert f"linear-gradient(to right,rgb{EXPECTED_RGB},rgb{SURPRISING_RGB})" in html
    # each tick sits where the gradient has the colour a token of that probability gets
    ticks = re.findall(r"<span class='tok-key-tick' style='left:([\d.]+)%'>([^<]+)</span>", key)
    assert [text for _, text in ticks] == ["100%", "10%", "1%", "0.1%", "≤ 0.0015%"]
    for (left, _), prob in zip(ticks, (1.0, 0.1, 0.01, 0.001, 2 ** -16), strict=True):
        ends = zip(EXPECTED_RGB, SURPRISING_RGB, strict=True)
        on_gradient = [a + (b - a) * float(left) / 100 for a, b in ends]
        drawn = surprise_colour(prob)
        channels = [int(drawn[1 + 2 * i: 3 + 2 * i], 16) for i in range(3)]
        assert all(abs(d - c) <= 1.5 for d, c in zip(channels, on_gradient, strict=True)), prob
    assert "tok-key" not in token_strip_html(["A"], [" b"])  # no probabilities, no legend
    assert "tok-key" not in token_strip_html(["A"], [" b"], progress=4)
