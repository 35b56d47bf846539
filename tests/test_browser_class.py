"""A live class in Chromium: a teacher and three students' browsers on a real server.

The teacher leads with the key in the address; the students' pages follow the teacher's page, head
and generation with the same figure data, moved by the server (no click on the students' side);
a round of three guesses reaches the teacher's chart with the right counts and the reveal reaches
every follower; a student who stopped following stays where they are; a wrong key leads nothing;
the key appears in no student's page, no share link and no server log line. Then the same class on
two replicas behind HAProxy with the Redis that `make class` starts, students on both replicas,
and Redis stopped and started again mid-class.

Every wait is bounded (`until`) and says what it waited for.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable

import numpy as np
import pytest

from app.class_store import CLASS_STORE_ENV
from app.live_class import TEACHER_KEY_ENV
from bench.class_load import free_port, served
from tests.app_support import ROOT, redis_server
from tests.test_browser import browser, generate, requests_elsewhere  # noqa: F401 (fixture)
from tests.test_browser_links import FIGURES, pick, share_link
from tests.test_class_replicas import class_of_two, needs_haproxy, replica_of

pytestmark = pytest.mark.browser

KEY = "lesson-key-7f3a"
PROMPT = "The cat sat on the mat because it was"
FOLLOWING = "Following the teacher"
VIEWPORT = {"width": 1400, "height": 2400}


def until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.25)


def figures(page) -> list[dict]:
    return [json.loads(f) for f in page.evaluate(FIGURES)]


def settled_figures(page, charts: int, what: str) -> list[dict]:
    """The page's figures once it shows at least `charts` and they stopped changing."""
    status = page.locator("[data-testid='stStatusWidget']")
    seen: list[list[dict]] = [[]]

    def still() -> bool:
        now = figures(page)
        stable = len(now) >= charts and now == seen[0] and status.count() == 0
        seen[0] = now
        return stable

    until(f"{what}: {charts} figures, settled", still, timeout=120)
    return seen[0]


def shows_the_teachers_view(teacher, students: list, heading: str, charts: int) -> None:
    expected = settled_figures(teacher, charts, "the teacher's page")
    for i, student in enumerate(students):
        try:
            until(f"student {i} on {heading!r} with the teacher's figures",
                  lambda s=student: s.get_by_role("heading", name=heading).count() > 0
                  and same_figures(figures(s), expected))
        except AssertionError as waited:
            theirs = [(f["title"], [len(t["x"] or []) for t in f["traces"]]) for f in expected]
            mine = [(f["title"], [len(t["x"] or []) for t in f["traces"]]) for f in figures(student)]
            raise AssertionError(f"{waited}: the teacher's {theirs}, the student's {mine}") from None


def same_figures(mine: list[dict], theirs: list[dict]) -> bool:
    """The same titles, labels and texts, and the same numbers up to float32 rounding: students
    replaying together run as one batch, whose sums round differently from the teacher's own."""
    def numbers(value) -> np.ndarray | None:
        flat = np.asarray(value, dtype=object).ravel()
        if flat.size and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            return np.asarray(value, dtype=float)
        return None

    if len(mine) != len(theirs):
        return False
    for a, b in zip(mine, theirs, strict=True):
        if a["title"] != b["title"] or len(a["traces"]) != len(b["traces"]):
            return False
        for trace_a, trace_b in zip(a["traces"], b["traces"], strict=True):
            for field in ("x", "y", "z", "text"):
                x, y = numbers(trace_a.get(field)), numbers(trace_b.get(field))
                if x is None or y is None:
                    if trace_a.get(field) != trace_b.get(field):
                        return False
                elif x.shape != y.shape or not np.allclose(x, y, rtol=1e-5, atol=1e-7):
                    return False
    return True


def open_page(browser, url: str, ready: str):  # noqa: F811
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(url, wait_until="domcontentloaded")
    until(f"{ready!r} on {url}", lambda: page.get_by_text(ready).count() > 0, timeout=180)
    return page


def follow_switch(page):
    return page.get_by_role("switch", name="Follow the teacher")


