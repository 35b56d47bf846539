"""Sessions take turns at the model (app.resources.model_turn): one computation at a time, a
thread counted once however deeply its computations nest, and the short GIL switch interval only
while several threads are at the model."""

from __future__ import annotations

import sys
import threading

from app import resources
from app.resources import BUSY_SWITCH_INTERVAL, IDLE_SWITCH_INTERVAL, model_turn


def test_one_thread_nesting_keeps_the_default_interval() -> None:
    assert sys.getswitchinterval() == IDLE_SWITCH_INTERVAL
    with model_turn(), model_turn(), model_turn():  # e.g. inside_step → sequence_trace
        assert resources._QUEUE["threads"] == 1
        assert sys.getswitchinterval() == IDLE_SWITCH_INTERVAL
    assert resources._QUEUE["threads"] == 0


def test_a_waiting_thread_shortens_the_interval_and_waits_its_turn() -> None:
    order: list[str] = []
    holding, waiting = threading.Event(), threading.Event()

    def other() -> None:
        waiting.set()
        with model_turn():
            order.append("other")

    with model_turn():
        thread = threading.Thread(target=other)
        thread.start()
        waiting.wait()
        for _ in range(200):  # until the other thread is counted at the turn
            if resources._QUEUE["threads"] == 2:
                break
            holding.wait(0.01)
        assert resources._QUEUE["threads"] == 2
        assert sys.getswitchinterval() == BUSY_SWITCH_INTERVAL
        order.append("first")  # the other thread cannot run its computation before this
    thread.join()
    assert order == ["first", "other"]
    assert resources._QUEUE["threads"] == 0 and sys.getswitchinterval() == IDLE_SWITCH_INTERVAL
