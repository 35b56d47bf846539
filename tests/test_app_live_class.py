"""A live class in AppTest: sessions of one process sharing the in-memory class store, as a
teacher's and students' browsers do. The teacher leads with the key; a student's session follows
the teacher's view (page, generation, step, choices) the way the teacher's share link opens it;
rounds of "what comes next?" carry guesses to the teacher and the model's answer back. What moves
an idle follower's browser (the watcher) and Redis are in tests/test_browser_class.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app import live_class, state
from app.class_store import CLASS_STORE_ENV
from app.live_class import TEACHER_KEY_ENV
from app.models import tokenizer
from gpt2viz.guesses import guess_token
from gpt2viz.viz.candidates import percent
from tests.app_support import APP, ATTENTION, app_gpt2, figure, generate, new_app, session_generation, texts

pytestmark = pytest.mark.usefixtures("app_model")

KEY = "sesame-42"
PROMPT = "The cat sat on the mat because it was warm"
ASK = "Ask: what comes next?"


@pytest.fixture(autouse=True)
def class_server(monkeypatch):
    """A server started with a teacher key, its class store in memory and empty."""
    monkeypatch.setenv(TEACHER_KEY_ENV, KEY)
    monkeypatch.delenv(CLASS_STORE_ENV, raising=False)
    live_class._store.clear()
    live_class._watcher.clear()
    yield
    live_class._store.clear()
    live_class._watcher.clear()


def opened(**params: str) -> AppTest:
    """A fresh session opened on the class's address with these query parameters."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def shared_link(at: AppTest) -> str:
    """The link in the sidebar's "Share this view" popover."""
    (box,) = [b for b in at.sidebar.get("popover") if b.proto.popover.label == "Share this view"]
    (code,) = box.code
    return code.value


def everything_sent(at: AppTest) -> str:
    """Every text element, the share link and the query parameters of the session's page, as one string."""
    kinds = ("markdown", "caption", "code", "error", "warning", "info", "success", "text")
    return " ".join([*(t for kind in kinds for t in texts(at, kind)), shared_link(at),
                     *map(str, at.query_params.values())])


def test_the_key_in_the_address_leads_and_leaves_the_address_and_every_link():
    teacher = opened(teacher=KEY)
    assert teacher.session_state[state.LEADING] is True
    assert "teacher" not in teacher.query_params
    assert any(t.startswith("**Leading the class** · 0 students follow") for t in texts(teacher, "markdown"))
    generate(teacher, PROMPT)
    assert "prompt=The%20cat" in shared_link(teacher)
    assert KEY not in everything_sent(teacher)


def test_a_wrong_key_leads_nothing_and_says_so_once():
    student = opened(teacher="sesame-43")
    assert state.LEADING not in student.session_state
    assert texts(student, "error") == ["That is not the teacher's key: nothing changed. Each wrong try is "
                                       "answered more slowly."]
    assert "teacher" not in student.query_params
    assert live_class.class_store().wrong_key(0.0) >= 1  # the try was counted for the class
    student.run()
    assert texts(student, "error") == []  # said once


def test_the_key_typed_in_the_sidebar_leads():
    at = opened()
    at.text_input(key=state.TEACHER_KEY_INPUT).input(KEY)
    button(at, "Lead").click().run()
    assert at.session_state[state.LEADING] is True
    assert any(t.startswith("**Leading the class**") for t in texts(at, "markdown"))


def test_a_student_follows_the_teachers_page_generation_and_choices():
    student = opened()
    assert student.toggle(key=state.FOLLOW).value is True
    assert any(t.startswith("No teacher leads this class yet") for t in texts(student, "caption"))
    teacher = opened(teacher=KEY)
    generate(teacher, PROMPT, max_new_tokens=5)
    teacher.switch_page(ATTENTION).run()
    teacher.selectbox(key=state.HEAD).set_value(2).run()
    assert not teacher.exception, teacher.exception
    live_class.class_store().teacher_seen(time.time())  # the watcher's heartbeat for a connected browser

    student.run()
    assert not student.exception, student.exception
    assert student.title[0].value == teacher.title[0].value == "Attention"
    assert session_generation(student).ids == session_generation(teacher).ids
    assert student.session_state[state.HEAD + ".remembered"] == 2
    assert_same_figure(figure(student, "attention_heatmap"), figure(teacher, "attention_heatmap"))
    assert any(t.startswith("Following the teacher") for t in texts(student, "caption"))


def assert_same_figure(a: dict, b: dict) -> None:
    """The same traces with the same values, and the same title."""
    assert a["layout"].get("title") == b["layout"].get("title")
    assert len(a["data"]) == len(b["data"]) > 0
    for trace_a, trace_b in zip(a["data"], b["data"], strict=True):
        assert trace_a.keys() == trace_b.keys()
        for field in ("x", "y", "z", "text"):
            if field in trace_a:
                np.testing.assert_array_equal(np.asarray(trace_a[field]), np.asarray(trace_b[field]))


