"""The class watcher reruns the followers a few at a time when the class changes: each next one when
a run ends or its turn runs out, never more than TURNS at once, and never holding the rest back for
longer than STAGGER_S (app/class_watcher.py). A real in-memory class store; the reruns recorded."""

from __future__ import annotations

import threading
import time

import pytest

from app import class_watcher
from app.class_store import MemoryClassStore
from app.class_watcher import FOLLOWS, FREE, Watcher, pulse_of

WAIT_S = 10.0  # the longest any test waits for the watcher


class Reruns:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, session_id: str) -> None:
        with self._changed:
            self.asked.append(session_id)
            self._changed.notify_all()

    def wait_for(self, count: int, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.asked) >= count, WAIT_S):
                raise AssertionError(f"waited {WAIT_S:.0f} s for {what}: reruns asked {self.asked}")


def a_class(followers: int) -> tuple[Watcher, MemoryClassStore, Reruns, list[str]]:
    """A watcher whose own thread looks only once (at the first seat): the tests call tick(). No
    teacher's browser is seated: its heartbeat would change the class's pulse again."""
    store, reruns = MemoryClassStore(), Reruns()
    watcher = Watcher(store, poll=3600, active=lambda sid: True, rerun=reruns)
    shown = pulse_of(*store.pulse(), time.time())
    names = [f"student-{i}" for i in range(followers)]
    watcher.seat("explorer", FREE, None)
    for name in names:
        watcher.seat(name, FOLLOWS, shown)
    store.publish_view("/attention", {"head": "1"}, time.time())  # the teacher's change
    return watcher, store, reruns, names


def in_background(watcher: Watcher) -> threading.Thread:
    look = threading.Thread(target=watcher.tick, daemon=True)
    look.start()
    return look


def test_followers_are_rerun_a_few_at_a_time_each_next_one_when_a_run_ends(monkeypatch) -> None:
    monkeypatch.setattr(class_watcher, "TURN_S", 60.0)  # a turn ends only when its run does
    monkeypatch.setattr(class_watcher, "STAGGER_S", 60.0)
    watcher, _, reruns, names = a_class(5)
    look = in_background(watcher)
    reruns.wait_for(class_watcher.TURNS, "the first turns")
    time.sleep(0.3)  # nobody's run ended: nobody else is asked (with turns of 60 s)
    assert reruns.asked == names[:class_watcher.TURNS]
    for ended, count in zip(names, range(class_watcher.TURNS + 1, len(names) + 1), strict=False):
        watcher.ended(ended)
        reruns.wait_for(count, f"a rerun after {ended}'s run ended")
        assert reruns.asked == names[:count]
    look.join(WAIT_S)
    assert not look.is_alive() and reruns.asked == names  # the free session: not rerun
    watcher.ended("explorer")  # a run that held no turn ends: nothing changes
    watcher.tick()  # the class did not change again: nobody is rerun twice
    assert reruns.asked == names


def test_a_run_that_never_ends_holds_its_turn_for_turn_s_at_most(monkeypatch) -> None:
    monkeypatch.setattr(class_watcher, "TURN_S", 0.05)
    monkeypatch.setattr(class_watcher, "STAGGER_S", 60.0)
    watcher, _, reruns, names = a_class(6)  # nobody's run ends
    look = in_background(watcher)
    reruns.wait_for(len(names), "every follower, turns running out")
    look.join(WAIT_S)
    assert not look.is_alive() and reruns.asked == names


def test_past_stagger_s_the_followers_left_are_rerun_at_once(monkeypatch) -> None:
    monkeypatch.setattr(class_watcher, "TURN_S", 60.0)
    monkeypatch.setattr(class_watcher, "STAGGER_S", 0.0)
    watcher, _, reruns, names = a_class(6)  # nobody's run ends, and turns would last a minute
    look = in_background(watcher)
    reruns.wait_for(len(names), "every follower at once")
    look.join(WAIT_S)
    assert not look.is_alive()


@pytest.mark.parametrize("turns", [1, 3])
def test_the_number_of_turns_is_what_runs_at_once(monkeypatch, turns: int) -> None:
    monkeypatch.setattr(class_watcher, "TURNS", turns)
    monkeypatch.setattr(class_watcher, "TURN_S", 60.0)
    monkeypatch.setattr(class_watcher, "STAGGER_S", 60.0)
    watcher, _, reruns, names = a_class(4)
    look = in_background(watcher)
    reruns.wait_for(turns, f"{turns} turns")
    time.sleep(0.3)
    assert reruns.asked == names[:turns]
    for i, name in enumerate(names):
        reruns.wait_for(min(i + turns, len(names)), f"{name}'s turn")
        watcher.ended(name)
    look.join(WAIT_S)
    assert not look.is_alive() and reruns.asked == names
