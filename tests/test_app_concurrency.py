"""Two sessions at once, each with its own prompt, see only their own tokens and heatmaps.

AppTest keeps process-global state while a script runs (Runtime._instance, the pages manager),
so two AppTests cannot execute scripts at the same instant; their runs are serialised by a
lock and interleaved step by step between two live sessions. The browser test drives two real
sessions of one server truly in parallel.
"""

import threading

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_support import (
    ATTENTION,
    figure,
    generate,
    new_app,
    session_generation,
    strip_html,
)

pytestmark = pytest.mark.usefixtures("app_model")


def test_two_sessions_in_threads_keep_their_own_tokens(monkeypatch):
    lock = threading.Lock()
    real_run = AppTest._run

    def one_script_at_a_time(self, *args, **kwargs):
        with lock:
            return real_run(self, *args, **kwargs)

    monkeypatch.setattr(AppTest, "_run", one_script_at_a_time)
    prompts = {"cats": "The cats purr softly on warm", "ships": "The ships sail across the stormy"}
    results: dict[str, tuple[str, list[str], list[int]]] = {}
    errors: list[BaseException] = []
    turn = threading.Barrier(len(prompts))  # both sessions finish each step before the next

    def session(name: str, prompt: str) -> None:
        try:
            at = new_app()
            turn.wait(timeout=120)
            generate(at, prompt, max_new_tokens=3)
            turn.wait(timeout=120)
            html = strip_html(at)
            ids = session_generation(at).ids
            at.switch_page(ATTENTION).run()
            assert not at.exception, at.exception
            turn.wait(timeout=120)
            results[name] = (html, figure(at, "attention_heatmap")["data"][0]["x"], ids)
        except BaseException as err:  # reported by the main thread
            turn.abort()
            errors.append(err)

    threads = [threading.Thread(target=session, args=item) for item in prompts.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    cats_html, cats_labels, cats_ids = results["cats"]
    ships_html, ships_labels, ships_ids = results["ships"]
    assert "·cats" in cats_html and "·ships" not in cats_html
    assert "·ships" in ships_html and "·cats" not in ships_html
    assert any("·cats" in label for label in cats_labels) and not any("·ships" in x for x in cats_labels)
    assert any("·ships" in label for label in ships_labels) and not any("·cats" in x for x in ships_labels)
    assert len(cats_labels) == len(cats_ids) and len(ships_labels) == len(ships_ids)