def test_presenter_view_stays_each_screens_own_and_shows_the_teachers_round():
    teacher = opened(teacher=KEY)
    generate(teacher, PROMPT, max_new_tokens=3)
    teacher.toggle(key=state.PRESENTER).set_value(True).run()
    student = opened()
    assert session_generation(student).ids == session_generation(teacher).ids
    assert student.toggle(key=state.PRESENTER).value is False
    button(teacher, ASK).click().run()
    assert not teacher.exception, teacher.exception
    round_chart = figure(teacher, "round")
    assert round_chart["layout"]["title"]["text"].startswith("What comes next?")
    assert round_chart["layout"]["font"]["size"] > 12  # presenter view's enlarged copy


def test_a_student_who_stopped_following_is_not_moved_and_jumps_back_when_on_again():
    teacher = opened(teacher=KEY)
    generate(teacher, PROMPT, max_new_tokens=3)
    student = opened()
    assert session_generation(student).ids == session_generation(teacher).ids
    student.toggle(key=state.FOLLOW).set_value(False).run()
    student.switch_page(ATTENTION).run()
    student.selectbox(key=state.HEAD).set_value(1).run()

    generate(teacher, "A different prompt for the class", max_new_tokens=2)
    student.run()
    assert student.title[0].value == "Attention"
    assert student.session_state[state.HEAD + ".remembered"] == 1
    assert session_generation(student).prompt == PROMPT

    student.toggle(key=state.FOLLOW).set_value(True).run()
    assert student.title[0].value == "Generate"
    assert session_generation(student).ids == session_generation(teacher).ids


def test_a_round_carries_the_guesses_to_the_teacher_and_the_answer_to_each_student():
    teacher = opened(teacher=KEY)
    generate(teacher, PROMPT, max_new_tokens=4)
    teacher.select_slider(key=state.STEP).set_value(1).run()  # asking after the second generated token
    students = [opened(), opened(), opened()]
    button(teacher, ASK).click().run()
    assert not teacher.exception, teacher.exception
    generation = session_generation(teacher)
    before = generation.ids[:len(generation.prompt_ids) + 2]

    for student, guess in zip(students, ["mat", "mat", ","], strict=True):
        student.run()
        assert student.title[0].value == "What comes next?"
        assert "Attention" not in everything_sent(student)
        student.text_input(key=state.GUESS_INPUT).input(guess)
        button(student, "Send my guess").click().run()
        assert not student.exception, student.exception
        assert any(t.startswith("Your guess: **") for t in texts(student, "success"))

    live_class.class_store().report_followers("this process", 3, time.time())  # as the watcher does
    teacher.run()
    assert "**What comes next?** 3 of 3 following have answered." in texts(teacher, "markdown")
    chart = figure(teacher, "round")
    counts = dict(zip(chart["data"][0]["y"], chart["data"][0]["x"], strict=True))
    assert sorted(counts.values()) == [1, 2]

    button(teacher, "Reveal").click().run()
    assert not teacher.exception, teacher.exception
    drawn = session_generation(teacher).steps[2]
    probs = torch.softmax(app_gpt2().next_token_logits(before).float(), dim=-1)
    tok = tokenizer()
    text = tok.decode(before)
    for student, guess in zip(students, ["mat", "mat", ","], strict=True):
        student.run()
        assert not student.exception, student.exception
        said = " ".join(texts(student, "markdown"))
        assert f"(it gave it {percent(drawn.prob)})" in said
        assert f"the model gave it {percent(float(probs[guess_token(tok, guess, text)]))}" in said


def test_a_new_student_of_a_class_opened_from_a_link_of_their_own_does_not_follow():
    opened(teacher=KEY)
    student = opened(prompt="My own prompt")
    assert student.toggle(key=state.FOLLOW).value is False


def test_without_a_teacher_key_there_is_no_class(monkeypatch):
    monkeypatch.delenv(TEACHER_KEY_ENV)
    at = new_app()
    assert not [t for t in at.toggle if t.label == "Follow the teacher"]
    assert not [t for t in at.text_input if t.label == "Lead the class"]


def test_asking_at_the_end_of_a_generation_reveals_one_token_more_with_the_same_draws():
    teacher = opened(teacher=KEY)
    teacher.toggle(key=state.GREEDY).set_value(False).run()
    teacher.number_input(key=state.SEED).set_value(7)
    generate(teacher, PROMPT, max_new_tokens=3)
    written = session_generation(teacher).ids
    student = opened()
    button(teacher, ASK).click().run()
    student.run()
    student.text_input(key=state.GUESS_INPUT).input("the")
    button(student, "Send my guess").click().run()
    teacher.run()
    button(teacher, "Reveal").click().run()
    assert not teacher.exception, teacher.exception
    longer = session_generation(teacher)
    assert len(longer.steps) == 4 and longer.ids[:len(written)] == written  # the same draws, one more
    assert teacher.session_state[state.MAX_NEW_TOKENS + ".remembered"] == 4
    student.run()
    assert session_generation(student).ids == longer.ids
    assert any("The model wrote **" in t and f"(it gave it {percent(longer.steps[3].prob)})" in t
               for t in texts(student, "markdown"))
