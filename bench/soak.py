"""A long class on one server: waves of thin clients open the app, generate and leave, and the
server's memory, threads and open descriptors are read after every wave.

    .venv/bin/python bench/soak.py [--waves 16] [--sessions 20] [--tokens 20] [--ttl 120]

Each wave's sessions (thin clients, bench/thin_client.py) open the app, set a prompt of their
own and press Generate; in every other wave half of them close their connection in the middle of
the generation (once their live strip shows a token), and the rest wait for their chart and
then close. After each wave, and again once the disconnected sessions' time to live (`--ttl`,
Streamlit's server.disconnectedSessionTTL, default 120 s) has passed, the bench reads the
server's RSS (the lowest of five readings over 3 s), threads and open file descriptors from
/proc. Model: $GPT2VIZ_MODEL, else the
bundled gpt2viz-mini; GPT2VIZ_RECORDING_BUDGET_MB=128 unless set.

Every wait is bounded (`--wait`, per session): a session that stalls is reported with what it
was waiting for and what the server last sent it, and the bench exits non-zero.

Targets (README, "Serving a class"): RSS after the last wave at most 100 MB above its level
after wave 2; the same number of threads after every wave; descriptors back within 30 of the
first wave's once the disconnected sessions have expired; the last wave taking at most 1.5 times
as long as wave 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.class_load import WORDS, served, thin_finished  # noqa: E402
from bench.thin_client import ThinClient, text  # noqa: E402

PROGRESS = re.compile(r"<progress value='([1-9]\d*)' max='(\d+)'")  # a live strip with a token in it
RSS_TARGET_MB = 100  # above wave 2's
SETTLE_S = 3.0  # after a wave, how long the readings of the server are spread over
FD_TARGET = 30  # above the first wave's, after the time to live
SLOWDOWN_TARGET = 1.5  # the last wave's time over wave 2's: a long class does not slow the server down


@dataclass(frozen=True)
class Reading:
    """The server process as /proc shows it."""

    when: str
    rss_mb: float
    threads: int
    fds: int


def read_process(pid: int, when: str) -> Reading:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return Reading(when, int(status["VmRSS"].split()[0]) / 1024, int(status["Threads"]),
                   len(os.listdir(f"/proc/{pid}/fd")))


def settled(pid: int, when: str, seconds: float = SETTLE_S, samples: int = 5) -> Reading:
    """The server once a wave's last messages are out: `samples` readings over `seconds`, the
    lowest RSS of them (a single reading right after a wave swings by ±40 MB with what is still
    being sent), the last one's threads and descriptors."""
    readings = []
    for _ in range(samples):
        time.sleep(seconds / samples)
        readings.append(read_process(pid, when))
    return Reading(when, min(r.rss_mb for r in readings), readings[-1].threads, readings[-1].fds)


class Stalled(Exception):
    """A session that did not get what it waited for within the bound."""


async def bounded(client: ThinClient, step: str, waited, seconds: float):
    """`waited` (a coroutine of the client), or Stalled naming `step` and what the server last sent."""
    try:
        return await asyncio.wait_for(waited, seconds)
    except (TimeoutError, ConnectionError) as error:
        shown = [text(e)[:80] for e in client.page.elements if text(e)][:3]
        kind, at = client.last_received
        raise Stalled(f"waiting for {step}: {type(error).__name__} after {seconds:.0f} s. The server last "
                      f"sent a {kind or 'nothing'} message {time.monotonic() - at:.1f} s before; its last "
                      f"finished run showed {shown!r}; its last markdown ends {client.last_markdown[-120:]!r}"
                      ) from None


async def one_session(url: str, word: str, tokens: int, leaves: bool, wait: float) -> str:
    """A student: opens the app, generates on a prompt with `word`, and leaves (mid-generation
    when `leaves`). Returns "left", or the sidebar's line on the recordings' memory once it
    finished."""
    client = ThinClient(url)
    await bounded(client, "connecting", client.open(), wait)
    await bounded(client, "the opening example", client.wait_for(lambda p: p.has_text("Stopped after")), wait)
    prompt = f"The {word} in the old town were"
    client.set_value("Prompt", prompt)
    await client.rerun()
    client.set_value("Max new tokens", tokens)
    await client.rerun()
    shown = ("Prompt", "Max new tokens")
    await bounded(client, "the prompt and token count taking",
                  client.wait_for(lambda page: tuple(map(page.value, shown)) == (prompt, tokens)), wait)
    await client.click("Generate")
    if leaves:
        def live(body: str) -> bool:
            found = PROGRESS.search(body)
            return found is not None and int(found.group(2)) == tokens
        await bounded(client, "the live strip's first token", client.wait_for_markdown(live), wait)
        await client.close()
        return "left"
    page = await bounded(client, "the finished generation", client.wait_for(lambda p: thin_finished(p, word)),
                         wait)
    await client.close()
    return (page.text_with("Recordings in memory") or "").replace("**", "")


