"""How sessions share the model: every session's generation steps go to one worker, which runs
whatever is waiting as one batched forward pass (`StepWorker`), and other computations take turns
at the model one at a time (`model_turn`). The figures behind each choice are in bench/README.md
("Serving a class")."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import gpt2viz

_TURN = threading.RLock()
_THREADS = {"at_model": 0}  # threads holding or waiting for the turn
_THREADS_LOCK = threading.Lock()
_DEPTH = threading.local()  # how deep this thread is in model_turn (a computation may call another)
BUSY_REDRAW_EVERY = 0.5  # seconds between a generation's live redraws while other sessions use the model


def _count_at_model(change: int) -> None:
    with _THREADS_LOCK:
        _THREADS["at_model"] += change


@contextmanager
def model_turn() -> Iterator[None]:
    """The process's one turn at running the model: many sessions' forward passes at once on a
    few cores starve the server. Re-entrant: a computation may call another."""
    depth = getattr(_DEPTH, "n", 0)
    if depth == 0:  # a thread counts once, however deeply its computations nest
        _count_at_model(+1)
    _DEPTH.n = depth + 1
    try:
        with _TURN:
            yield
    finally:
        _DEPTH.n = depth
        if depth == 0:
            _count_at_model(-1)


def threads_at_model() -> int:
    """How many threads hold or wait for the model's turn (this one too, while it is in one)."""
    with _THREADS_LOCK:
        return _THREADS["at_model"]


def generations_being_written() -> int:
    """How many generations are being written now, a step at a time (`advance_in_turns`)."""
    return step_worker().writers


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


class StepWorker:
    """One thread that runs every session's next generation step. While other generations are
    being written (`writing`, as `advance_in_turns` does), a step waits at most `gather` seconds
    for their next steps to join it, and no longer once all of them have; then whatever is
    waiting, `max_batch` at most, runs as one `gpt2viz.advance_together` pass in the model's turn,
    so the weights are read once for all of them. One request's failure reaches its own session
    only: the batch is then run again one generation at a time."""

    def __init__(self, gather: float = 0.01, max_batch: int = 32) -> None:
        self.gather, self.max_batch = gather, max_batch
        self._requests: queue.SimpleQueue[tuple[gpt2viz.Generation, Future]] = queue.SimpleQueue()
        self._writers = 0  # generations being written now (`writing`)
        self._writers_lock = threading.Lock()
        # counted, not listed: a server runs for weeks
        self.steps_run, self.batches_run, self.largest_batch = 0, 0, 0
        threading.Thread(target=self._serve, name="gpt2viz-steps", daemon=True).start()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A generation is being written, a step at a time, for the length of the block: its next
        step is worth waiting for."""
        with self._writers_lock:
            self._writers += 1
        try:
            yield
        finally:
            with self._writers_lock:
                self._writers -= 1

    @property
    def writers(self) -> int:
        with self._writers_lock:
            return self._writers

    def step(self, generation: gpt2viz.Generation) -> gpt2viz.Step:
        """`generation.advance()`, batched with the other sessions' steps."""
        future: Future = Future()
        self._requests.put((generation, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            batch = [self._requests.get()]
            deadline = time.monotonic() + self.gather
            # Each session takes its step and draws it before asking for the next, so the others'
            # steps arrive a few ms apart: waiting for them is what makes the batch.
            while len(batch) < self.max_batch:
                more = self.writers > len(batch)
                try:
                    wait = max(0.0, deadline - time.monotonic()) if more else 0.0
                    batch.append(self._requests.get(timeout=wait) if wait else self._requests.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[tuple[gpt2viz.Generation, Future]]) -> None:
        self.steps_run += len(batch)
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        by_model: dict[int, list[tuple[gpt2viz.Generation, Future]]] = {}
        for request in batch:
            by_model.setdefault(id(request[0].model), []).append(request)
        for group in by_model.values():
            counts = [len(generation.steps) for generation, _ in group]
            try:
                with model_turn():
                    steps = gpt2viz.advance_together([generation for generation, _ in group])
            except BaseException:  # noqa: BLE001 (each request's own error goes to its own session)
                self._one_by_one(group, counts)
                continue
            for (_, future), step in zip(group, steps, strict=True):
                future.set_result(step)

    @staticmethod
    def _one_by_one(group: list[tuple[gpt2viz.Generation, Future]], counts: list[int]) -> None:
        for (generation, future), count in zip(group, counts, strict=True):
            if len(generation.steps) > count:  # it took its step before another failed
                future.set_result(generation.steps[-1])
                continue
            try:
                with model_turn():
                    future.set_result(generation.advance())
            except BaseException as error:  # noqa: BLE001
                future.set_exception(error)


_WORKER: StepWorker | None = None
_WORKER_LOCK = threading.Lock()


def step_worker() -> StepWorker:
    """The process's step worker, started on first use."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = StepWorker()
        return _WORKER


def advance_in_turns(generation: gpt2viz.Generation, until: int | None = None,
                     after_step: Callable[[], None] | None = None) -> None:
    """Advance `generation` to its end, or until it has `until` steps, one step at a time through
    the step worker (other sessions' steps share its forward passes); `after_step` runs after
    each step. A thread already in the model's turn steps by itself: the worker would wait for it."""
    worker = step_worker()
    with worker.writing():
        while not generation.finished and (until is None or len(generation.steps) < until):
            if getattr(_DEPTH, "n", 0):
                generation.advance()
            else:
                worker.step(generation)
            if after_step is not None:
                after_step()
