"""Polls a Streamlit server's health endpoint until its standard input closes (bench/class_load.py's
HealthProbe runs it). It runs as a program of its own, not a multiprocessing child: a child started
with "spawn" imports the parent's __main__ again, and in a process that ran the app under AppTest
that module is streamlit_app.py.

    python bench/health_probe.py URL EVERY_S NICE

Prints `prioritised` or `not-prioritised` (whether it could raise its priority by NICE), then one
line per probe: the seconds the endpoint took to answer 200, or `failed`; then `done`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request


def health_latency(url: str, timeout: float = 30.0) -> float | None:
    """Seconds the health endpoint took to answer 200, or None when it did not."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=timeout) as r:
            return time.perf_counter() - start if r.status == 200 else None
    except OSError:
        return None


def main() -> None:
    url, every, nice = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    try:
        os.nice(nice)
        print("prioritised", flush=True)
    except PermissionError:  # not root: the probe's own waits for a CPU count too
        print("not-prioritised", flush=True)
    halt = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), halt.set()), daemon=True).start()
    while not halt.is_set():
        latency = health_latency(url)
        print("failed" if latency is None else f"{latency:.6f}", flush=True)
        halt.wait(every)
    print("done", flush=True)


if __name__ == "__main__":
    main()
