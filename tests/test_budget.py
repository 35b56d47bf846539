"""The recording budget: bytes counted as memory really held, eviction by bytes, one computation
per key across threads, and the setting read from the environment."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

import gpt2viz
from gpt2viz.budget import BUDGET_ENV, MB, RecordingStore, budget_from_env, nbytes
from gpt2viz.viz.attention import HALF_PATTERNS, attention_layer_names
from tests.conftest import tiny_model


def test_nbytes_counts_each_storage_once() -> None:
    a = torch.zeros(1000)  # 4,000 bytes
    assert nbytes(a) == 4000
    assert nbytes([a, a[:10], a.view(10, 100)]) == 4000  # views share one storage
    assert nbytes({"x": a, "y": np.zeros(10, np.float64)}) == 4080
    assert nbytes((a, torch.zeros(10, dtype=torch.float16))) == 4020
    assert nbytes("text") == 0 and nbytes(None) == 0


def test_nbytes_of_a_trace_is_what_it_holds_and_does_not_compute_deferred_scores() -> None:
    model = tiny_model()
    ids = list(range(100, 160))
    n, d, h = len(ids), model.config.n_embd, model.config.n_head
    trace = model.run_with_capture(ids, names=attention_layer_names(0), record_as=HALF_PATTERNS,
                                   with_logits=False)
    qkv = n * 3 * d * 4  # q and k are views of the fused q, k, v projection
    assert nbytes(trace) == qkv + h * n * n * 2  # + the float16 pattern
    scores = model.run_with_capture(ids, names=[gpt2viz.act_name("attn_scores", 0)], with_logits=False)
    kept = nbytes(scores)
    assert kept == qkv + n * n  # q, k (their projection) and the bool mask, not [head, pos, pos] floats
    assert scores["attn_scores", 0].shape == (h, n, n)
    assert nbytes(scores) == kept  # reading rebuilt them without keeping them


def test_store_evicts_least_recently_used_by_bytes() -> None:
    store = RecordingStore(10_000)
    calls: list[str] = []

    def make(name: str, size: int):
        def compute() -> torch.Tensor:
            calls.append(name)
            return torch.zeros(size // 4)
        return compute

    store.get("a", make("a", 4000))
    store.get("b", make("b", 4000))
    store.get("a", make("a", 4000))  # a hit: a becomes the most recently used
    assert calls == ["a", "b"] and store.used_bytes == 8000
    store.get("c", make("c", 4000))  # 12,000 > 10,000: b (least recently used) goes
    assert "b" not in store and "a" in store and "c" in store
    assert store.used_bytes == 8000 and store.evictions == 1
    store.get("huge", make("huge", 20_000))  # larger than the whole budget: returned, never kept
    assert "huge" not in store and store.used_bytes == 8000 and len(store) == 2
    store.get("d", make("d", 9000))
    assert list(k for k in "acd" if k in store) == ["d"] and store.used_bytes == 9000


def test_store_computes_a_key_once_for_threads_that_ask_together() -> None:
    store = RecordingStore(MB)
    calls = []
    barrier = threading.Barrier(4)

    def compute() -> torch.Tensor:
        calls.append(1)
        time.sleep(0.2)
        return torch.ones(10)

    results = []

    def ask() -> None:
        barrier.wait()
        results.append(store.get("same", compute))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)


def test_a_failed_computation_is_not_stored_and_can_be_retried() -> None:
    store = RecordingStore(MB)

    def broken() -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.get("k", broken)
    assert "k" not in store
    assert torch.equal(store.get("k", lambda: torch.ones(2)), torch.ones(2))


def test_budget_comes_from_the_environment() -> None:
    assert budget_from_env({}) == 1024 * MB
    assert budget_from_env({BUDGET_ENV: " 256 "}) == 256 * MB
    for bad in ("0", "-5", "1.5", "lots"):
        with pytest.raises(ValueError, match=f"{BUDGET_ENV}=.*whole number of megabytes"):
            budget_from_env({BUDGET_ENV: bad})
    with pytest.raises(ValueError, match="positive"):
        RecordingStore(0)