async def wave(url: str, index: int, sessions: int, tokens: int, wait: float) -> list[str]:
    """One wave of sessions at once; in odd-numbered waves (1, 3, ...) half of them leave early."""
    leaving = index % 2 == 1
    words = [f"{WORDS[(index * sessions + i) % len(WORDS)]}{index}x{i}" for i in range(sessions)]
    return await asyncio.gather(*(one_session(url, word, tokens, leaving and i % 2 == 0, wait)
                                  for i, word in enumerate(words)), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waves", type=int, default=16)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--ttl", type=int, default=120, help="Streamlit's server.disconnectedSessionTTL")
    parser.add_argument("--wait", type=float, default=180, help="seconds a session waits for any one thing")
    args = parser.parse_args()
    model = os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")
    budget = os.environ.get("GPT2VIZ_RECORDING_BUDGET_MB", "128")
    print(f"model {model}; {args.waves} waves × {args.sessions} thin-client sessions × {args.tokens} tokens, "
          f"half of every other wave leaving mid-generation; recording budget {budget} MB, "
          f"session TTL {args.ttl} s; {os.cpu_count()} CPUs")
    readings: list[Reading] = []
    stalled: list[str] = []
    durations: list[float] = []
    with served(model, env={"GPT2VIZ_RECORDING_BUDGET_MB": budget},
                options=("--server.disconnectedSessionTTL", str(args.ttl))) as (url, proc):
        readings.append(read_process(proc.pid, "started"))
        for index in range(args.waves):
            began = time.monotonic()
            outcomes = asyncio.run(wave(url, index, args.sessions, args.tokens, args.wait))
            durations.append(time.monotonic() - began)
            for i, outcome in enumerate(outcomes):
                if isinstance(outcome, BaseException):
                    stalled.append(f"wave {index + 1}, session {i}: {outcome}")
            left = sum(outcome == "left" for outcome in outcomes)
            store = next((o for o in reversed(outcomes) if isinstance(o, str) and o != "left"), "")
            reading = settled(proc.pid, f"after wave {index + 1}")
            readings.append(reading)
            print(f"  wave {index + 1:2d}: {durations[-1]:5.1f} s, {left:2d} left early; "
                  f"RSS {reading.rss_mb:6.0f} MB, threads {reading.threads}, fds {reading.fds}; "
                  f"{store.removeprefix('Recordings in memory: ')}", flush=True)
        print(f"  waiting {args.ttl + 5} s for the disconnected sessions' time to live…", flush=True)
        time.sleep(args.ttl + 5)
        # Streamlit's storage of disconnected sessions expires them lazily, when it is next used
        store = asyncio.run(one_session(url, "latecomer", 1, False, args.wait))
        readings.append(settled(proc.pid, "after the time to live"))
        last = readings[-1]
        print(f"  after the TTL: RSS {last.rss_mb:.0f} MB, threads {last.threads}, fds {last.fds}; "
              f"{store.removeprefix('Recordings in memory: ')}")
    waves = [r for r in readings if r.when.startswith("after wave")]
    rss_growth = waves[-1].rss_mb - waves[min(1, len(waves) - 1)].rss_mb
    thread_counts = sorted({r.threads for r in waves})
    fd_excess = readings[-1].fds - waves[0].fds
    print(f"sessions: {args.waves * args.sessions}, stalled: {len(stalled)}")
    for line in stalled:
        print(f"  STALLED {line}")
    print(f"RSS after the last wave − after wave 2: {rss_growth:+.0f} MB (target ≤ {RSS_TARGET_MB}: "
          f"{'met' if rss_growth <= RSS_TARGET_MB else 'NOT met'})")
    print(f"threads after each wave: {thread_counts} (target: one value: "
          f"{'met' if len(thread_counts) == 1 else 'NOT met'})")
    print(f"fds after the TTL − after wave 1: {fd_excess:+d} (target ≤ {FD_TARGET}: "
          f"{'met' if fd_excess <= FD_TARGET else 'NOT met'})")
    slowdown = durations[-1] / durations[min(1, len(durations) - 1)]
    print(f"the last wave's time / wave 2's: {slowdown:.2f} (target ≤ {SLOWDOWN_TARGET}: "
          f"{'met' if slowdown <= SLOWDOWN_TARGET else 'NOT met'})")
    if stalled:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
