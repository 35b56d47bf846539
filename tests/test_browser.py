"""The real app in headless Chromium: type a prompt, Generate, see heatmaps on every page.

Screenshots go to test-artifacts/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.class_load import ARGS, served, set_prompt
from bench.class_load import CHROMIUM as CHROMIUM_PATH
from gpt2viz.loading import MODEL_ENV
from tests.app_support import ROOT

pytestmark = pytest.mark.browser
CHROMIUM = Path(CHROMIUM_PATH)
SHOTS = ROOT / "test-artifacts" / "screenshots"
PAGES = ("Attention", "Q · K · V", "MLP", "Inside a step", "Why this token?")


@pytest.fixture(scope="module")
def server(app_model: str) -> Iterator[str]:
    log = ROOT / "test-artifacts" / "streamlit.log" if (ROOT / "test-artifacts").is_dir() else None
    with served(app_model, log) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def open_app(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 3400})
    dialogs: list[str] = []
    requests: list[str] = []  # every URL the page asks for, to prove it loads nothing from elsewhere
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Prompt").wait_for(timeout=180_000)
    # the first run has finished (the hint, or the finished example a new session opens on, is
    # near its end): typing earlier can race with it
    page.get_by_text(re.compile("for one step, or|Stopped after")).first.wait_for(timeout=180_000)
    page.dialogs, page.requests = dialogs, requests
    return page


def open_link(browser, url: str, ready: str):
    """A fresh browser (its own context: no session, no cookies) opened on a share link; waits for
    `ready`, a text the linked view shows once its page has run."""
    page = browser.new_page(viewport={"width": 1400, "height": 3400})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text(ready).first.wait_for(timeout=180_000)
    page.dialogs = dialogs
    return page


def requests_elsewhere(page, server: str) -> list[str]:
    """The URLs the page asked for from any host but the app's own (data: and blob: are local)."""
    host = server.split("/")[2]
    return [u for u in page.requests if not u.startswith(("data:", "blob:")) and u.split("/")[2] != host]


def generate(page, prompt: str, tokens: int) -> None:
    from playwright.sync_api import expect  # imported where used, as in `browser`

    set_prompt(page, prompt, tokens)
    page.wait_for_timeout(500)
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value(prompt)  # not reset by a rerun
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text(f"Stopped after {tokens} new tokens").wait_for(timeout=240_000)


def drawn(page, css: str) -> bool:
    """True when some element matching `css` is visible with a nonzero size."""
    loc = page.locator(css)
    loc.first.wait_for(state="visible", timeout=180_000)
    for i in range(loc.count()):
        box = loc.nth(i).bounding_box()
        if box and box["width"] > 10 and box["height"] > 10:
            return True
    return False


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no tooltip in the picture
    page.wait_for_timeout(800)  # let plotly finish its transitions
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_generate_then_every_page_draws_its_heatmaps(server, browser):
    page = open_app(browser, server)
    generate(page, "I love the color black, I hope someday to have a cat like that.", 8)
    assert drawn(page, "[data-testid='stPlotlyChart'] .main-svg")
    assert page.locator(".tok-gen").count() == 8
    shoot(page, "1-generate")
    for title in PAGES:
        page.get_by_role("link", name=title).click()
        page.get_by_role("heading", name=title).wait_for(timeout=180_000)
        assert drawn(page, "[data-testid='stPlotlyChart'] .heatmaplayer image")
        shoot(page, "2-" + title.replace(" · ", "").lower())
    assert page.dialogs == []
    # Offline-proof: every request (fonts, icons, scripts, the favicon) went to the app's own host.
    assert len(page.requests) > 20 and requests_elsewhere(page, server) == []
    page.close()


def test_html_prompt_renders_literally(server, browser):
    from playwright.sync_api import expect

    page = open_app(browser, server)
    attack = "<script>alert(1)</script><b>x</b>"
    generate(page, attack, 2)
    strip = page.locator(".tok-strip")
    # each of GPT-2's 15 tokens of the attack shown as its literal text in its own box (no spaces
    # in it, so nothing is drawn as ·), and together the prompt itself
    shown = ["<", "script", ">", "alert", "(", "1", ")</", "script", "><", "b", ">", "x", "</", "b", ">"]
    assert "".join(shown) == attack
    expect(strip.locator(".tok-prompt")).to_have_text(shown, use_inner_text=True)
    expect(strip.locator(".tok-gen")).to_have_count(2)
    assert strip.inner_text().startswith(attack)
    assert strip.locator("script, b").count() == 0
    assert page.dialogs == []
    shoot(page, "3-html-prompt")
    page.close()


