"""Faults injected into generation and into the step worker, each test named for what it injects.
Each checks that the generations the fault did not touch are exactly what they would have been
without it, and that the one it touched can go on to exactly what it would have written: a step
is taken whole or not at all. Faults in the served app (a browser leaving, a page's figure
raising) are in test_app_faults.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

import gpt2viz
from app import computations, session, step_worker
from app.settings import DEFAULT_SETTINGS
from app.step_worker import SessionGone, StepFailed, StepTimedOut, StepWorker
from gpt2viz.budget import RecordingStore, nbytes
from tests.test_model_turn import another_thread_holding_the_turn

LN_FINAL = "ln_final.hook_normalized"  # after every block: a failure here comes once the blocks ran
SAMPLED = dict(max_new_tokens=10, temperature=0.9, top_k=40, seed=3)
PROMPTS = [f"Student {i} wrote that the river" for i in range(4)]
WAIT = 60  # seconds any thread of these tests is given to finish


@pytest.fixture(scope="module")
def mini() -> gpt2viz.GPT2:
    """gpt2viz-mini, the model the app opens on offline: real heads, so sampling has real choices."""
    return gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")


class Flaky:
    """An edit that is the identity, but raises `error` on the calls numbered in `failing` (from 1):
    the same forward pass as the identity edit, until it fails."""

    def __init__(self, error: BaseException, failing: set[int]) -> None:
        self.error, self.failing, self.calls = error, failing, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls in self.failing:
            raise self.error
        return x


def written(model: gpt2viz.GPT2, tok, prompt: str) -> gpt2viz.Generation:
    """A generation written to its end, alone, with nothing failing (an identity edit at ln_final)."""
    generation = gpt2viz.Generation(model, tok, prompt, edits={LN_FINAL: Flaky(ValueError(), set())},
                                    **SAMPLED)
    list(generation)
    return generation


def assert_same_steps(got: gpt2viz.Generation, expected: gpt2viz.Generation, exact: bool = False) -> None:
    """Every step the same: token, candidates and stop reason; probabilities bit for bit when
    `exact` (the same passes), else within float rounding (batched passes add in another order)."""
    assert got.ids == expected.ids
    tolerance = 0.0 if exact else 1e-5
    for mine, theirs in zip(got.steps, expected.steps, strict=True):
        assert (mine.token_id, mine.stop_reason) == (theirs.token_id, theirs.stop_reason)
        assert [c.token_id for c in mine.top] == [c.token_id for c in theirs.top]
        assert mine.prob == pytest.approx(theirs.prob, abs=tolerance, rel=0)
        assert [c.prob for c in mine.top] == pytest.approx([c.prob for c in theirs.top], abs=tolerance, rel=0)
        # float16 rows: a rounding difference in float32 may cross one of its steps (1e-3 near 1)
        torch.testing.assert_close(mine.attention_row, theirs.attention_row, atol=0 if exact else 1e-3,
                                   rtol=0)
    assert [p is None for p in got.prompt_probs] == [p is None for p in expected.prompt_probs]
    assert [p for p in got.prompt_probs if p is not None] == \
        pytest.approx([p for p in expected.prompt_probs if p is not None], abs=tolerance, rel=0)


def threads_run(targets: list[Callable[[], None]]) -> None:
    """Run each target on its own thread, all started together; each must end within WAIT s."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads), f"a writer did not finish within {WAIT} s"


# --- an edit raising after the blocks ran ---------------------------------------------------

@pytest.mark.parametrize("error", [ValueError("the edit broke"), MemoryError("no room for the logits")])
def test_an_edit_raising_after_the_blocks_leaves_a_single_generation_as_it_was(mini, tok, error) -> None:
    """The fault the issue measured: seeded top-k sampling, the 4th step's ln_final edit raising
    once (then three times more at the 7th step); the generation goes on to exactly the tokens and
    probabilities of one that never failed (before, they differed by up to 0.13, then the cache
    was full)."""
    expected = written(mini, tok, PROMPTS[0])
    flaky = Flaky(error, failing={4, 8, 9, 10})  # calls 4 (step 4); 8, 9, 10 (step 7, tried four times)
    generation = gpt2viz.Generation(mini, tok, PROMPTS[0], edits={LN_FINAL: flaky}, **SAMPLED)
    while not generation.finished:
        before = (len(generation.steps), generation._cache.length, list(generation.ids))
        try:
            generation.advance()
        except type(error):
            assert (len(generation.steps), generation._cache.length, generation.ids) == before
    assert flaky.calls == len(generation.steps) + 4  # every step taken once, and four failed tries
    assert_same_steps(generation, expected, exact=True)


