"""Helpers for the app, viz and browser tests (plain functions, imported by test modules).

The fixtures these tests use (`app_checkpoint`, `app_model`) are in tests/conftest.py, where
pytest finds them without an import. The app runs on whatever `$GPT2VIZ_MODEL` names; if unset,
on the bundled model when assets/gpt2viz-mini exists, else on a small random checkpoint
(conftest's `tiny_model`) written to a temp folder.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import gpt2viz
from bench.local_servers import MISSING, redis_binary, redis_process
from gpt2viz.loading import MODEL_ENV
from gpt2viz.viz.tokens import visible_token

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
GENERATE = "app/pages/generate.py"
ATTENTION = "app/pages/attention.py"
QKV = "app/pages/qkv.py"
MLP = "app/pages/mlp.py"
INSIDE_STEP = "app/pages/inside_step.py"
WHY = "app/pages/why.py"
LESSON = "app/pages/lesson.py"
PATCHING = "app/pages/patching.py"
PAGES = (GENERATE, ATTENTION, QKV, MLP, INSIDE_STEP, WHY)  # the lesson has no prompt errors: it falls back


@functools.cache
def app_gpt2() -> gpt2viz.GPT2:
    """The model the app runs on, loaded apart from the app on the CPU (after the `app_model`
    fixture has set it), to recompute what the pages show."""
    return gpt2viz.load_model(os.environ[MODEL_ENV], device="cpu")


def app_config() -> gpt2viz.GPT2Config:
    """The config of the model the app runs on (after the `app_model` fixture has set it)."""
    return app_gpt2().config


def new_app(page: str = GENERATE) -> AppTest:
    """A fresh session of the app, already run once on `page`."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    if page != GENERATE:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def generate(at: AppTest, prompt: str, max_new_tokens: int = 4) -> AppTest:
    """Type `prompt`, set the number of new tokens and press Generate (on the Generate page)."""
    at.text_area(key="prompt").input(prompt)
    at.number_input(key="max_new_tokens").set_value(max_new_tokens)
    at.button[1].click().run()  # [0] Next token, [1] Generate
    assert not at.exception, at.exception
    return at


def session_generation(at: AppTest) -> gpt2viz.Generation:
    """The session's generation (app.session keeps it with its serial number)."""
    return at.session_state["generation"].generation


def n_tokens(at: AppTest) -> int:
    """Prompt + generated tokens of the session's generation."""
    return len(session_generation(at).ids)


def assert_steps(at: AppTest, expected: int) -> None:
    """`expected` steps, or fewer when the model chose <|endoftext|> (a trained model may)."""
    steps = session_generation(at).steps
    assert len(steps) == expected or (
        len(steps) < expected and steps[-1].stop_reason == gpt2viz.STOP_ENDOFTEXT), len(steps)


def press_next(at: AppTest) -> AppTest:
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def _decode(node: Any) -> Any:
    """JSON figure spec with Plotly's base64 typed arrays turned into numpy arrays."""
    if isinstance(node, dict):
        if "bdata" in node and "dtype" in node:
            flat = np.frombuffer(base64.b64decode(node["bdata"]), dtype=node["dtype"])
            shape = [int(s) for s in str(node.get("shape", len(flat))).split(",")]
            return flat.reshape(shape)
        return {k: _decode(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decode(v) for v in node]
    return node


def figure(at: AppTest, key: str) -> dict:
    """The Plotly figure the app drew under `key`, as a dict (data, layout) with numpy arrays."""
    for element in at.get("plotly_chart"):
        if element.proto.id.endswith(f"-{key}"):
            return _decode(json.loads(element.proto.spec))
    raise AssertionError(f"No chart {key!r}; charts: {[e.proto.id for e in at.get('plotly_chart')]}")


def chart_keys(at: AppTest) -> list[str]:
    return [e.proto.id.rsplit("-", 1)[-1] for e in at.get("plotly_chart")]


def texts(at: AppTest, kind: str) -> list[str]:
    """Values of every element of one kind (error, warning, info, success, markdown, caption)."""
    return [str(e.value) for e in getattr(at, kind)]


def strip_html(at: AppTest) -> str:
    """The token strip's HTML on the Generate page."""
    found = [m for m in texts(at, "markdown") if "tok-strip" in m]
    assert found, "no token strip on the page"
    return found[-1]


def strip_spans(strip: str, kind: str) -> list[str]:
    """The inner HTML of each token box of one kind ("prompt" or "gen") in a token strip, in order."""
    return re.findall(rf'<span class="tok tok-{kind}[^"]*"[^>]*>(.*?)</span>', strip)


def escaped_tokens(texts: list[str]) -> list[str]:
    """What the strip must show for these token texts: each made visible, then HTML-escaped once."""
    return [html.escape(visible_token(t)) for t in texts]


def uniform_heatmap(n: int = 12, title: str = "Layer 0, head 0: attention pattern"):
    """An attention heatmap of `n` tokens, each attending evenly to those up to it."""
    from gpt2viz.viz.attention import AttentionMatrix, attention_heatmap_figure, future_mask
    from gpt2viz.viz.tokens import token_labels

    labels = token_labels([f"token{i}" for i in range(n)])
    masked = future_mask(n, n)
    values = np.where(masked, np.nan, np.tril(np.full((n, n), 1 / n, np.float32)))
    return attention_heatmap_figure(AttentionMatrix(values, masked, labels, labels, "pattern", title))


@contextmanager
def redis_server(port: int, wait_s: float = 10.0) -> Iterator[subprocess.Popen]:
    """Debian's redis-server on 127.0.0.1:`port` (bench/local_servers.py); fails the test (does not
    skip it) when redis-server is not installed."""
    if redis_binary() is None:
        pytest.fail(MISSING)
    with redis_process(port, wait_s) as proc:
        yield proc
