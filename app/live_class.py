"""A live class, the session's part: the teacher leads, students follow the teacher's view.

It is there only when the server starts with GPT2VIZ_TEACHER_KEY set. The teacher opens the class's
address with `?teacher=<key>` once, or types the key in the sidebar's "Lead the class" box; the key
leaves the address at once and is kept nowhere but in that comparison. The teacher's view (the
same parameters a share link holds, and the page) is published to the class store after each of
the teacher's page runs (`publish`). A student's session follows it while "Follow the teacher" is
on: at the start of a run, a newer view moves the session there as if it had opened the teacher's
share link (`join`). What makes an idle follower run again when the teacher changes something is
the process's watcher (app.class_watcher), so following costs no page runs while nothing changes.
The class store is in memory (one process) or Redis (replicas: GPT2VIZ_CLASS_STORE); when it does
not answer, the pages go on without the live class and say so, and it comes back by itself.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime

import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner import get_script_run_ctx

from . import share, state
from .class_store import CLASS_STORE_ENV, ClassState, ClassStore, ClassStoreDown, open_store, refusal_delay
from .class_watcher import FOLLOWS, FREE, LEADS, STORE_DOWN, Pulse, Watcher, pulse_of
from .models import CurrentModel

log = logging.getLogger(__name__)

TEACHER_KEY_ENV = "GPT2VIZ_TEACHER_KEY"
TEACHER_PARAM = "teacher"  # ?teacher=<key>: the teacher's first visit


@dataclass(frozen=True)
class Seen:
    """This run's read of the class: its state and pulse, or why there is none (the store is down)."""

    pulse: Pulse
    state: ClassState | None = None
    down: str | None = None  # the store's message when it does not answer


def teacher_key() -> str | None:
    """The key the server started with, or None: no live class."""
    return os.environ.get(TEACHER_KEY_ENV) or None


@st.cache_resource(show_spinner=False)
def _store(url: str | None) -> ClassStore:
    return open_store(url)


def class_store() -> ClassStore:
    """This process's class store (GPT2VIZ_CLASS_STORE: in memory when unset, else Redis)."""
    return _store(os.environ.get(CLASS_STORE_ENV) or None)


@st.cache_resource(show_spinner=False)
def _watcher(url: str | None) -> Watcher:
    return Watcher(_store(url))


def watcher() -> Watcher:
    return _watcher(os.environ.get(CLASS_STORE_ENV) or None)


def leading() -> bool:
    return bool(st.session_state.get(state.LEADING))


def following() -> bool:
    return teacher_key() is not None and not leading() and bool(st.session_state.get(state.FOLLOW))


def seen() -> Seen | None:
    """This run's read of the class (None outside a class, or for the teacher before publishing)."""
    return st.session_state.get(state.CLASS_SEEN)


