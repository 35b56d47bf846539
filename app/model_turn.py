"""The model's turn: one lock that every computation other than a generation step takes to run
the model (the pages' recordings, overviews, patching). Many sessions' forward passes at once on
a few cores starve the server; one at a time, each finishes sooner. The figures behind it are in
bench/README.md ("Serving a class")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_TURN = threading.RLock()
_DEPTH = threading.local()  # how deep this thread is in model_turn (a computation may call another)


class _ThreadCount:
    """How many threads hold or wait for the turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def change(self, by: int) -> None:
        with self._lock:
            self._count += by

    @property
    def value(self) -> int:
        with self._lock:
            return self._count


_AT_MODEL = _ThreadCount()


@contextmanager
def model_turn() -> Iterator[None]:
    """The process's one turn at running the model. Re-entrant: a computation may call another,
    and a thread counts once however deeply its computations nest."""
    depth = in_turn()
    if depth == 0:
        _AT_MODEL.change(+1)
    _DEPTH.n = depth + 1
    try:
        with _TURN:
            yield
    finally:
        _DEPTH.n = depth
        if depth == 0:
            _AT_MODEL.change(-1)


def in_turn() -> int:
    """How deep this thread is in `model_turn` (0: not in it)."""
    return getattr(_DEPTH, "n", 0)


def threads_at_model() -> int:
    """How many threads hold or wait for the model's turn (this one too, while it is in one)."""
    return _AT_MODEL.value
