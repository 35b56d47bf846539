"""A live class's followers: what idle followers cost the server, how soon they show the
teacher's head changes, and how soon a round's guesses reach the teacher's chart.

    .venv/bin/python bench/class_follow.py [--followers 30] [--idle 60] [--changes 10]
                                           [--store redis|memory] [--cores split|shared] [--wait 60]

One `streamlit run` process with GPT2VIZ_TEACHER_KEY set, its class store in a Redis the bench
starts (`--store redis`, the default; Debian's redis-server, nothing kept on disk) or in the
process's memory (`--store memory`). The followers are thin clients (bench/thin_client.py): they
open the app, follow (a new session does), and from then on send nothing unless told to; the
server's watcher reruns them when the class changes. The teacher is Debian's chromium, driven with
playwright as tests/test_browser_class.py drives it: it opens `?teacher=<key>`, goes to Attention,
picks heads with the selectbox and asks "what comes next?" on Generate.

Targets (the live class's issue):

1. idle: the followers (30) connected and idle for `--idle` (60) s cost the server process at most
   5 % of one core (its utime + stime from /proc/<pid>/stat over the window, divided by the window);
   measured before the teacher comes (no teacher), and again with the Chromium teacher on the
   Attention page (its sidebar line, a fragment, reruns every 2 s).
2. head changes: the teacher picks another head `--changes` (10) times; from the moment the change
   is published to each follower's finished run whose attention heatmap is titled with the new
   head: p50 ≤ 1 s, max ≤ 2 s. With Redis, the moment of publishing is when the store's version
   grows (a keyspace notification the bench subscribes to); with the memory store the bench cannot
   see it, and times from the teacher's click on the head instead (which adds the teacher's own run).
3. a round: the teacher asks on Generate; every follower types a guess in "Your guess for the next
   word" and presses "Send my guess" (the form's submit: the text and the button's trigger in one
   rerun, as the browser sends them), all at once; from the last guess sent to the teacher's page
   showing "30 of … have answered": ≤ 2 s (the teacher's round panel is a fragment run every 1 s).

With `--cores split` (the default) the server and Redis run on the first core and the bench (the
thin clients, playwright and Chromium) on the others, as in a classroom where every browser has a
machine of its own; `shared`: everything on every core. Every wait is bounded (`--wait`): a
follower or teacher that stalls is reported with what it waited for, and the bench exits non-zero.
Model: $GPT2VIZ_MODEL, else the bundled gpt2viz-mini.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.class_load import ARGS, CHROMIUM, free_port, served, split_cores  # noqa: E402
from bench.local_servers import MISSING, redis_binary, redis_process  # noqa: E402
from bench.soak import Stalled, bounded  # noqa: E402
from bench.thin_client import Page, ThinClient, kind, label, text  # noqa: E402

KEY = "bench-class-follow-key"
IDLE_TARGET = 0.05  # of one core
FOLLOW_P50_TARGET_S, FOLLOW_MAX_TARGET_S = 1.0, 2.0
ROUND_TARGET_S = 2.0
SETTLE_S = 3.0  # after the class settles, before an idle window starts
VERSION_KEY = "gpt2viz:class:version"  # app/class_store.py: grows with every published change
GUESS_BOX, SEND = "Your guess for the next word", "Send my guess"
GUESSES = ("mat", "sofa", "floor", "bed", "chair", "rug", "table", "box", "roof", "lap")


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, every thread's (utime + stime of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy(core: int) -> float:
    """Seconds core `core` has been busy so far, whatever ran on it (/proc/stat, less idle and iowait)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(x) for x in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no cpu{core} in /proc/stat")