def nav(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    until(f"the {title} page", lambda: page.get_by_role("heading", name=title).count() > 0)


@pytest.fixture(scope="module")
def classroom(app_model: str):
    log = ROOT / "test-artifacts" / "class-streamlit.log"
    log.parent.mkdir(exist_ok=True)
    with served(app_model, log, env={TEACHER_KEY_ENV: KEY, CLASS_STORE_ENV: ""}) as (url, _):
        yield url, log


def test_a_teacher_and_three_students_on_one_process(classroom, browser):  # noqa: F811
    url, log = classroom
    teacher = open_page(browser, f"{url}/?teacher={KEY}", "Leading the class")
    assert KEY not in teacher.url
    students = [open_page(browser, url + "/", FOLLOWING) for _ in range(3)]
    for student in students:
        assert follow_switch(student).is_checked()
    until("the teacher's line counting three students",
          lambda: teacher.get_by_text("Leading the class · 3 students follow").count() > 0, timeout=30)

    generate(teacher, PROMPT, 4)  # a new generation
    shows_the_teachers_view(teacher, students, "Generate", 1)
    strip = teacher.locator(".tok-strip").last.inner_text()
    for student in students:
        assert student.locator(".tok-strip").last.inner_text() == strip

    nav(teacher, "Attention")  # a page change
    shows_the_teachers_view(teacher, students, "Attention", 2)
    pick(teacher, "Head", "2")  # a head change
    until("the teacher's page on head 2", lambda: teacher.get_by_text("head 2").count() > 0)
    shows_the_teachers_view(teacher, students, "Attention", 2)

    nav(teacher, "Generate")  # a round: three guesses
    shows_the_teachers_view(teacher, students, "Generate", 1)
    teacher.get_by_role("button", name="Ask: what comes next?").click()
    for student, guess in zip(students, ["mat", "mat", "sofa"], strict=True):
        until("the question on a student's page",
              lambda s=student: s.get_by_role("heading", name="What comes next?").count() > 0)
        student.get_by_label("Your guess for the next word").fill(guess)
        student.get_by_role("button", name="Send my guess").click()
        until("the student's guess acknowledged", lambda s=student: s.get_by_text("Your guess:").count() > 0)
    until("three answers on the teacher's page",
          lambda: teacher.get_by_text("3 of 3 following have answered").count() > 0, timeout=30)

    def guess_counts() -> list:
        chart = next(f for f in figures(teacher) if (f["title"] or "").startswith("What comes next?"))
        return sorted(chart["traces"][0]["x"]) if len(chart["traces"]) == 2 else []  # guesses, model

    until("the teacher's chart counting two guesses of one token and one of another",
          lambda: guess_counts() == [1, 2], timeout=10)
    reveal = teacher.get_by_role("button", name="Reveal")
    until("one Reveal button", lambda: reveal.count() == 1)
    reveal.click()
    for student in students:
        until("the answer on a student's page",
              lambda s=student: s.get_by_role("heading", name="What came next").count() > 0)
        assert student.get_by_text("the model gave it").count() > 0
    end = teacher.get_by_role("button", name="End the round")
    until("one End the round button (the round panel redrawn after the reveal)", lambda: end.count() == 1)
    end.click()
    until("the round ended on the teacher's page", lambda: teacher.get_by_text("have answered").count() == 0)

    # a student who stops following is not moved; the others are
    follow_switch(students[2]).uncheck(force=True)
    until("the switch off", lambda: not follow_switch(students[2]).is_checked())
    nav(teacher, "Attention")
    pick(teacher, "Head", "1")
    shows_the_teachers_view(teacher, students[:2], "Attention", 2)
    assert students[2].get_by_role("heading", name="Generate").count() == 1

    # a wrong key leads nothing
    intruder = open_page(browser, f"{url}/?teacher=not-the-key", "not the teacher's key")
    assert intruder.get_by_text("Leading the class").count() == 0
    assert "not-the-key" not in intruder.url

    # the key is nowhere a student could see it, nor in a link or a log line
    for page in [*students, intruder]:
        assert KEY not in page.content()
        assert requests_elsewhere(page, url) == []
    assert KEY not in share_link(teacher)
    assert KEY not in log.read_text()

    # the teacher's browser goes away: followers keep the view and are told how old it is
    teacher.context.close()
    for student in students[:2]:
        until("a follower told the teacher's browser left",
              lambda s=student: s.get_by_text("The teacher's browser left").count() > 0, timeout=30)
        assert student.get_by_role("heading", name="Attention").count() == 1
        assert re.search(r"their view as it was at \d\d:\d\d:\d\d \(\d+ s old\)", student.content())


def exceptions(page) -> int:
    return page.locator("[data-testid='stException']").count()


@pytest.mark.usefixtures("app_model")
def test_a_class_on_two_replicas_through_redis_stopped_and_started_again(app_model, tmp_path, browser):  # noqa: F811
    needs_haproxy()
    redis_port = free_port()
    env = {TEACHER_KEY_ENV: KEY, "REDIS_PORT": str(redis_port)}
    with class_of_two(app_model, tmp_path, env) as running:
        started = [line for line in running.lines if "Redis for the live class" in line]
        assert started, "class.sh started no Redis:\n" + "".join(running.lines)
        redis_pid = int(re.search(r"\(pid (\d+)", started[0])[1])
        teacher = open_page(browser, f"{running.url}/?teacher={KEY}", "Leading the class")
        students: dict[str, object] = {}  # one student on each replica
        for _ in range(8):
            page = open_page(browser, running.url + "/", FOLLOWING)
            if replica_of(page) in students:
                page.context.close()
            else:
                students[replica_of(page)] = page
            if len(students) == 2:
                break
        assert sorted(students) == ["r1", "r2"], f"students only on {sorted(students)}"
        pupils = list(students.values())

        generate(teacher, PROMPT, 3)
        shows_the_teachers_view(teacher, pupils, "Generate", 1)
        nav(teacher, "Attention")
        pick(teacher, "Head", "1")
        shows_the_teachers_view(teacher, pupils, "Attention", 2)

        os.kill(redis_pid, signal.SIGTERM)  # Redis stops mid-class
        for student in pupils:
            until("a student told the live class pauses",
                  lambda s=student: s.get_by_text("does not answer").count() > 0, timeout=30)
        pick(teacher, "Head", "2")  # the teacher's page goes on
        until("the teacher's page on head 2", lambda: teacher.get_by_text("head 2").count() > 0)
        until("the teacher told the live class pauses",
              lambda: teacher.get_by_text("does not answer").count() > 0, timeout=30)

        with redis_server(redis_port):  # and is back, empty: the teacher's page puts the view back
            shows_the_teachers_view(teacher, pupils, "Attention", 2)
            pick(teacher, "Head", "3")
            shows_the_teachers_view(teacher, pupils, "Attention", 2)
            for page in [teacher, *pupils]:
                assert exceptions(page) == 0
                assert page.get_by_text("does not answer").count() == 0
