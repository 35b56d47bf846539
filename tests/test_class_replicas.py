"""A class on two replicas behind HAProxy (`make class`, deploy/class.sh, deploy/haproxy.cfg): six
browsers are spread over both replicas and pinned to theirs by the `gpt2viz_replica` cookie, each
sees only its own tokens, a reload keeps its replica; when a replica dies the other goes on
serving, and the dead one's browsers, reloaded, come back with their view (from the address) and
generate again. Ctrl-C stops every process the class started."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.class_load import (
    ARGS,
    CHROMIUM,
    WORDS,
    finished,
    free_port,
    health_latency,
    open_session,
    set_prompt,
)
from tests.app_support import ROOT

pytestmark = pytest.mark.browser
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = ROOT / "deploy" / "haproxy.cfg"
COOKIE = "gpt2viz_replica"
CONTEXTS = 6
TOKENS = 3


def needs_haproxy() -> None:
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is missing: `make haproxy` (or `make test`) installs Debian's")


def test_make_class_passes_replicas_and_port_to_the_script() -> None:
    dry = subprocess.run(["make", "-n", "class", "REPLICAS=3", "PORT=9000"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"^REPLICAS=3 PORT=9000 PYTHON=\S+ bash deploy/class.sh$", dry, re.M), dry


def test_the_shipped_config_is_valid_and_pins_browsers_by_cookie() -> None:
    needs_haproxy()
    check = subprocess.run([HAPROXY, "-c", "-f", str(CONFIG)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = CONFIG.read_text()
    for line in ("cookie gpt2viz_replica insert indirect nocache", "option httpchk GET /_stcore/health",
                 "option redispatch", "retries 3", "retry-on conn-failure empty-response", "timeout tunnel",
                 "observe layer4"):
        assert line in text, line


@dataclass
class Class:
    """A running deploy/class.sh: its process (a session of its own) and what it printed."""
    proc: subprocess.Popen
    url: str
    run_dir: Path
    lines: list[str] = field(default_factory=list)
    replicas: dict[str, tuple[int, int]] = field(default_factory=dict)  # cookie value: (port, pid)
    haproxy_pid: int = 0


@contextmanager
def class_of_two(model: str, run_dir: Path, more_env: dict[str, str] | None = None) -> Iterator[Class]:
    """deploy/class.sh with two replicas on a free port (and `more_env`), once it says it serves;
    afterwards stopped as a terminal's Ctrl-C stops it: SIGINT to its whole process group."""
    port = free_port()
    env = {**os.environ, "GPT2VIZ_MODEL": model, "REPLICAS": "2", "PORT": str(port),
           "PYTHON": str(ROOT / ".venv" / "bin" / "python"), "CLASS_RUN_DIR": str(run_dir),
           **(more_env or {})}
    if not Path(env["PYTHON"]).exists():
        env["PYTHON"] = shutil.which("python3") or "python3"
    proc = subprocess.Popen(
        ["bash", "deploy/class.sh"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
        # as in a terminal, whatever this process inherited (a shell's background job ignores it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    running = Class(proc, f"http://127.0.0.1:{port}", run_dir)
    reader = threading.Thread(target=lambda: running.lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("Ctrl-C stops them all" in line for line in running.lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("deploy/class.sh did not start:\n" + "".join(running.lines))
            time.sleep(0.2)
        for line in running.lines:
            if m := re.search(r"replica (r\d+) on 127\.0\.0\.1:(\d+) \(pid (\d+)", line):
                running.replicas[m[1]] = (int(m[2]), int(m[3]))
            if m := re.search(r"HAProxy \(pid (\d+)\)", line):
                running.haproxy_pid = int(m[1])
        yield running
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        reader.join(timeout=5)


def replica_of(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)


def prompt_of(i: int, round_: int) -> str:
    return f"The {WORDS[round_ * CONTEXTS + i]} in the old town were"


def generate_all(pages: list, round_: int, timeout: float = 180) -> list[str]:
    """Every page sets its own prompt of this round and presses Generate; returns their token strips."""
    for i, page in enumerate(pages):
        set_prompt(page, prompt_of(i, round_), TOKENS)
    time.sleep(1.0)  # the last settings reach the server
    for page in pages:
        page.get_by_role("button", name="Generate", exact=True).click(no_wait_after=True)
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(pages) and time.monotonic() < deadline:
        done |= {i for i, page in enumerate(pages) if finished(page, WORDS[round_ * CONTEXTS + i])}
        time.sleep(0.2)
    assert len(done) == len(pages), f"only {sorted(done)} finished"
    strips = [page.locator(".tok-strip").last.inner_text() for page in pages]
    words = WORDS[round_ * CONTEXTS:(round_ + 1) * CONTEXTS]
    for i, strip in enumerate(strips):  # each sees its own tokens, no other session's
        assert words[i] in strip and not any(w in strip for j, w in enumerate(words) if j != i), (i, strip)
    return strips


def reopened(page) -> None:
    """The page reloaded once: a new session, on its address, once its first run has finished."""
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Prompt").wait_for(timeout=180_000)
    page.get_by_text(re.compile("for one step, or|Stopped after")).first.wait_for(timeout=180_000)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.usefixtures("app_model")
def test_a_request_on_a_kept_alive_connection_to_a_killed_replica_is_answered_by_the_other(
        app_model: str, tmp_path: Path) -> None:
    """The cause of a reload that once never came back after a replica's death: the browser's
    next request went on a kept-alive connection to the dead replica and got no answer at all.
    HAProxy now retries such a request on the live replica (retry-on empty-response, redispatch)."""
    needs_haproxy()
    with class_of_two(app_model, tmp_path) as cls:
        port = int(cls.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60  # HAProxy starts listening a moment after the script says so
        while health_latency(cls.url) is None:
            assert time.monotonic() < deadline, "HAProxy did not answer on its port within 60 s"
            time.sleep(0.2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        def get(path: str) -> tuple[int, list[str]]:
            """The status, and the replica cookies HAProxy set, of a GET pinned to r1."""
            connection.request("GET", path, headers={"Cookie": f"{COOKIE}=r1"})
            answer = connection.getresponse()
            answer.read()
            cookies = answer.headers.get_all("Set-Cookie") or []
            return answer.status, [cookie for cookie in cookies if cookie.startswith(COOKIE)]

        assert [get(path) for path in ("/", "/_stcore/health")] == [(200, [])] * 2  # kept alive, on r1
        os.kill(cls.replicas["r1"][1], signal.SIGKILL)
        answers = [get(path) for path in ("/", "/_stcore/health", "/")]  # at once, on the same connection
        connection.close()
    assert answers[0] == (200, [f"{COOKIE}=r2; path=/"])  # the first one too: no empty answer
    assert [status for status, _ in answers] == [200, 200, 200]


@pytest.mark.usefixtures("app_model")
def test_a_class_on_two_replicas_survives_losing_one(app_model: str, tmp_path: Path) -> None:
    needs_haproxy()
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)")
    from playwright.sync_api import expect, sync_playwright

    with class_of_two(app_model, tmp_path) as cls, sync_playwright() as p:
        assert set(cls.replicas) == {"r1", "r2"} and cls.haproxy_pid
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pages = [open_session(browser, cls.url) for _ in range(CONTEXTS)]
        on = [replica_of(page) for page in pages]
        assert set(on) == {"r1", "r2"}, on  # both replicas serve sessions

        generate_all(pages, round_=0)
        for name in ("r1", "r2"):  # a reload keeps its replica, and its view comes back
            i = on.index(name)
            reopened(pages[i])
            assert replica_of(pages[i]) == name
            expect(pages[i].get_by_role("textbox", name="Prompt")).to_have_value(prompt_of(i, 0))

        lost, kept = "r1", "r2"
        os.kill(cls.replicas[lost][1], signal.SIGKILL)
        for i, page in enumerate(pages):
            if on[i] == lost:  # its browsers come back on the live replica, with their view
                reopened(page)  # once: HAProxy answers it from the live replica
                assert replica_of(page) == kept
                expect(page.get_by_role("textbox", name="Prompt")).to_have_value(prompt_of(i, 0))
        generate_all(pages, round_=1)  # and every browser generates again
        assert [replica_of(page) for page in pages] == [kept] * CONTEXTS
        browser.close()

    assert cls.proc.returncode != 0 and any("stopped" in line for line in cls.lines)
    ours = [pid for _, pid in cls.replicas.values()] + [cls.haproxy_pid]
    assert not [pid for pid in ours if alive(pid)]
    for port, _ in cls.replicas.values():  # no stray streamlit or haproxy of this class
        assert subprocess.run(["pgrep", "-f", f"streamlit run .*--server.port {port} "]).returncode == 1
    assert subprocess.run(["pgrep", "-f", f"haproxy .*{tmp_path}"]).returncode == 1