def session_id() -> str:
    """This browser session's id, as the watcher knows it."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _read(now: float) -> Seen:
    try:
        class_state = class_store().state()
    except ClassStoreDown as down:
        return Seen(STORE_DOWN, down=str(down))
    return Seen(pulse_of(class_state.version, class_state.teacher_seen_at, now), class_state)


def try_key(given: str) -> None:
    """Lead the class if `given` is the teacher's key; else refuse, more slowly at each wrong try
    (the class's wrong tries in the last ten minutes, on every replica)."""
    key = teacher_key()
    if key is not None and hmac.compare_digest(given.encode(), key.encode()):
        st.session_state[state.LEADING] = True
        log.info("A browser now leads the class.")
        return
    try:
        tries = class_store().wrong_key(time.time())
    except ClassStoreDown:
        tries = 1
    time.sleep(refusal_delay(tries))
    st.session_state[state.KEY_REFUSED] = ("That is not the teacher's key: nothing changed. Each wrong "
                                           "try is answered more slowly.")


def join(page: StreamlitPage, pages: dict[str, StreamlitPage]) -> None:
    """At the start of every run (on `page`), in a class: the teacher's key taken out of the
    address; the session's seat with the watcher; for a follower, the teacher's newer view put in
    place, and the teacher's page opened (`pages` by url path)."""
    if teacher_key() is None:
        return
    given = st.query_params.get(TEACHER_PARAM)
    if given is not None:
        del st.query_params[TEACHER_PARAM]  # out of the address bar (and so out of every link) at once
        try_key(given)
    if state.FOLLOW not in st.session_state:  # a new session follows, unless it opened a link of its own
        st.session_state[state.FOLLOW] = not leading() and not st.query_params.to_dict()
    now = time.time()
    if leading():
        st.session_state.pop(state.CLASS_SEEN, None)
        watcher().seat(session_id(), LEADS, None)
        return
    seen_now = _read(now)
    st.session_state[state.CLASS_SEEN] = seen_now
    if not following():
        watcher().seat(session_id(), FREE, None)
        return
    watcher().seat(session_id(), FOLLOWS, seen_now.pulse)
    teacher = seen_now.state
    if teacher is None or teacher.view is None or teacher.page not in pages:
        return
    view = (teacher.page, tuple(sorted(teacher.view.items())))
    if st.session_state.get(state.FOLLOWED) == view:
        return
    st.session_state[state.FOLLOWED] = view
    share.open_view(dict(teacher.view))
    if page.url_path != teacher.page:
        st.switch_page(pages[teacher.page])


def ended() -> None:
    """At the end of every run that got there: the watcher's next follower may run."""
    if teacher_key() is not None:
        watcher().ended(session_id())


def _follow_switched() -> None:
    st.session_state.pop(state.FOLLOWED, None)  # on again: to the teacher's current view


def publish(loaded: CurrentModel, page: StreamlitPage) -> None:
    """After the teacher's page ran to its end: the teacher's view, as a share link holds it (not
    the teacher's presenter view: each student's screen keeps its own), and the page."""
    if not leading():
        return
    view = share.view_params(loaded)
    view.pop(state.LINKED[state.PRESENTER], None)
    st.session_state[state.PUBLISHED] = (page.url_path, view)
    try:
        class_store().publish_view(page.url_path, view, time.time())  # only a change bumps the version
    except ClassStoreDown as down:
        st.sidebar.warning(str(down), icon="⚠️")


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def follower_line(seen_now: Seen, now: float) -> str:
    """What a follower's sidebar says about the class."""
    teacher = seen_now.state
    if teacher is None or teacher.view is None:
        return "No teacher leads this class yet: their view will open here when they do."
    if seen_now.pulse.teacher_here:
        return "Following the teacher: this page changes when theirs does."
    gone_at = teacher.teacher_seen_at or teacher.published_at or now
    since = teacher.published_at or gone_at
    shown = datetime.fromtimestamp(since).strftime("%H:%M:%S")
    return (f"The teacher's browser left {_age(now - gone_at)} ago. You see their view as it was at "
            f"{shown} ({_age(now - since)} old); it moves again when they are back.")


@st.fragment(run_every=2)
def _leader_line() -> None:
    """The teacher's line, every 2 s: how many follow. The last view goes to the store again (the
    same view changes nothing; a Redis that restarted empty gets it back)."""
    published = st.session_state.get(state.PUBLISHED)
    try:
        count = class_store().follower_count(time.time())
        if published is not None:
            class_store().publish_view(*published, time.time())
    except ClassStoreDown as down:
        st.warning(str(down), icon="⚠️")
        return
    students = "1 student follows" if count == 1 else f"{count} students follow"
    st.markdown(f"**Leading the class** · {students}")


def sidebar() -> None:
    """The sidebar's class section (in a class only): leading, following, or the key box."""
    if teacher_key() is None:
        return
    refused = st.session_state.pop(state.KEY_REFUSED, None)
    if leading():
        _leader_line()
        if st.button("Stop leading", help="Students keep your last view; give the key again to lead"):
            st.session_state[state.LEADING] = False
            st.rerun()
        return
    seen_now = seen()
    st.toggle("Follow the teacher", key=state.FOLLOW, on_change=_follow_switched,
              help="On: this page shows what the teacher's shows. Off: explore on your own.")
    if seen_now is not None and seen_now.down is not None:
        st.warning(seen_now.down, icon="⚠️")
    elif following() and seen_now is not None:
        st.caption(follower_line(seen_now, time.time()))
    with st.form("lead", clear_on_submit=True, border=False):
        given = st.text_input("Lead the class", type="password", key=state.TEACHER_KEY_INPUT,
                              placeholder="The teacher's key", help="The teacher leads with the key the "
                              "server was started with; students need nothing")
        if st.form_submit_button("Lead"):
            try_key(given)
            st.rerun()
    if refused:
        st.error(refused)