def test_two_browser_sessions_at_once(server, browser):
    pages = [open_app(browser, server) for _ in range(2)]
    prompts = ["The cats purr softly on warm", "The ships sail across the stormy"]
    for page, prompt in zip(pages, prompts, strict=True):
        page.get_by_role("textbox", name="Prompt").fill(prompt)
        page.get_by_role("textbox", name="Prompt").press("Control+Enter")
    for page in pages:  # start both generations before waiting for either
        page.get_by_role("button", name="Generate", exact=True).click()
    for page, word in zip(pages, ("cats", "ships"), strict=True):  # each session's own generation
        page.get_by_text(re.compile(r"Stopped after \d+ new tokens")).wait_for(timeout=240_000)
        page.locator(".tok-strip", has_text=word).wait_for(timeout=240_000)
    first, second = (p.locator(".tok-strip").inner_text() for p in pages)
    assert "cats" in first and "ships" not in first
    assert "ships" in second and "cats" not in second
    for page in pages:
        page.close()


def test_long_prompt_attention_stays_readable(server, browser):
    page = open_app(browser, server)
    words = ("the quick brown fox jumps over the lazy dog while a cat watches from the window and "
             "nobody moves at all ").split()
    generate(page, " ".join(words[i % len(words)] for i in range(190)), 2)
    page.get_by_role("link", name="Attention").click()
    page.get_by_role("heading", name="Attention").wait_for(timeout=180_000)
    assert drawn(page, "[data-testid='stPlotlyChart'] .heatmaplayer image")
    page.get_by_text("the red box is the zoom window").wait_for(timeout=60_000)  # past 128 tokens
    shoot(page, "4-attention-long-prompt")
    charts = page.locator("[data-testid='stPlotlyChart']")
    overview, window = charts.nth(1), charts.nth(2)  # after the head grid
    assert "all 192 tokens" in overview.locator(".gtitle").text_content()
    assert "(queries 128–191, keys 128–191)" in window.locator(".gtitle").text_content()
    labels = window.locator(".xaxislayer-above .xtick text")
    assert 0 < labels.count() <= 30
    page.close()


def test_clicking_a_head_in_the_grid_selects_it(server, browser):
    page = open_app(browser, server)
    generate(page, "The cat sat on the mat because it was warm", 2)
    page.get_by_role("link", name="Attention").click()
    page.get_by_text("Layer 0, head 0: attention pattern").wait_for(timeout=180_000)
    points = page.locator("[data-testid='stPlotlyChart']").first.locator(".scatterlayer .point")
    last = points.count() - 1  # the last layer's last head
    box = points.nth(last).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    picked = re.compile(r"Layer [1-9]\d*, head [1-9]\d*: attention pattern")
    page.get_by_text(picked).wait_for(timeout=180_000)
    shoot(page, "5-attention-head-clicked")
    page.close()


def test_why_page_clicking_a_head_in_the_attribution_selects_it(server, browser):
    page = open_app(browser, server)
    generate(page, "The cat sat on the mat because it was warm", 3)
    page.get_by_role("link", name="Why this token?").click()
    page.get_by_text("Each head's direct push").wait_for(timeout=180_000)
    assert drawn(page, "[data-testid='stPlotlyChart'] .heatmaplayer image")
    shoot(page, "6-why-this-token")
    points = page.locator("[data-testid='stPlotlyChart']").first.locator(".scatterlayer .point")
    last = points.count() - 1  # the last layer's last head
    box = points.nth(last).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    picked = re.compile(r"With head [1-9]\d*\.[1-9]\d* set to zero")
    page.get_by_text(picked).first.wait_for(timeout=180_000)
    assert page.dialogs == []
    page.close()


