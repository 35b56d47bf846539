"""The step worker: one thread takes every session's next generation step, running whatever steps
are waiting as one batched forward pass (`gpt2viz.advance_together`), so a class of twenty costs
about what one session does. The figures behind it are in bench/README.md ("Serving a class").

It is built so that no fault can hang a class. A step that fails reaches only the sessions that
asked for it, as a `StepFailed` that says what happened, and leaves their generations as they
were (a step is taken whole or not at all), so pressing the button again goes on. The worker's
thread is supervised: should it end, the next session to ask for a step (or one still waiting)
starts another, and the reason is logged. A session waits for its step a bounded time, and a
step whose session has gone (its browser closed) is dropped before it runs.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

import gpt2viz

from .model_turn import in_turn, model_turn

log = logging.getLogger(__name__)

STEP_WAIT_S = float(os.environ.get("GPT2VIZ_STEP_WAIT_S", "120"))  # a session's longest wait for a step


class StepFailed(RuntimeError):
    """A step the model could not take. The generation is as it was before the step; the message
    is for the person who asked for it."""


class StepTimedOut(StepFailed):
    """A step that did not come back within the session's bound on its wait."""


class SessionGone(Exception):
    """The session that asked for steps has gone (its browser closed): writing stops."""


Request = tuple[gpt2viz.Generation, Future]


def _failure(error: BaseException) -> BaseException:
    """What the session that asked for a step sees when it failed: a prompt's own problem as it
    is, anything else as a StepFailed that says what happened and what to do."""
    if isinstance(error, gpt2viz.PromptError):
        return error
    failed = StepFailed(f"The model could not take this step ({type(error).__name__}: {error}). "
                        "Nothing was lost: the generation is as it was before it. Press the button "
                        "again to go on.")
    failed.__cause__ = error
    return failed


