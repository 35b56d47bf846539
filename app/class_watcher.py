"""The live class's watcher: one thread per process that moves this process's followers when the
class changes, so an idle follower costs nothing (no page run, no message) until the teacher's view
or the round changes.

Every run of a session in a class takes a seat (`Watcher.seat`) saying whether it leads, follows
or is free, and the `Pulse` its page showed. Ten times a second the thread reads the store's
pulse (the class's version, whether the teacher's browser is there, whether the store answers: one
small read); a follower whose page showed another pulse gets one rerun, as if its browser had asked
(`rerun_session`), and its run follows the teacher's view (app.live_class). Once a second the thread
reports how many of this process's sessions follow (the teacher's count adds every process's) and
whether this process holds the teacher's connected browser (the teacher's heartbeat: a closed or
lost connection stops it, so followers learn the teacher has gone).

When the class changes, the thread reruns the followers a few at a time (TURNS), each next one as
soon as one of those runs ends (`ended`) or after TURN_S: thirty runs at once share one core and
all end together, after the last; a few at a time, half the class sees the change in half that
time, and the last no later (bench/class_follow.py).

The thread is supervised as the step worker's is: should it end, the next seat taken starts another.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from streamlit.runtime import Runtime

from .class_store import FRESH_S, ClassStore, ClassStoreDown

log = logging.getLogger(__name__)

PROCESS_ID = uuid.uuid4().hex  # this process's name in the store's follower reports
LEADS, FOLLOWS, FREE = "leads", "follows", "free"
TURNS = 2  # follower runs the watcher has asked for that may run at once
TURN_S = 0.25  # the longest it waits for one of them to end before asking for the next anyway
STAGGER_S = 1.5  # the longest one look spends on that; the followers left are asked at once


@dataclass(frozen=True)
class Pulse:
    """What a follower's page depends on: the class's version, whether the teacher's browser is
    there and whether the store answers. A page run shows one; the watcher compares."""

    version: int
    teacher_here: bool
    store_up: bool = True


def pulse_of(version: int, teacher_seen_at: float | None, now: float) -> Pulse:
    return Pulse(version, teacher_seen_at is not None and now - teacher_seen_at <= FRESH_S)


STORE_DOWN = Pulse(-1, False, store_up=False)


@dataclass
class _Seat:
    role: str
    shown: Pulse | None  # the pulse the session's last run showed
    asked: Pulse | None = None  # the pulse a rerun was last asked for


def is_active(session_id: str) -> bool:
    """Whether the session's browser is connected to this process."""
    return Runtime.exists() and Runtime.instance().is_active_session(session_id)


def rerun_session(session_id: str) -> None:
    """Run the session's page again as its browser last asked for it (its page, query and widget
    values), as Streamlit's own "run on save" does. Streamlit's AppSession is driven from its event
    loop, so the request is handed to that loop. Uses two internals of Streamlit 1.67 (the session's
    `_event_loop` and `_client_state`); tests/test_browser_class.py fails if they change."""
    session = Runtime.instance().get_app_session(session_id) if Runtime.exists() else None
    if session is None:
        return
    session._event_loop.call_soon_threadsafe(session.request_rerun, session._client_state)


class Watcher:
    """The seats of this process's sessions and the thread that watches the store for them."""

    def __init__(self, store: ClassStore, poll: float = 0.1, report: float = 1.0,
                 active: Callable[[str], bool] = is_active, rerun: Callable[[str], None] = rerun_session,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.poll, self.report = store, poll, report
        self._active, self._rerun, self._clock = active, rerun, clock
        self._seats: dict[str, _Seat] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._in_turn: dict[str, float] = {}  # followers rerun in a turn: when it was given (monotonic)
        self._turn_ended = threading.Condition(self._lock)
        self.reruns = 0  # how many reruns the thread has asked for (the bench reads it)

    def seat(self, session_id: str, role: str, shown: Pulse | None) -> None:
        """A run of `session_id` took place as `role`, showing `shown` (None: it showed no class)."""
        with self._lock:
            self._seats[session_id] = _Seat(role, shown)
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:
                    log.error("The class watcher's thread had ended; starting another.")
                self._thread = threading.Thread(target=self._watch, name="gpt2viz-class-watcher", daemon=True)
                self._thread.start()

    def ended(self, session_id: str) -> None:
        """A run of `session_id` ran to its end: the turn it held, if any, goes to the next follower."""
        with self._turn_ended:
            if self._in_turn.pop(session_id, None) is not None:
                self._turn_ended.notify()

    def _take_turn(self, session_id: str, until: float) -> None:
        """Wait (until `until` at most) for fewer than TURNS turns to be held, then give one to
        `session_id`; a turn not ended within TURN_S is over (its run stopped early, or is slow)."""
        with self._turn_ended:
            while True:
                now = time.monotonic()
                self._in_turn = {sid: at for sid, at in self._in_turn.items() if now - at < TURN_S}
                if len(self._in_turn) < TURNS:
                    self._in_turn[session_id] = now
                    return
                wait = min(until, min(self._in_turn.values()) + TURN_S) - now
                if now >= until:
                    return
                self._turn_ended.wait(max(wait, 0.001))

    def following_here(self) -> int:
        """This process's connected sessions that follow the teacher."""
        with self._lock:
            seats = list(self._seats.items())
        return sum(seat.role == FOLLOWS and self._active(sid) for sid, seat in seats)

    def read_pulse(self) -> Pulse:
        try:
            version, seen = self.store.pulse()
        except ClassStoreDown:
            return STORE_DOWN
        return pulse_of(version, seen, self._clock())

    def tick(self) -> None:
        """One look at the store: rerun every follower whose page showed another pulse."""
        pulse = self.read_pulse()
        with self._lock:
            due = [sid for sid, seat in self._seats.items()
                   if seat.role == FOLLOWS and seat.shown != pulse and seat.asked != pulse]
            for sid in due:
                self._seats[sid].asked = pulse
        until = time.monotonic() + STAGGER_S
        for sid in due:
            if not self._active(sid):
                continue
            self._take_turn(sid, until)
            self._rerun(sid)
            self.reruns += 1

    def send_report(self) -> None:
        """This process's followers, the teacher's heartbeat if the teacher's browser is here; the
        seats of sessions whose browser has gone are dropped."""
        now = self._clock()
        with self._lock:
            seats = list(self._seats.items())
        active = {sid: self._active(sid) for sid, _ in seats}
        try:
            following = sum(seat.role == FOLLOWS and active[sid] for sid, seat in seats)
            self.store.report_followers(PROCESS_ID, following, now)
            if any(s.role == LEADS and active[sid] for sid, s in seats):
                self.store.teacher_seen(now)
        except ClassStoreDown:
            pass  # the pages say so; the next report goes through once the store answers
        gone = {sid for sid, _ in seats if not active[sid]}  # a browser that comes back runs, and sits again
        with self._lock:
            for sid in gone:
                self._seats.pop(sid, None)

    def _watch(self) -> None:
        next_report = 0.0
        while True:
            try:
                self.tick()
                if time.monotonic() >= next_report:
                    self.send_report()
                    next_report = time.monotonic() + self.report
            except Exception:  # a fault in one look must not end the class: log it and look again
                log.exception("The class watcher failed to look at the class; trying again.")
            time.sleep(self.poll)

