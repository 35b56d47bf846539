"""Sessions take turns at the shared model, one forward pass at a time, and while they do, page
threads run below the server's event loop so that it keeps answering every browser. The figures
behind each choice are in bench/README.md ("Serving a class")."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gpt2viz

_TURN = threading.RLock()
_QUEUE = {"threads": 0}  # threads holding or waiting for the turn
_QUEUE_LOCK = threading.Lock()
_DEPTH = threading.local()  # how deep this thread is in model_turn (a computation may call another)
BUSY_SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005
BUSY_REDRAW_EVERY = 0.5  # seconds between a generation's live redraws while other sessions use the model
IDLE_SWITCH_INTERVAL = sys.getswitchinterval()
PAGE_THREAD_NICE = 10  # the scheduling priority (Linux nice) of a thread at a busy model


def below_the_event_loop() -> None:
    """Run this thread at a lower priority than the server's event loop, which carries every
    session's messages and answers the health endpoint. Only while others use the model too: a
    session alone keeps its priority, or its own browser on the same machine draws ahead of it.
    Lowering a thread's priority needs no privilege but raising it again does, so it holds until
    the thread ends (Streamlit runs each page run in a thread of its own). Linux only."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    if os.getpriority(os.PRIO_PROCESS, thread) < PAGE_THREAD_NICE:
        os.setpriority(os.PRIO_PROCESS, thread, PAGE_THREAD_NICE)


def _queue(change: int) -> int:
    """Count the threads at the model and return the count; while several are, Python hands the
    GIL on every 1 ms instead of 5 ms, so that the event loop gets it between their steps."""
    with _QUEUE_LOCK:  # counted and set together: two threads cannot leave it in the other's order
        _QUEUE["threads"] += change
        sys.setswitchinterval(BUSY_SWITCH_INTERVAL if _QUEUE["threads"] > 1 else IDLE_SWITCH_INTERVAL)
        return _QUEUE["threads"]


@contextmanager
def model_turn() -> Iterator[None]:
    """The process's one turn at running the model: many sessions' forward passes at once on a
    few cores starve the server. Re-entrant: a computation may call another."""
    depth = getattr(_DEPTH, "n", 0)
    if depth == 0 and _queue(+1) > 1:  # a thread counts once, however deeply its computations nest
        below_the_event_loop()  # others are at the model too: the server is busy
    _DEPTH.n = depth + 1
    try:
        with _TURN:
            yield
    finally:
        _DEPTH.n = depth
        if depth == 0:
            _queue(-1)


def threads_at_model() -> int:
    """How many threads hold or wait for the model's turn (this one too, while it is in one)."""
    with _QUEUE_LOCK:
        return _QUEUE["threads"]


class LiveRedraw:
    """When a generation's live view is redrawn, asked between its steps: after every step while
    the session has the model to itself; at most every `busy_every` seconds while other sessions
    wait for it (each redraw costs the browser a render, and a class's browsers may share the
    server's cores)."""

    def __init__(self, busy_every: float = BUSY_REDRAW_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._busy_every = busy_every
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and threads_at_model() > 0 and now - self._last < self._busy_every:
            return False
        self._last = now
        return True


def advance_in_turns(generation: gpt2viz.Generation, until: int | None = None,
                     after_step: Callable[[], None] | None = None) -> None:
    """Advance `generation` to its end, or until it has `until` steps, taking the model's turn for
    one step at a time (other sessions' steps interleave with these); `after_step` runs after
    each step, outside the turn."""
    while not generation.finished and (until is None or len(generation.steps) < until):
        with model_turn():
            generation.advance()
        if after_step is not None:
            after_step()
