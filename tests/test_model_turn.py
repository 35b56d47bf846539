"""Sessions share the model: computations take turns at it (app.model_turn), a thread counted once
however deeply its computations nest; every session's generation steps go to one worker
(app.step_worker), which batches them and keeps one session's failure to that session; a
generation's live view is paced while others write (app.live_redraw). And loading a model settles
the heap (gc.freeze), so the full collections many sessions trigger stay short. The faults the
worker survives are in test_faults.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import gpt2viz
from app import live_redraw, step_worker
from app import model_turn as taking_turns
from app.model_turn import model_turn
from app.models import load
from app.step_worker import StepFailed


def counted_at_model(threads: int) -> bool:
    """Whether `threads` threads come to be counted at the model within 2 s."""
    deadline = time.monotonic() + 2
    while taking_turns.threads_at_model() != threads and time.monotonic() < deadline:
        time.sleep(0.01)
    return taking_turns.threads_at_model() == threads


@contextmanager
def another_thread_holding_the_turn(wait: float = 60) -> Iterator[None]:
    """Another thread (another session) holds the model's turn until the block ends; each wait
    for it is bounded by `wait` seconds."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with model_turn():
            holding.set()
            release.wait(timeout=wait)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(timeout=wait), f"the other thread did not get the model's turn within {wait} s"
    try:
        yield
    finally:
        release.set()
        thread.join(timeout=wait)


def test_one_thread_nesting_counts_once() -> None:
    with model_turn(), model_turn(), model_turn():  # e.g. inside_step → sequence_trace
        assert taking_turns.threads_at_model() == 1
    assert taking_turns.threads_at_model() == 0


def test_a_waiting_thread_waits_its_turn() -> None:
    order: list[str] = []
    waiting = threading.Event()

    def other() -> None:
        waiting.set()
        with model_turn():
            order.append("other")

    with model_turn():
        thread = threading.Thread(target=other)
        thread.start()
        waiting.wait()
        assert counted_at_model(2)
        order.append("first")  # the other thread cannot run its computation before this
    thread.join()
    assert order == ["first", "other"]
    assert taking_turns.threads_at_model() == 0


def test_loading_a_model_settles_the_heap(tmp_path) -> None:
    import gc

    import torch

    def scanned(obj: object) -> bool:  # gc.get_objects leaves out frozen objects
        return any(o is obj for o in gc.get_objects())

    gc.unfreeze()
    torch.manual_seed(0)
    made = gpt2viz.GPT2(gpt2viz.GPT2Config(n_layer=1, n_head=2, n_embd=8))
    folder = gpt2viz.save_model(made, tmp_path / "m")
    try:
        assert scanned(made)
        model = load(str(folder)).model
        assert gc.get_freeze_count() > 0
        assert not scanned(model) and not scanned(made)
    finally:
        gc.unfreeze()


def test_take_steps_takes_the_turn_for_each_step(small_model, tok, monkeypatch) -> None:
    run = gpt2viz.Generation(small_model, tok, "Hello there", max_new_tokens=5, record=False)
    turns: list[tuple[int, str]] = []  # (threads at the model, thread) while each step runs
    together = gpt2viz.advance_together

    def counted(generations):
        turns.append((taking_turns.threads_at_model(), threading.current_thread().name))
        return together(generations)

    monkeypatch.setattr(gpt2viz, "advance_together", counted)
    step_worker.take_steps(run, until=2)
    assert len(run.steps) == 2 and turns == [(1, "gpt2viz-steps")] * 2  # in the worker, in its turn
    step_worker.take_steps(run)
    assert run.finished and len(run.steps) == 5 and len(turns) == 5
    assert taking_turns.threads_at_model() == 0  # each turn given back


def test_sessions_stepping_at_once_share_forward_passes(small_model, tok) -> None:
    """Six threads each write their own generation: the worker runs their steps in batches, and
    each gets exactly the tokens it would get alone."""
    worker = step_worker.StepWorker(gather=0.05)
    prompts = [f"Story number {i} begins with" for i in range(6)]
    alone = [gpt2viz.Generation(small_model, tok, p, max_new_tokens=6, record=False, temperature=0.8, seed=i)
             for i, p in enumerate(prompts)]
    for generation in alone:
        list(generation)
    mine = [gpt2viz.Generation(small_model, tok, p, max_new_tokens=6, record=False, temperature=0.8, seed=i)
            for i, p in enumerate(prompts)]
    start = threading.Barrier(len(mine))

    def write(generation) -> None:
        start.wait(timeout=30)
        with worker.writing():
            while not generation.finished:
                worker.step(generation)

    threads = [threading.Thread(target=write, args=(g,)) for g in mine]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [g.ids for g in mine] == [g.ids for g in alone]
    assert worker.largest_batch > 1 and worker.steps_run == 6 * 6


