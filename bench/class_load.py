"""A class on one server: N sessions generate at once on one `streamlit run` process.

Prints, for N sessions (default 20) each generating `--tokens` tokens of its own prompt: the
time from pressing Generate to that session's finished chart (p50 and max), the latency of the
server's health endpoint polled every 0.2 s throughout, by a process at a raised priority where
that is allowed (p50, max; target: every answer within 1 s), and the server process's peak
memory (VmHWM); with thin clients, also the CPU they used. Model: $GPT2VIZ_MODEL, else the
bundled gpt2viz-mini.

    .venv/bin/python bench/class_load.py [--sessions 20] [--tokens 20] [--cores shared|split|both]
                                         [--clients browser|thin]

Two kinds of client play the students: Debian's chromium (`browser`, the default: one browser,
one context per session), or thin clients (`thin`, bench/thin_client.py) that speak Streamlit's
websocket protocol as the browser does but draw nothing. On this 2-core machine twenty Chromium
renderers saturate the core they are given, and the bench then times them; in a classroom each
student's browser has a machine of its own, and the server sees only its messages, which the
thin clients send at almost no cost of their own.

Two setups (both by default): the clients share the server's cores, as when one machine plays
the whole class; and the server on a core of its own, as in a classroom, where the browsers run
on the students' machines (`taskset`).

tests/test_class_load.py runs the same code with a few sessions of each kind and checks that each
one sees only its own tokens, as many as it asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.health_probe import health_latency  # noqa: E402
from bench.local_servers import stop  # noqa: E402
from bench.thin_client import Page, ThinClient  # noqa: E402
from gpt2viz.cli import MALLOC_ARENAS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HEALTH_TARGET_S = 1.0
CLIENTS = {"browser": "the browsers", "thin": "the thin clients"}  # --clients, and their name in the output
WORDS = ("cats", "ships", "rivers", "lamps", "horses", "clouds", "pianos", "trains", "apples", "stones",
         "birds", "boats", "roses", "towers", "wolves", "candles", "bridges", "forests", "kettles", "comets")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(model: str, log: Path | None = None, script: Path = ROOT / "streamlit_app.py",
           env: dict[str, str] | None = None,
           options: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """A `streamlit run` of the app (or another `script`) on a free local port, with `env` added
    to this process's environment and Streamlit's command-line `options`, once its health
    endpoint answers: yields (url, process); stops it afterwards."""
    port = free_port()
    # as the launchers start it (make run, deploy/class.sh, gpt2viz app): at most 2 malloc arenas
    env = {"MALLOC_ARENA_MAX": MALLOC_ARENAS, **os.environ, "GPT2VIZ_MODEL": model, **(env or {})}
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script),
         "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.fileWatcherType", "none", *options],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while health_latency(url) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()})")
            time.sleep(0.3)
        yield url, proc
    finally:
        stop(proc, 15)
        if log:
            out.close()


PROBE_WAIT_S = 60  # the longest wait for the probe's next answer (a probe waits 30 s at most)
PROBE_NICE = -10  # the probe's priority, relative to this process's, where it may be raised (root)


class HealthProbe:
    """Polls the health endpoint every `every` seconds until stopped; `latencies` holds each
    answer's seconds (None for a failed probe). It polls from a process of its own
    (bench/health_probe.py): this one drives every browser page from one Python thread, and a probe
    thread here would time its own waits for that thread as the server's. It runs at a raised
    priority where that is allowed (`prioritised`): a probe stands for a health check from another
    machine, and one that waits for a CPU behind twenty browsers times those waits as the server's,
    and misses the server's stalls while it waits (a probe at normal priority saw 0.28 s where one
    at a raised priority, polling the same server at the same time, saw 0.94 s)."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        probe = ROOT / "bench" / "health_probe.py"
        self._command = [sys.executable, str(probe), url, str(every), str(PROBE_NICE)]
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self.latencies: list[float | None] = []
        self.prioritised = False

    def start(self) -> None:
        """Start polling; returns once the first answer is in (a new process takes a moment)."""
        self.process = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        self.prioritised = self._next("its priority") == "prioritised"
        self.latencies.append(_latency(self._next("its first answer")))

    def stop(self) -> None:
        assert self.process is not None and self.process.stdin is not None, "stop() before start()"
        self.process.stdin.close()
        while (answer := self._next("its answers up to 'done'")) != "done":
            self.latencies.append(_latency(answer))
        self.process.wait(timeout=PROBE_WAIT_S)

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # the probe ended

    def _next(self, waited_for: str) -> str:
        try:
            line = self._lines.get(timeout=PROBE_WAIT_S)
        except queue.Empty:
            raise TimeoutError(f"the health probe sent nothing for {PROBE_WAIT_S} s "
                               f"(waited for {waited_for})") from None
        if not line:
            raise RuntimeError(f"the health probe ended before {waited_for} (exit {self.process.wait()})")
        return line