def test_an_edit_raising_after_the_blocks_in_a_batch_leaves_every_generation_as_it_was(mini, tok) -> None:
    expected = [written(mini, tok, prompt) for prompt in PROMPTS[:3]]
    flaky = Flaky(ValueError("the edit broke"), failing={3})
    generations = [gpt2viz.Generation(mini, tok, prompt, edits={LN_FINAL: edit}, **SAMPLED)
                   for prompt, edit in zip(PROMPTS[:3], [Flaky(ValueError(), set()), flaky,
                                                         Flaky(ValueError(), set())], strict=True)]
    failures = 0
    while not all(g.finished for g in generations):
        counts = [len(g.steps) for g in generations]
        try:
            gpt2viz.advance_together([g for g in generations if not g.finished])
        except ValueError:
            failures += 1
            assert [len(g.steps) for g in generations] == counts  # not one of them moved on
    assert failures == 1
    for generation, alone in zip(generations, expected, strict=True):
        assert_same_steps(generation, alone)


def test_an_edit_raising_after_the_blocks_through_the_worker_reaches_its_session_once(mini, tok) -> None:
    """Four sessions write at once through one worker; one session's edit raises at its 3rd step,
    in the batched pass and again when the worker runs the batch's steps one at a time. That
    session hears one StepFailed, presses again and ends where it would have; the others never
    notice."""
    worker = StepWorker(gather=0.05)
    expected = [written(mini, tok, prompt) for prompt in PROMPTS]
    edits = [Flaky(ValueError(), set()) for _ in PROMPTS]
    edits[2] = Flaky(ValueError("the edit broke"), failing={3, 4})
    generations = [gpt2viz.Generation(mini, tok, prompt, edits={LN_FINAL: edit}, **SAMPLED)
                   for prompt, edit in zip(PROMPTS, edits, strict=True)]
    heard: dict[int, list[str]] = {i: [] for i in range(len(PROMPTS))}
    start = threading.Barrier(len(PROMPTS))

    def session_writes(index: int) -> Callable[[], None]:
        def write() -> None:
            start.wait(timeout=WAIT)
            with worker.writing():
                while not generations[index].finished:
                    try:
                        worker.step(generations[index])
                    except StepFailed as failure:  # the session sees it, and presses the button again
                        heard[index].append(str(failure))
        return write

    threads_run([session_writes(i) for i in range(len(PROMPTS))])
    assert heard[0] == heard[1] == heard[3] == []
    assert len(heard[2]) == 1 and "ValueError: the edit broke" in heard[2][0]
    for generation, alone in zip(generations, expected, strict=True):
        assert_same_steps(generation, alone)


# --- the worker's own faults ----------------------------------------------------------------

class ThreadEnder(BaseException):
    """Not an Exception: what ends a thread (as SystemExit would) rather than one step."""


def test_the_worker_thread_ended_mid_class_is_started_again_and_later_steps_are_served(
        mini, tok, monkeypatch, caplog) -> None:
    worker = StepWorker(gather=0.05, poll=0.05)
    expected = [written(mini, tok, prompt) for prompt in PROMPTS]
    generations = [gpt2viz.Generation(mini, tok, prompt, edits={LN_FINAL: Flaky(ValueError(), set())},
                                      **SAMPLED) for prompt in PROMPTS]
    together = gpt2viz.advance_together
    passes = [0]

    def ends_the_thread_once(batch):
        passes[0] += 1
        if passes[0] == 4:
            raise ThreadEnder("the worker's thread is ended from inside")
        return together(batch)

    monkeypatch.setattr(gpt2viz, "advance_together", ends_the_thread_once)
    heard: list[str] = []
    start = threading.Barrier(len(PROMPTS))

    def session_writes(generation: gpt2viz.Generation) -> Callable[[], None]:
        def write() -> None:
            start.wait(timeout=WAIT)
            with worker.writing():
                while not generation.finished:
                    try:
                        worker.step(generation)
                    except StepFailed as failure:
                        heard.append(str(failure))
        return write

    with caplog.at_level(logging.ERROR, logger="app.step_worker"):
        threads_run([session_writes(g) for g in generations])
    assert worker.restarts == 1
    assert "The step worker's thread ended (ThreadEnder(\"the worker's thread is ended from inside\"))" \
        in caplog.text
    assert heard and all("ThreadEnder" in message for message in heard)  # the sessions of that batch
    for generation, alone in zip(generations, expected, strict=True):
        assert_same_steps(generation, alone)


def test_a_step_that_does_not_come_back_within_the_bound_says_so(mini, tok) -> None:
    """The model is held elsewhere for 3 s: a session bounded to 1 s hears why, instead of a
    spinner; the step then lands whole, the generation one step on, as it would have been."""
    worker = StepWorker(wait=1.0, poll=0.05)
    expected = written(mini, tok, PROMPTS[0])
    generation = gpt2viz.Generation(mini, tok, PROMPTS[0], edits={LN_FINAL: Flaky(ValueError(), set())},
                                    **SAMPLED)
    with another_thread_holding_the_turn(WAIT):
        with pytest.raises(StepTimedOut, match="did not finish this step within 1 s: it is still on it"):
            worker.step(generation)
    deadline = time.monotonic() + WAIT
    while len(generation.steps) < 1 and time.monotonic() < deadline:  # the step the worker was on
        time.sleep(0.01)
    assert len(generation.steps) == 1, f"the held step did not land within {WAIT} s"
    list(generation)
    assert_same_steps(generation, expected)