@contextmanager
def redis_store(wait_s: float = 10.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Debian's redis-server on a free local port (bench/local_servers.py), notifying changes of
    string keys (the class's version): yields (its redis:// url, process)."""
    if redis_binary() is None:
        raise SystemExit(f"{MISSING} (or pass --store memory)")
    port = free_port()
    with redis_process(port, wait_s, ("--notify-keyspace-events", "K$")) as proc:
        yield f"redis://127.0.0.1:{port}/0", proc


class Publishes:
    """The moments (time.perf_counter()) the class store's version grew: with Redis, from its
    keyspace notifications; with the memory store, none can be seen (`seen` is False)."""

    def __init__(self, store_url: str | None) -> None:
        self.store_url = store_url
        self.seen = store_url is not None
        self.times: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        if self.store_url is None:
            return
        import redis.asyncio

        self._client = redis.asyncio.Redis.from_url(self.store_url)
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(f"__keyspace@0__:{VERSION_KEY}")
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            if message["type"] == "message":
                self.times.append(time.perf_counter())
                self._changed.set()

    async def after(self, moment: float, seconds: float) -> float:
        """The first publish after `moment` (perf_counter), waiting at most `seconds` for it."""
        deadline = time.monotonic() + seconds
        while not any(t > moment for t in self.times):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise Stalled(f"the teacher's change published (the store's version growing) after "
                              f"{seconds:.0f} s")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass
        return next(t for t in self.times if t > moment)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await self._pubsub.aclose()
            await self._client.aclose()


# --- what a follower's latest finished run shows ---

def heading(page: Page, title: str) -> bool:
    return any(kind(e) == "heading" and text(e) == title for e in page.elements)


def shows_head(page: Page, head: int) -> bool:
    """The Attention page with its heatmap on `head` (titled "Layer l, head h: attention …")."""
    needle = f", head {head}: attention"
    return heading(page, "Attention") and any(needle in e.plotly_chart.spec
                                              for e in page.of_kind("plotly_chart"))


def asks_for_a_guess(page: Page) -> bool:
    return any(label(e) == GUESS_BOX for e in page.elements)


# --- the teacher: Chromium ---

async def teacher_waits(what: str, waited: Awaitable[Any], seconds: float) -> Any:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        return await asyncio.wait_for(waited, seconds + 5)  # playwright's own timeout comes first
    except (TimeoutError, PlaywrightTimeout):
        raise Stalled(f"the teacher's page, waiting for {what}: nothing after {seconds:.0f} s") from None


async def on_teacher_page(page, what: str, pattern: str, seconds: float) -> float:
    """Waits for text matching `pattern` (a JavaScript regular expression) in the teacher's page,
    checked in the browser every 50 ms; returns time.perf_counter() once it is there."""
    check = f"() => new RegExp({pattern!r}).test(document.body.textContent)"
    await teacher_waits(what, page.wait_for_function(check, polling=50, timeout=seconds * 1000), seconds)
    return time.perf_counter()


async def nav(page, title: str, seconds: float) -> None:
    await page.get_by_role("link", name=title).first.click()
    await teacher_waits(f"the {title} page", page.get_by_role("heading", name=title).first.wait_for(
        timeout=seconds * 1000), seconds)


# --- the followers ---

@dataclass
class Class:
    followers: list[ThinClient]
    wait: float
    stalled: list[str] = field(default_factory=list)

    async def all_show(self, what: str, check: Callable[[Page], bool]) -> dict[int, float]:
        """Each follower's first finished run for which `check` holds: {index: its finished_at};
        a follower that did not get one within the bound goes to `stalled`, naming `what`."""
        outcomes = await asyncio.gather(*(bounded(client, what, client.wait_for(check), self.wait)
                                          for client in self.followers), return_exceptions=True)
        shown = {}
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                self.stalled.append(f"follower {i}: {outcome}")
            else:
                shown[i] = outcome.finished_at
        return shown


def first_page(page: Page) -> bool:
    """A new follower's first page: the Generate page's finished example, no teacher yet."""
    return page.has_text("Stopped after") and page.has_text("No teacher leads")


async def open_followers(url: str, count: int, wait: float) -> Class:
    """`count` thin clients, one after the other (as class_load's): each opens the app and follows
    (a new session does)."""
    followers = []
    for i in range(count):
        client = ThinClient(url)
        await bounded(client, f"follower {i} connecting", client.open(), wait)
        await bounded(client, f"follower {i}'s first page (the example, following, no teacher yet)",
                      client.wait_for(first_page), wait * 3 if i == 0 else wait)  # the first loads the model
        followers.append(client)
    return Class(followers, wait)


@dataclass(frozen=True)
class Idle:
    cpu_share: float  # of one core
    redis_share: float | None
    seconds: float
    followers_sent_to: int  # followers that received any message during the window


async def idle_window(pid: int, redis_pid: int | None, followers: list[ThinClient], seconds: float) -> Idle:
    """The server's (and Redis's) CPU over `seconds` of nothing happening, after SETTLE_S."""
    await asyncio.sleep(SETTLE_S)
    start, began = time.monotonic(), cpu_seconds(pid)
    redis_began = cpu_seconds(redis_pid) if redis_pid else 0.0
    await asyncio.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - began, time.monotonic() - start
    redis_share = (cpu_seconds(redis_pid) - redis_began) / elapsed if redis_pid else None
    sent_to = sum(client.last_received[1] > start for client in followers)
    return Idle(used / elapsed, redis_share, elapsed, sent_to)


@dataclass
class Results:
    idle_alone: Idle | None = None
    idle_teacher: Idle | None = None
    follow: list[float] = field(default_factory=list)  # publish (or pick) → each follower's run, seconds
    pick_to_publish: list[float] = field(default_factory=list)
    change_cpu: list[float] = field(default_factory=list)  # the server's CPU seconds over each change
    others_cpu: list[float] = field(default_factory=list)  # other processes' on the server's core (split)
    ask_to_question: list[float] = field(default_factory=list)
    round_s: float | None = None  # the last guess sent → the teacher's page showing them all
    round_shown: str = ""  # the teacher's line then
    acknowledged: list[float] = field(default_factory=list)  # each guess sent → its follower's "Your guess:"
    stalled: list[str] = field(default_factory=list)


@dataclass
class Setup:
    """What the phases share: the server, its store, the followers, the teacher's page."""

    pid: int
    redis_pid: int | None
    server_core: int | None  # the core the server has to itself (--cores split), else None
    publishes: Publishes
    klass: Class
    teacher: Any  # playwright's Page
    args: argparse.Namespace
    results: Results

    def others_on_server_core(self) -> float:
        """The server's core's busy seconds so far, less the server's and Redis's: another process
        taking its turns there (a noisy machine) shows here."""
        if self.server_core is None:
            return 0.0
        ours = cpu_seconds(self.pid) + (cpu_seconds(self.redis_pid) if self.redis_pid else 0.0)
        return core_busy(self.server_core) - ours


async def head_changes(s: Setup) -> None:
    """Target 2: the teacher picks another head, `--changes` times, each once every follower showed
    the last one (and the teacher's own page, and a second more)."""
    n, wait, teacher = len(s.klass.followers), s.args.wait, s.teacher
    heads = [(1, 2, 3, 0)[i % 4] for i in range(s.args.changes)]  # from head 0
    for i, head in enumerate(heads):
        await teacher.get_by_role("combobox", name="Head", exact=True).click()
        option = teacher.get_by_role("option", name=str(head), exact=True)
        await teacher_waits(f"head {head} in the Head list", option.wait_for(timeout=wait * 1000), wait)
        others_before = s.others_on_server_core()
        picked, server_before, bench_before = time.perf_counter(), cpu_seconds(s.pid), os.times()
        await option.click()
        shown = await s.klass.all_show(f"head {head} (change {i + 1})",
                                       lambda page, h=head: shows_head(page, h))
        server_cpu, bench_after = cpu_seconds(s.pid) - server_before, os.times()
        bench_cpu = bench_after.user + bench_after.system - bench_before.user - bench_before.system
        s.results.change_cpu.append(server_cpu)
        others = s.others_on_server_core() - others_before if s.server_core is not None else None
        if others is not None:
            s.results.others_cpu.append(others)
        published = picked
        if s.publishes.seen:
            published = await s.publishes.after(picked, wait)
            s.results.pick_to_publish.append(published - picked)
        times = sorted(at - published for at in shown.values())
        s.results.follow.extend(times)
        if times:
            print(f"  change {i + 1}: head {head}, {len(shown)} of {n} followers, "
                  f"{'publish' if s.publishes.seen else 'pick'} → run p50 {statistics.median(times):.2f} s, "
                  f"max {times[-1]:.2f} s; CPU: the server {server_cpu:.2f} s, the bench {bench_cpu:.2f} s"
                  + ("" if others is None else f", other processes on the server's core {others:.2f} s"),
                  flush=True)
        await on_teacher_page(teacher, f"its own heatmap on head {head}", f", head {head}: attention", wait)
        await asyncio.sleep(1.0)  # the teacher looks at it a moment


async def a_round(s: Setup) -> None:
    """Target 3: the teacher asks on Generate; every follower sends a guess through the form, all at
    once; the teacher's round panel (a fragment, every second) counts them."""
    n, wait, teacher, klass = len(s.klass.followers), s.args.wait, s.teacher, s.klass
    await nav(teacher, "Generate", wait)
    await klass.all_show("the Generate page", lambda page: heading(page, "Generate"))
    await asyncio.sleep(1.0)
    asked = time.perf_counter()
    await teacher.get_by_role("button", name="Ask: what comes next?").click()
    questions = await klass.all_show("the round's question", asks_for_a_guess)
    s.results.ask_to_question = sorted(at - asked for at in questions.values())
    await asyncio.sleep(1.0)
    sent = {}
    for i in questions:  # one after another, at once: each a typed guess and the form's submit, one rerun
        client = klass.followers[i]
        client.set_value(GUESS_BOX, GUESSES[i % len(GUESSES)])
        sent[i] = await client.click(SEND)
    last = max(sent.values(), default=time.perf_counter())
    counted = rf"(^|\D){n} of \d+ following have answered"
    teacher_saw = asyncio.create_task(on_teacher_page(teacher, f"its round panel counting {n} answers",
                                                      counted, wait))
    acknowledged = (bounded(klass.followers[i], 'its guess acknowledged ("Your guess:")',
                            klass.followers[i].wait_for(lambda p: p.has_text("Your guess:")), wait)
                    for i in sent)
    acks = await asyncio.gather(*acknowledged, return_exceptions=True)
    for i, ack in zip(sent, acks, strict=True):
        if isinstance(ack, BaseException):
            klass.stalled.append(f"follower {i}: {ack}")
        else:
            s.results.acknowledged.append(ack.finished_at - sent[i])
    try:
        s.results.round_s = await teacher_saw - last
    except Stalled as stall:
        klass.stalled.append(str(stall))
        return
    found = re.search(r"\d+ of \d+ following have answered", await teacher.inner_text("body"))
    s.results.round_shown = found.group(0) if found else ""


async def run_class(url: str, pid: int, redis_pid: int | None, store_url: str | None,
                    args: argparse.Namespace, results: Results) -> None:
    """The class, its phases one after the other, filling `results` as it goes (a teacher that
    stalls raises Stalled; what was measured before stays)."""
    from playwright.async_api import async_playwright

    publishes = Publishes(store_url)
    await publishes.start()
    klass = await open_followers(url, args.followers, args.wait)
    results.stalled = klass.stalled
    n = len(klass.followers)
    print(f"  {n} followers open; idle for {args.idle:.0f} s, no teacher yet…", flush=True)
    results.idle_alone = await idle_window(pid, redis_pid, klass.followers, args.idle)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        teacher = await (await browser.new_context(viewport={"width": 1400, "height": 1600})).new_page()
        await teacher.goto(f"{url}/?teacher={KEY}", wait_until="domcontentloaded")
        await on_teacher_page(teacher, f"its line counting {n} students",
                              f"Leading the class · {n} students follow", args.wait)
        await nav(teacher, "Attention", args.wait)
        await klass.all_show("the Attention page on head 0", lambda page: shows_head(page, 0))
        print(f"  a Chromium teacher leads, on Attention; idle for {args.idle:.0f} s…", flush=True)
        results.idle_teacher = await idle_window(pid, redis_pid, klass.followers, args.idle)
        server_core = min(os.sched_getaffinity(pid)) if args.cores == "split" else None
        setup = Setup(pid, redis_pid, server_core, publishes, klass, teacher, args, results)
        await head_changes(setup)
        await a_round(setup)
        await browser.close()
    await asyncio.gather(*(client.close() for client in klass.followers), return_exceptions=True)
    await publishes.stop()


def verdict(met: bool) -> str:
    return "PASS" if met else "FAIL"


def p50_max(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s"


def report(results: Results, followers: int, args: argparse.Namespace, seen_publish: bool) -> None:
    """One line per target, with PASS or FAIL, and the figures around it."""
    alone, with_teacher = results.idle_alone, results.idle_teacher
    if alone is not None and with_teacher is not None:
        worst = max(alone.cpu_share, with_teacher.cpu_share)
        redis = ""
        if alone.redis_share is not None and with_teacher.redis_share is not None:
            redis = f"; Redis {100 * alone.redis_share:.1f} % and {100 * with_teacher.redis_share:.1f} %"
        print(f"1 idle: {followers} followers × {alone.seconds:.0f} s: server CPU "
              f"{100 * alone.cpu_share:.1f} % of a core without a teacher, "
              f"{100 * with_teacher.cpu_share:.1f} % with a Chromium teacher on Attention{redis}; "
              f"followers sent a message: "
              f"{alone.followers_sent_to}, {with_teacher.followers_sent_to} "
              f"(target ≤ {100 * IDLE_TARGET:.0f} %: {verdict(worst <= IDLE_TARGET)})")
    if results.follow:
        p50, worst = statistics.median(results.follow), max(results.follow)
        expected = args.changes * followers
        met = p50 <= FOLLOW_P50_TARGET_S and worst <= FOLLOW_MAX_TARGET_S and len(results.follow) == expected
        start = "publish" if seen_publish else "the teacher's pick (the memory store: no publish to see)"
        extra = f"; the teacher's pick → publish {p50_max(results.pick_to_publish)}" \
            if results.pick_to_publish else ""
        cpu = statistics.median(results.change_cpu)
        if results.others_cpu:
            extra += (f"; other processes on the server's core: {sum(results.others_cpu):.1f} s in all "
                      f"(the server {sum(results.change_cpu):.1f} s)")
        print(f"2 head changes: {args.changes} × {followers} followers, {start} → the follower's run on "
              f"the new head: p50 {p50:.2f} s, max {worst:.2f} s, {len(results.follow)} of {expected} "
              f"runs{extra}; the server's CPU a change p50 {cpu:.2f} s ({cpu / (followers + 1):.3f} s a "
              f"page run) (target p50 ≤ {FOLLOW_P50_TARGET_S:.0f} s, max ≤ {FOLLOW_MAX_TARGET_S:.0f} s: "
              f"{verdict(met)})")
    if results.ask_to_question:
        print(f"  the teacher's Ask → each follower's question: {p50_max(results.ask_to_question)}")
    if results.round_s is not None:
        acks = f"; each guess sent → its follower's \"Your guess\": {p50_max(results.acknowledged)}" \
            if results.acknowledged else ""
        met = results.round_s <= ROUND_TARGET_S
        print(f"3 round: {followers} guesses sent at once through the guess form, the last sent → the "
              f"teacher's page showing \"{results.round_shown}\": {results.round_s:.2f} s{acks} "
              f"(target ≤ {ROUND_TARGET_S:.0f} s: {verdict(met)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=30)
    parser.add_argument("--idle", type=float, default=60, help="seconds of each idle window")
    parser.add_argument("--changes", type=int, default=10, help="how many times the teacher changes the head")
    parser.add_argument("--store", choices=["redis", "memory"], default="redis")
    parser.add_argument("--cores", choices=["split", "shared"], default="split")
    parser.add_argument("--wait", type=float, default=60,
                        help="seconds a follower or the teacher waits for any one thing")
    args = parser.parse_args()
    model = os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")
    print(f"model {model}; {args.followers} thin-client followers, a Chromium teacher; class store: "
          f"{args.store}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before", flush=True)
    began = time.monotonic()
    results = Results()
    with redis_store() if args.store == "redis" else nullcontext((None, None)) as (store_url, redis_proc):
        env = {"GPT2VIZ_TEACHER_KEY": KEY, "GPT2VIZ_CLASS_STORE": store_url or ""}
        with served(model, env=env) as (url, proc):
            split = args.cores == "split"
            bench = "the bench (followers, playwright, Chromium)"
            with split_cores(proc.pid, bench) if split else nullcontext("everything on every core") as where:
                if split and redis_proc is not None:  # the class store is the server's side
                    subprocess.run(["taskset", "-a", "-cp", str(min(os.sched_getaffinity(proc.pid))),
                                    str(redis_proc.pid)], check=True, capture_output=True)
                print(f"  {where}", flush=True)
                try:
                    asyncio.run(run_class(url, proc.pid, redis_proc.pid if redis_proc else None, store_url,
                                          args, results))
                except Stalled as stall:
                    results.stalled.append(str(stall))
    report(results, args.followers, args, store_url is not None)
    print(f"took {time.monotonic() - began:.0f} s; stalled: {len(results.stalled)}")
    for line in results.stalled:
        print(f"  STALLED {line}")
    if results.stalled:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
