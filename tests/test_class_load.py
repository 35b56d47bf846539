"""A few sessions generate at once on one `streamlit run` process (bench/class_load.py runs
twenty and prints the timings), played by browsers or by thin clients (bench/thin_client.py):
each sees only its own tokens, as many as it asked for, and the server's health endpoint answers
every probe throughout. The bench's probe runs at the priority it reports."""

from __future__ import annotations

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import streamlit

from bench.class_load import CHROMIUM, PROBE_NICE, WORDS, ClassRun, HealthProbe, run_class, served
from bench.thin_client import ThinClient, check_streamlit_version

SESSIONS = 3
TOKENS = 6  # not the default 20: a session that did not ask for its own number writes 20
WROTE_THEM = f"Stopped after {TOKENS} new tokens: the number of new tokens asked for is reached"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/_stcore/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the probe's priority in /proc")
def test_the_probe_runs_at_the_priority_it_reports_and_times_every_answer() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probe = HealthProbe(f"http://127.0.0.1:{server.server_address[1]}", every=0.05)
    try:
        probe.start()
        with open(f"/proc/{probe.process.pid}/stat") as stat:
            probe_nice = int(stat.read().rsplit(")", 1)[1].split()[16])
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert probe_nice == (max(-20, mine + PROBE_NICE) if probe.prioritised else mine)
        if os.geteuid() == 0:  # root may raise it (others only with CAP_SYS_NICE or RLIMIT_NICE)
            assert probe.prioritised
        threading.Event().wait(0.5)
        probe.stop()
    finally:
        server.shutdown()
    assert len(probe.latencies) >= 3 and all(0 < x < 5 for x in probe.latencies)


def check_class(run: ClassRun) -> None:
    """Each session's strip holds its own prompt and no other's, and it wrote the tokens it asked
    for; the health endpoint answered every probe, well within the bound below."""
    for i, (strip, stop) in enumerate(zip(run.strips, run.stops, strict=True)):
        own, others = WORDS[i], [w for j, w in enumerate(WORDS[:SESSIONS]) if j != i]
        assert own in strip and not any(w in strip for w in others), (i, strip)
        assert stop.startswith(WROTE_THEM), (i, stop)
    assert len(run.generate_to_chart) == SESSIONS and all(t > 0 for t in run.generate_to_chart)
    assert run.health and all(latency is not None for latency in run.health)  # never unanswered
    # a bound far above the bench's 1 s target, far below the 30 s a probe may wait: a server
    # that stalls for seconds (as twenty sessions once made it) fails here
    assert max(run.health) < 5.0


@pytest.mark.browser
@pytest.mark.usefixtures("app_model")
def test_sessions_generating_at_once_each_see_their_own_tokens(app_model: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)")
    with served(app_model) as (url, proc):
        run = run_class(url, proc, SESSIONS, tokens=TOKENS, timeout=600)
    check_class(run)


@pytest.mark.slow
@pytest.mark.usefixtures("app_model")
def test_thin_clients_generating_at_once_each_see_their_own_tokens(app_model: str) -> None:
    with served(app_model) as (url, proc):
        run = run_class(url, proc, SESSIONS, tokens=TOKENS, timeout=600, clients="thin")
    check_class(run)
    assert run.clients_cpu_s is not None and run.clients_cpu_s < 1.0  # thin: next to nothing (~0.01 s)


def test_the_thin_client_refuses_a_streamlit_whose_protocol_it_does_not_speak() -> None:
    check_streamlit_version()  # the version requirements.txt pins
    check_streamlit_version("1.67.3")  # a patch release of it sends the same messages
    for other in ("1.68.0", "1.6.7", "2.0.0"):
        with pytest.raises(RuntimeError, match=rf"protocol of Streamlit 1\.67's frontend, and Streamlit "
                                               rf"{re.escape(other)} is installed"):
            check_streamlit_version(other)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(streamlit, "__version__", other)
            with pytest.raises(RuntimeError, match="PROTOCOL_OF"):
                ThinClient("http://127.0.0.1:1")