def test_downloads_of_the_generation_and_its_trace(server, browser, tmp_path):
    """The JSON names every token; the trace loads with load_trace and equals a fresh recording."""
    import json

    import torch

    import gpt2viz

    page = open_app(browser, server)
    generate(page, "The cat sat on the mat because it was warm", 3)
    with page.expect_download() as got:
        page.get_by_role("button", name="Download the generation (JSON)").click()
    saved = json.loads(Path(got.value.path()).read_text())
    tok = gpt2viz.load_tokenizer()
    assert saved["prompt"] == "The cat sat on the mat because it was warm" and len(saved["steps"]) == 3
    assert saved["tokens"] == tok.token_texts(saved["ids"])
    assert saved["prompt_ids"] == tok.encode(saved["prompt"])
    with page.expect_download() as got:
        page.get_by_role("button", name="Download the recording (trace)").click()
    trace = gpt2viz.load_trace(got.value.path())
    fresh = gpt2viz.load_model(os.environ[MODEL_ENV], device="cpu").run_with_capture(saved["ids"])
    assert trace.ids == saved["ids"] and trace.names() == fresh.names() and trace.config == fresh.config
    torch.testing.assert_close(trace.logits, fresh.logits, atol=1e-4, rtol=0)
    for name in fresh.names():
        torch.testing.assert_close(trace[name], fresh[name], atol=1e-4, rtol=0)
    assert page.dialogs == []
    page.close()


def test_a_share_link_opens_the_same_view(server, browser):
    """A link to the Attention page, built as the app builds it, opened in a new browser: the same
    prompt's tokens, layer, head and step, and the same link in the sidebar to share on."""
    from urllib.parse import parse_qs, urlsplit

    from playwright.sync_api import expect

    import gpt2viz
    from app.link_params import link_for, to_params
    from gpt2viz.viz.tokens import token_labels

    prompt = "The cat sat on the mat because it was warm"
    url = link_for(server + "/attention", to_params({"prompt": prompt, "layer": 1, "head": 2, "tokens": 2}))
    page = open_link(browser, url, "Layer 1, head 2: attention pattern")
    page.get_by_role("heading", name="Attention").wait_for(timeout=180_000)
    assert drawn(page, "[data-testid='stPlotlyChart'] .heatmaplayer image")
    # the big heatmap's key axis: the prompt's tokens, then the two generated ones
    ticks = page.locator("[data-testid='stPlotlyChart']").nth(1).locator(".xaxislayer-above .xtick text")
    labels = token_labels(gpt2viz.load_tokenizer().token_texts(gpt2viz.load_tokenizer().encode(prompt)))
    shown = ticks.all_text_contents()
    assert shown[: len(labels)] == labels and len(shown) == len(labels) + 2
    page.get_by_text(re.compile(r"^Step 2: query ")).first.wait_for(timeout=60_000)  # the step's row
    page.get_by_role("button", name="Share this view").click()  # a popover: the link shows on opening
    expect(page.locator("[data-testid='stPopoverBody'] [data-testid='stCode']")).to_have_text(url)
    assert parse_qs(urlsplit(page.url).query) == parse_qs(urlsplit(url).query)  # the address kept
    shoot(page, "7-attention-from-a-link")
    assert page.dialogs == []
    page.close()


def test_walk_the_lesson_and_download_a_figure_as_html(server, browser):
    page = open_app(browser, server)
    page.get_by_role("link", name="Lesson").click()
    page.get_by_text("Card 1 of 14").wait_for(timeout=180_000)
    for card in range(2, 15):
        page.get_by_role("button", name="Next").click()
        page.get_by_text(f"Card {card} of 14").wait_for(timeout=180_000)
    assert page.get_by_role("button", name="Next").is_disabled()
    shoot(page, "7-lesson-last-card")
    for card in (13, 12):  # back to the temperature card, which draws a figure
        page.get_by_role("button", name="Previous").click()
        page.get_by_text(f"Card {card} of 14").wait_for(timeout=180_000)
    # the card's last element: the run has drawn the new figure and its button, not the old ones
    page.get_by_text("See it: the Inside a step page").wait_for(timeout=180_000)
    with page.expect_download() as got:
        page.get_by_role("button", name="⤓ HTML").first.click()
    html = Path(got.value.path()).read_text()
    assert html.startswith("<!doctype html>") and "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js inside: it opens offline
    assert requests_elsewhere(page, server) == []
    assert page.dialogs == []
    page.close()
