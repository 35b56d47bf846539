"""A few browser sessions generate at once on one `streamlit run` process (bench/class_load.py
runs twenty and prints the timings): each sees only its own tokens, and the server's health
endpoint answers every probe throughout."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.class_load import CHROMIUM, WORDS, run_class, served

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("app_model")]
SESSIONS = 3


def test_sessions_generating_at_once_each_see_their_own_tokens(app_model: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`)")
    with served(app_model) as (url, proc):
        run = run_class(url, proc, SESSIONS, tokens=6, timeout=600)
    for i, strip in enumerate(run.strips):
        own, others = WORDS[i], [w for j, w in enumerate(WORDS[:SESSIONS]) if j != i]
        assert own in strip and not any(w in strip for w in others), (i, strip)
    assert run.health and all(latency is not None for latency in run.health)  # never unanswered
    # a bound far above the bench's 1 s target, far below the 30 s a probe may wait: a server
    # that stalls for seconds (as twenty sessions once made it) fails here
    assert max(run.health) < 5.0