def _latency(line: str) -> float | None:
    return None if line == "failed" else float(line)


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


@dataclass
class ClassRun:
    generate_to_chart: list[float]  # seconds per session, from its Generate click to its finished chart
    health: list[float | None]  # every probe's latency during the generations
    probe_prioritised: bool  # the probe ran at a raised priority (HealthProbe)
    peak_mb: float
    strips: list[str]  # each session's token strip text at the end
    stops: list[str]  # each session's "Stopped after … new tokens: …" line at the end
    prompts: list[str]
    clients_cpu_s: float | None  # CPU seconds the thin clients used while generating (None: browsers)


@dataclass
class _Phase:
    """What the clients saw from the presses of Generate on: each finished session's seconds to
    its chart (by index), and at the end each session's strip and stop line."""

    done: dict[int, float]
    strips: list[str]
    stops: list[str]
    probe: HealthProbe
    clients_cpu_s: float | None = None


def open_session(browser, url: str):
    """A new browser context (its own session) on the app, once its first run has finished."""
    page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Prompt").wait_for(timeout=300_000)
    page.get_by_text("Stopped after").first.wait_for(timeout=300_000)  # the opening example
    return page


def set_prompt(page, prompt: str, tokens: int) -> None:
    """On the Generate page: the prompt typed and committed, and `tokens` new tokens asked for."""
    page.get_by_role("textbox", name="Prompt").fill(prompt)
    page.get_by_role("textbox", name="Prompt").press("Control+Enter")  # commit the text area
    page.get_by_role("button", name="Sampling").click()  # a popover: its widgets appear on opening
    box = page.get_by_label("Max new tokens")
    box.fill(str(tokens))
    box.press("Enter")


def finished(page, word: str) -> bool:
    """The session's own generation has ended and its candidates chart is drawn."""
    own = page.locator(".tok-strip", has_text=word).count() > 0
    done = own and page.get_by_text("Stopped after").count() > 0
    return done and page.locator("[data-testid='stPlotlyChart'] .main-svg").count() > 0


def run_class(url: str, proc: subprocess.Popen, sessions: int, tokens: int, timeout: float = 900,
              clients: str = "browser") -> ClassRun:
    """`sessions` sessions (`clients`: "browser" or "thin") open the app, set their prompts, then
    all press Generate at once."""
    prompts = [f"The {WORDS[i % len(WORDS)]} in the old town were" for i in range(sessions)]
    drive = _browser_class if clients == "browser" else _thin_class
    phase = drive(url, prompts, tokens, timeout)
    if len(phase.done) < sessions:
        raise RuntimeError(f"only {len(phase.done)} of {sessions} sessions finished within {timeout:.0f} s")
    return ClassRun([phase.done[i] for i in range(sessions)], phase.probe.latencies, phase.probe.prioritised,
                    peak_memory_mb(proc.pid), phase.strips, phase.stops, prompts, phase.clients_cpu_s)


def _browser_class(url: str, prompts: list[str], tokens: int, timeout: float) -> _Phase:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pages = [open_session(browser, url) for _ in prompts]
        for page, prompt in zip(pages, prompts, strict=True):
            set_prompt(page, prompt, tokens)
        time.sleep(1.0)  # the last settings reach the server
        probe = HealthProbe(url)
        probe.start()
        clicked = []
        for page in pages:
            page.get_by_role("button", name="Generate", exact=True).click(no_wait_after=True)
            clicked.append(time.perf_counter())
        done: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(pages) and time.monotonic() < deadline:
            for i, page in enumerate(pages):
                if i not in done and finished(page, WORDS[i % len(WORDS)]):
                    done[i] = time.perf_counter() - clicked[i]
            time.sleep(0.2)
        probe.stop()
        strips = [page.locator(".tok-strip").last.inner_text() for page in pages]
        stops = [page.get_by_text("Stopped after").last.inner_text() for page in pages]
        browser.close()
    return _Phase(done, strips, stops, probe)


async def open_thin_session(url: str) -> ThinClient:
    """`open_session` for a thin client."""
    client = ThinClient(url)
    await client.open()
    await client.wait_for(lambda page: page.has_text("Stopped after"))  # the opening example
    return client


async def thin_set_prompt(client: ThinClient, prompt: str, tokens: int) -> None:
    """`set_prompt` for a thin client: the prompt, then the number of tokens, each sent as the
    browser sends a committed change (a rerun); returns once a finished run shows both."""
    client.set_value("Prompt", prompt)
    await client.rerun()
    client.set_value("Max new tokens", tokens)
    await client.rerun()
    shown = ("Prompt", "Max new tokens")
    await client.wait_for(lambda page: tuple(map(page.value, shown)) == (prompt, tokens))


def thin_finished(page: Page, word: str) -> bool:
    """`finished` for a thin client: its latest finished run shows its own generation's end and
    the candidates chart."""
    own = word in (page.strip_text or "")
    return own and page.has_text("Stopped after") and bool(page.of_kind("plotly_chart"))