class StepWorker:
    """One thread that runs every session's next generation step. While other generations are
    being written (`writing`, as `take_steps` does), a step waits at most `gather` seconds for
    their next steps to join it, and no longer once all of them have; then whatever is waiting,
    `max_batch` at most, runs as one `gpt2viz.advance_together` pass in the model's turn, so the
    weights are read once for all of them. When a pass fails, its generations (each as it was)
    are run again one at a time, so one request's failure reaches its own session only. A session
    waits at most `wait` seconds for its step, checking every `poll` seconds that the thread is
    alive and that the session has not gone."""

    def __init__(self, gather: float = 0.01, max_batch: int = 32, wait: float = STEP_WAIT_S,
                 poll: float = 0.25) -> None:
        self.gather, self.max_batch, self.wait, self.poll = gather, max_batch, wait, poll
        self._requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._writers = 0  # generations being written now (`writing`)
        self._writers_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._serving: list[Request] = []  # the batch the thread is running
        self._ended_by: BaseException | None = None  # what ended the last thread, if one ended
        # counted, not listed: a server runs for weeks
        self.steps_run, self.batches_run, self.largest_batch = 0, 0, 0
        self.restarts = 0  # threads started again after one ended
        self.dropped = 0  # steps whose session stopped waiting before they ran
        self._supervise()

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

    def step(self, generation: gpt2viz.Generation, gone: Callable[[], bool] | None = None) -> gpt2viz.Step:
        """`generation.advance()`, batched with the other sessions' steps: its step (with its
        trace), or StepFailed, StepTimedOut, or SessionGone once `gone()` says its session went
        (the step is then dropped if it has not started)."""
        future: Future = Future()
        self._supervise()
        self._requests.put((generation, future))
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return future.result(timeout=max(0.0, min(self.poll, deadline - time.monotonic())))
            except FutureTimeout:
                pass
            if gone is not None and gone():
                future.cancel()  # dropped unless it is running already
                raise SessionGone("The session that asked for this step has gone.")
            if time.monotonic() >= deadline:
                started = not future.cancel()
                raise StepTimedOut(
                    f"The model did not finish this step within {self.wait:.0f} s: "
                    + ("it is still on it (an unusually long pass, or the server is stuck)."
                       if started else "the server was too busy to start it.")
                    + " The generation is as it was before it: press the button again to go on.")
            self._supervise()

    def _supervise(self) -> None:
        """Start the thread if none runs (the first time, or after one ended: the reason is logged)."""
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:
                self.restarts += 1
                log.error("The step worker's thread ended (%r); starting another.", self._ended_by)
            self._thread = threading.Thread(target=self._serve, name="gpt2viz-steps", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        try:
            while True:
                self._serving = self._gather()
                try:
                    self._run(self._serving)
                except Exception as error:  # noqa: BLE001 (outside any one step: every session of the batch hears it)
                    log.exception("A batch of %d steps failed outside its steps.", len(self._serving))
                    self._fail(self._serving, error)
                self._serving = []
        except BaseException as error:  # noqa: BLE001 (the thread ends here; `_supervise` starts another)
            self._ended_by = error
            self._fail(self._serving, error)

    def _gather(self) -> list[Request]:
        """The next batch: the first request waiting, and those that join it within `gather`
        seconds while other generations are being written. A request whose session stopped
        waiting (a cancelled future) is dropped here, before anything runs."""
        batch: list[Request] = []
        deadline = None
        while len(batch) < self.max_batch:
            try:
                if deadline is None:
                    request = self._requests.get()
                    deadline = time.monotonic() + self.gather
                else:
                    # Each session takes its step and draws it before asking for the next, so the
                    # others' steps arrive a few ms apart: waiting for them is what makes the batch.
                    more = self.writers > len(batch)
                    wait = max(0.0, deadline - time.monotonic()) if more else 0.0
                    request = self._requests.get(timeout=wait) if wait else self._requests.get_nowait()
            except queue.Empty:
                break
            if request[1].set_running_or_notify_cancel():
                batch.append(request)
            else:
                self.dropped += 1
                deadline = deadline if batch else None  # nothing gathered yet: wait for the next
        return batch

    def _run(self, batch: list[Request]) -> None:
        self.steps_run += len(batch)
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        by_model: dict[int, list[Request]] = {}
        for request in batch:
            by_model.setdefault(id(request[0].model), []).append(request)
        for group in by_model.values():
            try:
                with model_turn():
                    steps = gpt2viz.advance_together([generation for generation, _ in group])
            except Exception:  # noqa: BLE001 (every generation is as it was: each alone finds whose it is)
                self._one_by_one(group)
                continue
            for (_, future), step in zip(group, steps, strict=True):
                future.set_result(step)

    @staticmethod
    def _one_by_one(group: list[Request]) -> None:
        for generation, future in group:
            try:
                with model_turn():
                    step = generation.advance()
            except Exception as error:  # noqa: BLE001 (its own session hears it)
                log.warning("A step failed: %s: %s", type(error).__name__, error)
                future.set_exception(_failure(error))
            else:
                future.set_result(step)

    @staticmethod
    def _fail(batch: list[Request], error: BaseException) -> None:
        """Every request of `batch` not yet answered hears `error`."""
        for _, future in batch:
            if not future.done():
                future.set_exception(_failure(error))


_WORKER: StepWorker | None = None
_WORKER_LOCK = threading.Lock()


def step_worker() -> StepWorker:
    """The process's step worker, started on first use."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = StepWorker()
        return _WORKER


def generations_being_written() -> int:
    """How many generations are being written now, a step at a time (`take_steps`)."""
    return step_worker().writers


def take_steps(generation: gpt2viz.Generation, until: int | None = None,
               after_step: Callable[[], None] | None = None, gone: Callable[[], bool] | None = None) -> None:
    """Advance `generation` to its end, or until it has `until` steps, one step at a time through
    the step worker (other sessions' steps share its forward passes); `after_step` runs after
    each step. Stops, logging it, once `gone()` says the session that writes it has gone: no
    steps are computed for a browser that closed. A thread already in the model's turn steps by
    itself: the worker would wait for it."""
    worker = step_worker()
    with worker.writing():
        while not generation.finished and (until is None or len(generation.steps) < until):
            if gone is not None and gone():
                raise SessionGone("The session that asked for these steps has gone.")
            if in_turn():
                generation.advance()
            else:
                worker.step(generation, gone)
            if after_step is not None:
                after_step()
