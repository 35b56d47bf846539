"""How often a generation's live view is redrawn while it is written (the Generate page)."""

from __future__ import annotations

import time
from collections.abc import Callable

from .model_turn import threads_at_model
from .step_worker import generations_being_written

BUSY_REDRAW_EVERY = 0.5  # seconds between a generation's live redraws while other sessions use the model


class LiveRedraw:
    """When a generation's live view is redrawn, asked between its steps: after every step while
    the session has the model to itself; at most every `busy_every` seconds while other sessions
    write too or wait for the model (each redraw costs the browser a render, and a class's
    browsers may share the server's cores). Other sessions' steps run in the same batched passes
    and return together, so between steps nobody may be at the model: it is the generations being
    written that tell a class from a session alone."""

    def __init__(self, busy_every: float = BUSY_REDRAW_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._busy_every = busy_every
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        busy = generations_being_written() > 1 or threads_at_model() > 0
        if self._last is not None and busy and now - self._last < self._busy_every:
            return False
        self._last = now
        return True
