"""The Lesson page and the presenter view in AppTest, on the model the app tests run on."""

from __future__ import annotations

import pytest

import gpt2viz
from app.lesson.content import CAT_SENTENCE, Lesson, attention_to, load_cards, word_position
from app.lesson.views import card_view
from app.navigation import URL_PATHS
from app.presenter import BESIDE_TEXT_HEIGHT
from app.state import DEFAULTS, PROMPT
from gpt2viz.viz.candidates import percent
from tests.app_support import LESSON, QKV, app_gpt2, chart_keys, figure, new_app, texts

pytestmark = pytest.mark.usefixtures("app_model")

CARDS = load_cards()


def progress(at) -> str:
    return at.get("progress")[0].proto.text


def link_page(at) -> str:
    """The url path the card's "see it" link opens ("" is the Generate page, the default)."""
    (link,) = at.get("page_link")
    assert link.proto.page_script_hash
    return link.proto.page


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def go_to_card(at, card_id: str):
    for _ in range(len(CARDS)):
        if at.header[0].value == next(c.title for c in CARDS if c.id == card_id):
            return at
        click(at, "lesson_next")
    raise AssertionError(f"no card {card_id}")


@pytest.fixture
def lesson():
    return new_app(LESSON)


def test_the_lesson_walks_from_start_to_end(lesson):
    n = len(CARDS)
    expected = Lesson(app_gpt2(), gpt2viz.load_tokenizer(), DEFAULTS[PROMPT])
    assert lesson.button(key="lesson_previous").disabled
    for i, card in enumerate(CARDS):
        assert progress(lesson) == f"Card {i + 1} of {n}"
        assert lesson.header[0].value == card.title
        shown = metrics(lesson)
        assert shown and all(shown.values()), card.id
        # what the card must draw, computed apart from the app: its figure, its token strip, or both
        view = card_view(expected, card.id)
        assert chart_keys(lesson) == ([f"lesson_{card.id}"] if view.figure is not None else []), card.id
        assert view.figure is not None or view.html, card.id
        if view.html:
            assert view.html in texts(lesson, "markdown"), card.id
        assert link_page(lesson) == ("" if card.see == "/" else card.see)
        assert link_page(lesson) in {p.strip("/") for p in URL_PATHS}
        if i < n - 1:
            click(lesson, "lesson_next")
    assert lesson.button(key="lesson_next").disabled
    assert progress(lesson) == f"Card {n} of {n}"


def test_previous_goes_back(lesson):
    click(click(lesson, "lesson_next"), "lesson_next")
    assert progress(lesson) == f"Card 3 of {len(CARDS)}"
    click(lesson, "lesson_previous")
    assert progress(lesson) == f"Card 2 of {len(CARDS)}"
    assert lesson.header[0].value == CARDS[1].title
    lesson.selectbox(key="lesson_card").select(len(CARDS) - 1).run()  # the jump list
    assert lesson.header[0].value == CARDS[-1].title


def test_the_numbers_are_the_live_models(lesson, tok):
    model = app_gpt2()
    ids = tok.encode(CAT_SENTENCE)  # the default prompt
    probs = model.run_with_capture(ids, names=[]).logits[-1].softmax(-1)
    assert metrics(lesson)["Its probability"] == percent(float(probs.max()))
    go_to_card(lesson, "cat_black")
    texts_ = tok.token_texts(ids)
    cat, black = word_position(texts_, "cat"), word_position(texts_, "black")
    expected = attention_to(model.run_with_capture(ids), cat, black)
    layer = int(expected.max(1).values.argmax())
    bars = figure(lesson, "lesson_cat_black")["data"][0]["y"]
    assert list(bars) == pytest.approx(expected[layer].tolist(), abs=1e-6)
    assert metrics(lesson)["Its weight on “black”"] == percent(float(expected.max()))


def test_see_it_opens_q_k_v_on_the_cat_head(lesson, tok):
    go_to_card(lesson, "qkv")
    assert link_page(lesson) == "qkv"
    ids = tok.encode(CAT_SENTENCE)
    texts_ = tok.token_texts(ids)
    cat = word_position(texts_, "cat")
    expected = attention_to(app_gpt2().run_with_capture(ids), cat, word_position(texts_, "black"))
    layer, head = divmod(int(expected.argmax()), expected.shape[1])
    lesson.switch_page(QKV).run()
    assert not lesson.exception, lesson.exception
    assert lesson.selectbox(key="layer").value == layer
    assert lesson.selectbox(key="head").value == head
    assert lesson.selectbox(key="query").value == cat


def test_presenter_view_enlarges_text_and_figures(lesson):
    assert not any("gpt2viz-presenter" in m for m in texts(lesson, "markdown"))
    before = figure(lesson, "lesson_next_token")["layout"]
    assert [t.value for t in lesson.title] == ["Lesson: how GPT-2 works"]
    offline = any(t.startswith("Offline") for t in texts(lesson, "info"))  # the bundled model stands in
    lesson.toggle(key="presenter").set_value(True).run()
    assert not lesson.exception, lesson.exception
    css = [m for m in texts(lesson, "markdown") if "gpt2viz-presenter" in m]
    assert css and "font-size: 21px" in css[0]
    after = figure(lesson, "lesson_next_token")["layout"]
    assert after["font"]["size"] == 20 and after["font"]["size"] > before.get("font", {}).get("size", 12)
    assert after["height"] == BESIDE_TEXT_HEIGHT > before["height"]
    assert not [s for s in lesson.selectbox if s.key == "lesson_card"]  # the jump list is hidden
    # compact, to fit a 1280×720 screen: no page title, the progress and both buttons on one row,
    # the card's title, then its text beside its figure
    assert not lesson.title and [h.value for h in lesson.subheader] == [CARDS[0].title]
    progress_column, previous_column, next_column = lesson.columns[:3]
    assert progress_column.get("progress") and previous_column.button[0].key == "lesson_previous"
    assert next_column.button[0].key == "lesson_next"
    text_column, figure_column = lesson.columns[3:5]
    assert CARDS[0].text in [m.value for m in text_column.markdown]
    assert figure_column.get("plotly_chart")
    # the offline notice and its details, folded into the progress line
    assert not lesson.expander and not any(t.startswith("Offline") for t in texts(lesson, "info"))
    assert (f"· offline: {gpt2viz.BUNDLED_NAME}, not OpenAI's GPT-2" in progress(lesson)) == offline
    click(lesson, "lesson_next")  # still walks, still large
    assert progress(lesson).startswith(f"Card 2 of {len(CARDS)}")
    click(lesson, "lesson_previous")
    lesson.toggle(key="presenter").set_value(False).run()
    assert not any("gpt2viz-presenter" in m for m in texts(lesson, "markdown"))
    assert figure(lesson, "lesson_next_token")["layout"] == before  # the cached figure was not changed


def test_a_prompt_that_cannot_run_falls_back_to_the_example():
    at = new_app()
    at.text_area(key="prompt").input("   ").run()
    at.switch_page(LESSON).run()
    assert not at.exception, at.exception
    assert any("example sentence" in t for t in texts(at, "info"))
    assert progress(at) == f"Card 1 of {len(CARDS)}"