def _thin_class(url: str, prompts: list[str], tokens: int, timeout: float) -> _Phase:
    return asyncio.run(_thin_class_async(url, prompts, tokens, timeout))


async def _thin_sessions(url: str, prompts: list[str], tokens: int) -> list[ThinClient]:
    clients = [await open_thin_session(url) for _ in prompts]  # one after the other, as the browsers
    for client, prompt in zip(clients, prompts, strict=True):
        await thin_set_prompt(client, prompt, tokens)
    return clients


async def _thin_class_async(url: str, prompts: list[str], tokens: int, timeout: float) -> _Phase:
    clients = await asyncio.wait_for(_thin_sessions(url, prompts, tokens), timeout)
    await asyncio.sleep(1.0)  # as the browsers wait for their last settings
    probe = HealthProbe(url)
    await asyncio.to_thread(probe.start)  # the clients go on reading meanwhile
    before = os.times()
    clicked = [await client.click("Generate") for client in clients]
    waits = {asyncio.create_task(client.wait_for(partial(thin_finished, word=WORDS[i % len(WORDS)]))): i
             for i, client in enumerate(clients)}
    ended, pending = await asyncio.wait(waits, timeout=timeout)
    after = os.times()
    for task in pending:
        task.cancel()
    await asyncio.to_thread(probe.stop)
    done = {waits[task]: task.result().finished_at - clicked[waits[task]] for task in ended}
    strips = [client.page.strip_text or "" for client in clients]
    stops = [client.page.text_with("Stopped after") or "" for client in clients]
    await asyncio.gather(*(client.close() for client in clients))
    return _Phase(done, strips, stops, probe, after.user - before.user + after.system - before.system)


@contextmanager
def split_cores(server_pid: int, clients: str = "the browsers") -> Iterator[str]:
    """Put every thread of the server on the first core and this process (its clients, started
    inside, and its probe) on the others, as in a classroom, where the browsers run on the
    students' machines and the server keeps its CPU; this process's cores are given back after.
    Yields the setup, in words (`clients` names the clients)."""
    mine = os.sched_getaffinity(0)
    cores = sorted(mine)
    if len(cores) < 2:
        raise SystemExit("--cores split needs at least 2 CPU cores")
    subprocess.run(["taskset", "-a", "-cp", str(cores[0]), str(server_pid)], check=True, capture_output=True)
    os.sched_setaffinity(0, cores[1:])
    try:
        yield f"the server on core {cores[0]}, {clients} on {len(cores) - 1} other core(s)"
    finally:
        os.sched_setaffinity(0, mine)


def report(run: ClassRun, setup: str) -> None:
    answered = [x for x in run.health if x is not None]
    failed = len(run.health) - len(answered)
    worst = max(answered) if answered else float("nan")
    met = "met" if failed == 0 and worst <= HEALTH_TARGET_S else "MISSED"
    print(f" {setup}:")
    print(f"  Generate → chart: p50 {statistics.median(run.generate_to_chart):.1f} s, "
          f"max {max(run.generate_to_chart):.1f} s")
    print(f"  health endpoint: {len(run.health)} probes, p50 {statistics.median(answered):.3f} s, "
          f"max {worst:.3f} s, {failed} unanswered (target: all within {HEALTH_TARGET_S:.0f} s: {met})")
    if not run.probe_prioritised:
        print(f"  (the probe ran at normal priority, as os.nice({PROBE_NICE}) needs root: with the "
              "browsers on the same cores, its own waits for a CPU count, and it misses stalls)")
    print(f"  server peak memory (VmHWM): {run.peak_mb:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--cores", choices=["shared", "split", "both"], default="both",
                        help="shared: the clients and the server on the same cores; split: the "
                             "server on a core of its own (see split_cores)")
    parser.add_argument("--clients", choices=list(CLIENTS), default="browser",
                        help="browser: a Chromium context per session; thin: bench/thin_client.py, "
                             "which speaks the browser's protocol and draws nothing")
    args = parser.parse_args()
    model = os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")
    clients = CLIENTS[args.clients]
    print(f"model {model}; {args.sessions} sessions × {args.tokens} tokens on one streamlit process, "
          f"{os.cpu_count()} CPUs; clients: {args.clients} ({clients})")
    for setup in (["shared", "split"] if args.cores == "both" else [args.cores]):
        with served(model) as (url, proc):
            shared = nullcontext(f"{clients} and the server on all cores")
            with split_cores(proc.pid, clients) if setup == "split" else shared as where:
                run = run_class(url, proc, args.sessions, args.tokens, clients=args.clients)
                report(run, where)
                if run.clients_cpu_s is not None:
                    print(f"  {clients}' CPU from the presses to the last chart: {run.clients_cpu_s:.2f} s")


if __name__ == "__main__":
    main()