def test_a_step_whose_session_has_gone_is_dropped_before_it_runs(mini, tok) -> None:
    """While the worker is held on one session's step, another session's browser closes: its
    queued step is never computed."""
    worker = StepWorker(wait=WAIT, poll=0.05)
    first = gpt2viz.Generation(mini, tok, PROMPTS[0], **SAMPLED)
    left = gpt2viz.Generation(mini, tok, PROMPTS[1], **SAMPLED)
    gone = threading.Event()
    stepping = threading.Thread(target=worker.step, args=(first,))  # the worker takes it, and waits
    with another_thread_holding_the_turn(WAIT):
        stepping.start()
        deadline = time.monotonic() + WAIT
        while worker.steps_run < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.steps_run == 1, f"the worker did not take the first step within {WAIT} s"
        gone.set()
        with pytest.raises(SessionGone):
            worker.step(left, gone=gone.is_set)
    stepping.join(timeout=WAIT)
    worker.step(first)  # the worker gathers again: the gone session's step is dropped on the way
    assert worker.dropped == 1 and left.steps == [] and len(first.steps) == 2
    assert worker.steps_run == 2


def test_a_session_gone_between_steps_stops_its_generation_there(mini, tok) -> None:
    steps_seen = []
    generation = gpt2viz.Generation(mini, tok, PROMPTS[0], **SAMPLED)
    with pytest.raises(SessionGone):
        step_worker.take_steps(generation, after_step=lambda: steps_seen.append(len(generation.steps)),
                               gone=lambda: len(steps_seen) >= 3)
    assert len(generation.steps) == 3 and step_worker.generations_being_written() == 0


def test_an_exception_in_a_live_redraw_stops_only_its_session(mini, tok) -> None:
    """One session's redraw raises after its 4th step (its browser asked for another run, or the
    drawing failed): that session stops there with every step whole; the others write on."""
    expected = [written(mini, tok, prompt) for prompt in PROMPTS]
    generations = [gpt2viz.Generation(mini, tok, prompt, edits={LN_FINAL: Flaky(ValueError(), set())},
                                      **SAMPLED) for prompt in PROMPTS]
    raised: list[BaseException] = []
    start = threading.Barrier(len(PROMPTS))

    def session_writes(index: int) -> Callable[[], None]:
        generation = generations[index]

        def redraw() -> None:
            if index == 1 and len(generation.steps) == 4:
                raise RuntimeError("the redraw failed")

        def write() -> None:
            start.wait(timeout=WAIT)
            try:
                step_worker.take_steps(generation, after_step=redraw)
            except RuntimeError as error:
                raised.append(error)
        return write

    threads_run([session_writes(i) for i in range(len(PROMPTS))])
    assert [str(e) for e in raised] == ["the redraw failed"] and len(generations[1].steps) == 4
    assert step_worker.generations_being_written() == 0  # the failed session no longer counts
    step_worker.take_steps(generations[1])  # the session presses Generate again
    for generation, alone in zip(generations, expected, strict=True):
        assert_same_steps(generation, alone)


def test_the_recording_store_at_its_budget_while_a_class_generates(mini, tok, monkeypatch) -> None:
    """Every finished generation hands its keys and values to the store, which is full: it drops
    the oldest and stays within its budget, and every session's tokens are as they would be."""
    one = gpt2viz.Generation(mini, tok, PROMPTS[0], retain_cache=True, **SAMPLED)
    list(one)
    size = nbytes(one.release_key_values())
    store = RecordingStore(int(size * 2.4))  # room for two generations' keys and values
    store.get("an earlier recording", lambda: torch.zeros(size // 2, dtype=torch.uint8))
    monkeypatch.setattr(computations, "recordings", lambda: store)
    settings = [replace(DEFAULT_SETTINGS, **{**SAMPLED, "seed": i}) for i in range(len(PROMPTS))]
    expected = [session.start(mini, prompt, s, start_with_eot=False)
                for prompt, s in zip(PROMPTS, settings, strict=True)]
    for generation in expected:
        list(generation)
    generations = [session.start(mini, prompt, s, start_with_eot=False)
                   for prompt, s in zip(PROMPTS, settings, strict=True)]
    start = threading.Barrier(len(PROMPTS))

    def session_writes(generation: gpt2viz.Generation) -> Callable[[], None]:
        def write() -> None:
            start.wait(timeout=WAIT)
            session.generate("gpt2viz-mini", generation)
        return write

    threads_run([session_writes(g) for g in generations])
    for generation, alone in zip(generations, expected, strict=True):
        assert_same_steps(generation, alone)
        assert generation.key_values() is None  # handed over, kept or dropped by the store
    assert store.used_bytes <= store.budget_bytes and store.evictions >= 2
    assert "an earlier recording" not in store
    kept = [("key_values", "gpt2viz-mini", tuple(g.ids)) in store for g in generations]
    assert sum(kept) == 2
