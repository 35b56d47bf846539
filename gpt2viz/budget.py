"""A process-wide memory budget for recordings: a least-recently-used store that evicts by bytes.

The app keeps recordings so that moving between pages and selections does not re-run the model,
but at 1,024 tokens on the large models one recording can weigh gigabytes. `RecordingStore`
holds at most `budget_bytes` of them across every session and page, measured with `nbytes`, and
drops the least recently used first. `GPT2VIZ_RECORDING_BUDGET_MB` sets the budget (default
1,024 MB).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch

BUDGET_ENV = "GPT2VIZ_RECORDING_BUDGET_MB"
DEFAULT_BUDGET_MB = 1024
MB = 1024 * 1024

T = TypeVar("T")


def byte_size(n: int) -> str:
    """Bytes for people, in units of 2^10 (as the budget's MB): "20 MB", "1.5 GB", "12.0 KB"."""
    unit, scale = next(((u, s) for u, s in (("GB", 2**30), ("MB", MB)) if n >= s), ("KB", 2**10))
    amount = n / scale
    return f"{amount:,.0f} {unit}" if amount >= 10 else f"{amount:.1f} {unit}"


def nbytes(obj: Any) -> int:
    """Bytes of memory held by the tensors and arrays inside `obj` (tensors, arrays, the
    attributes of objects such as a Trace, mappings, sequences, dataclasses); other values count
    0. A tensor counts its whole storage, once however many views share it (a recorded q is a view
    of the fused q, k, v projection, which stays alive as long as q does)."""
    seen: set[int] = set()  # ids of the objects visited
    storages: set[int] = set()  # data pointers of the tensor storages counted

    def walk(x: Any) -> int:
        if id(x) in seen:
            return 0
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            if storage.data_ptr() in storages:
                return 0
            storages.add(storage.data_ptr())
            return storage.nbytes()
        if isinstance(x, np.ndarray):
            return x.nbytes
        if hasattr(x, "__dict__") and not isinstance(x, type):  # a Trace: its attributes, not its
            return sum(walk(v) for v in vars(x).values())  # values (reading them computes deferred ones)
        if isinstance(x, Mapping):
            return sum(walk(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):  # frozen, slotted ones too
            return sum(walk(getattr(x, f.name)) for f in dataclasses.fields(x))
        return 0

    return walk(obj)


def budget_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """The budget in bytes from GPT2VIZ_RECORDING_BUDGET_MB (a whole number of megabytes, 1 MB =
    2^20 bytes), or the default."""
    raw = environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_MB * MB
    try:
        mb = int(raw)
    except ValueError:
        mb = -1
    if mb <= 0:
        raise ValueError(f"{BUDGET_ENV}={raw!r}: give a whole number of megabytes above 0, e.g. "
                         f"{BUDGET_ENV}=2048.")
    return mb * MB


class RecordingStore:
    """Thread-safe store of computed values (recordings) that never holds more than
    `budget_bytes`. `get` computes a missing value once even when several threads ask for it at
    the same time; a value larger than the whole budget is returned without being kept."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive.")
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self.evictions = 0

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def lookup(self, key: Hashable) -> tuple[bool, Any]:
        """(True, value) when `key` is stored (it becomes the most recently used), else (False, None)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key][0]
            return False, None

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value stored under `key`, computing and storing it first when missing."""
        found, value = self.lookup(key)
        if found:
            return value
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:  # one computation per key; the others wait for it and then find it stored
            found, value = self.lookup(key)
            if found:
                return value
            try:
                value = compute()
                self._put(key, value)
            finally:  # after storing: a thread arriving now finds the value, not an open gate
                with self._lock:
                    self._computing.pop(key, None)
            return value

    def _put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        if size > self.budget_bytes:
            return
        with self._lock:
            self._items[key] = (value, size)
            used = sum(s for _, s in self._items.values())
            while used > self.budget_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                used -= dropped
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