def test_sessions_writing_in_step_batch_together_though_each_draws_between_steps(small_model, tok) -> None:
    """Each session draws its step before asking for the next, so its next step comes a moment
    after the others': the worker waits for every generation being written (up to `gather`)
    instead of running whichever came first alone."""
    worker = step_worker.step_worker()
    before = worker.batches_run, worker.steps_run
    writers = [gpt2viz.Generation(small_model, tok, f"Class member {i} says", max_new_tokens=8, record=False)
               for i in range(4)]
    start = threading.Barrier(len(writers))

    def write(generation) -> None:
        start.wait(timeout=30)
        step_worker.take_steps(generation, after_step=lambda: time.sleep(0.002))  # its redraw

    threads = [threading.Thread(target=write, args=(g,)) for g in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(g.finished for g in writers) and worker.steps_run - before[1] == 4 * 8
    assert worker.batches_run - before[0] <= 12  # 8 steps of 4; run as they came: 18-22


def test_one_failing_request_reaches_its_own_session_only(small_model, tok) -> None:
    def broken(z):
        raise ValueError("this edit is broken")

    worker = step_worker.StepWorker(gather=0.05)
    good = [gpt2viz.Generation(small_model, tok, f"Fine text {i}", max_new_tokens=3, record=False)
            for i in range(3)]
    bad = gpt2viz.Generation(small_model, tok, "Broken", max_new_tokens=3, record=False,
                             edits={gpt2viz.act_name("z", 0): broken})
    errors: dict[int, BaseException] = {}
    start = threading.Barrier(4)

    def write(index: int, generation) -> None:
        start.wait(timeout=30)
        try:
            with worker.writing():
                while not generation.finished:
                    worker.step(generation)
        except StepFailed as error:
            errors[index] = error

    threads = [threading.Thread(target=write, args=item) for item in enumerate([*good, bad])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert list(errors) == [3] and "ValueError: this edit is broken" in str(errors[3])
    assert "Press the button again" in str(errors[3]) and isinstance(errors[3].__cause__, ValueError)
    assert all(g.finished and len(g.steps) == 3 for g in good) and bad.steps == []
    assert worker.step(gpt2viz.Generation(small_model, tok, "Still here", max_new_tokens=1)).index == 0


def test_a_live_view_redraws_every_step_alone_and_is_paced_while_others_use_the_model() -> None:
    now = [100.0]
    alone = live_redraw.LiveRedraw(busy_every=0.5, clock=lambda: now[0])
    assert [alone.due() for _ in range(3)] == [True, True, True]  # the same instant: no pacing alone

    with another_thread_holding_the_turn():
        assert taking_turns.threads_at_model() == 1
        busy = live_redraw.LiveRedraw(busy_every=0.5, clock=lambda: now[0])
        assert busy.due()  # the first step is drawn at once
        now[0] += 0.3
        assert not busy.due()
        now[0] += 0.2
        assert busy.due()  # 0.5 s after the last redraw
        now[0] += 0.49
        assert not busy.due()
    assert taking_turns.threads_at_model() == 0
    assert busy.due()  # alone again: every step


def test_a_live_view_is_paced_while_another_session_writes_between_batched_steps(small_model, tok) -> None:
    """Batched steps return together, so between two steps no thread may hold the model: another
    generation being written is what paces the redraws."""
    now = [100.0]
    release, inside = threading.Event(), threading.Event()

    def hold() -> None:  # another session's generation, paused between its steps
        inside.set()
        release.wait(timeout=60)

    other = gpt2viz.Generation(small_model, tok, "Another session", max_new_tokens=1)
    thread = threading.Thread(target=step_worker.take_steps, args=(other,),
                              kwargs={"after_step": hold})
    thread.start()
    try:
        assert inside.wait(timeout=60)
        assert taking_turns.threads_at_model() == 0 and step_worker.generations_being_written() == 1
        seen: list[bool] = []

        def redraw() -> None:
            seen.append(live.due())
            now[0] += 0.2
        live = live_redraw.LiveRedraw(busy_every=0.5, clock=lambda: now[0])
        step_worker.take_steps(gpt2viz.Generation(small_model, tok, "Mine", max_new_tokens=6),
                                      after_step=redraw)
        assert seen == [True, False, False, True, False, False]  # every 0.5 s: steps 0.2 s apart
    finally:
        release.set()
        thread.join(timeout=60)
    assert step_worker.generations_being_written() == 0
