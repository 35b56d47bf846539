"""A share link opened in a fresh browser shows the teacher's figures: the controls are changed in
the page as a person does, the link is read from the "Share this view" popover, and each figure's
data (every trace's x, y, z and text, and its title) is compared as Plotly holds it in the page.

tests/test_app_link_views.py changes every control of every page through AppTest; this file checks
the same promise end to end, in Chromium, on two pages.
"""

from __future__ import annotations

import json

import pytest

from bench.class_load import set_prompt
from tests.test_browser import browser, open_app, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

FIGURES = """() => Array.from(document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot"))
  .map(el => JSON.stringify({
    title: el.layout && el.layout.title ? el.layout.title.text : null,
    traces: el.data.map(t => ({x: t.x, y: t.y, z: t.z, text: t.text})),
  }))"""


def settled(page, charts: int) -> list[str]:
    """The page's figures once it has stopped running and shows at least `charts` of them."""
    status = page.locator("[data-testid='stStatusWidget']")
    last: list[str] = []
    for _ in range(240):
        page.wait_for_timeout(500)
        now = page.evaluate(FIGURES)
        if len(now) >= charts and now == last and status.count() == 0:
            return now
        last = now
    raise AssertionError(f"the page did not settle: {len(last)} figures")


def pick(page, label: str, option: str) -> None:
    """Choose `option` in the selectbox labelled `label`."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def share_link(page) -> str:
    page.get_by_role("button", name="Share this view").click()
    code = page.locator("[data-testid='stPopoverBody'] [data-testid='stCode'] code")
    code.wait_for(timeout=60_000)
    link = code.inner_text().strip()
    page.keyboard.press("Escape")
    return link


def same_figures_in_a_fresh_browser(browser, page, heading: str, charts: int) -> None:  # noqa: F811
    seen = settled(page, charts)
    link = share_link(page)
    fresh = browser.new_context(viewport={"width": 1400, "height": 3400}).new_page()
    fresh.goto(link, wait_until="domcontentloaded")
    fresh.get_by_role("heading", name=heading).wait_for(timeout=180_000)
    again = settled(fresh, len(seen))
    assert len(again) == len(seen)
    for index, (mine, theirs) in enumerate(zip(seen, again, strict=True)):
        assert json.loads(mine) == json.loads(theirs), (heading, index, link)
    fresh.close()


def test_the_example_on_the_attention_page(server, browser):  # noqa: F811
    """No Generate pressed: the teacher picks a head and the scores; the students see the same."""
    page = open_app(browser, server)
    page.get_by_role("link", name="Attention").click()
    page.get_by_role("heading", name="Attention").wait_for(timeout=180_000)
    pick(page, "Head", "1")
    page.get_by_text("scores (before softmax)").click()
    page.locator(".gtitle", has_text="Layer 0, head 1: attention scores").wait_for(timeout=180_000)
    same_figures_in_a_fresh_browser(browser, page, "Attention", charts=5)  # with the step's row
    page.close()


def test_a_sampled_generation_at_an_earlier_step_inside_a_step(server, browser):  # noqa: F811
    page = open_app(browser, server)
    set_prompt(page, "The cat sat on the mat because it was", 6)  # leaves the Sampling popover open
    page.get_by_text("Greedy (always the most likely token)").click()
    seed = page.get_by_label("Seed")
    seed.fill("7")
    seed.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Stopped after").first.wait_for(timeout=240_000)
    step = page.locator("[data-testid='stSlider']", has_text="Generation step").get_by_role("slider")
    step.focus()
    page.keyboard.press("Home")  # the first step
    page.locator(".gtitle", has_text="Step 1: candidates").wait_for(timeout=120_000)
    page.get_by_role("link", name="Inside a step").click()
    page.get_by_role("heading", name="Inside a step").wait_for(timeout=180_000)
    pick(page, "Layer", "1")
    page.locator(".gtitle", has_text="Layer 1: ln_1 normalises").wait_for(timeout=120_000)
    same_figures_in_a_fresh_browser(browser, page, "Inside a step", charts=10)
    page.close()


# Every page, each with a control changed in the page as a person does, after a sampled generation
# with an earlier step selected: (the page's link name, its heading, a change, the figures it draws).
def _pick_layer_1(page) -> None:
    pick(page, "Layer", "1")


def _third_card(page) -> None:
    for card in (2, 3):  # the third card draws a figure (the second, a token strip)
        page.get_by_role("button", name="Next").click()
        page.get_by_text(f"Card {card} of").wait_for(timeout=120_000)


def _patch_heads(page) -> None:
    pick(page, "Patch", "each head (z)")


EVERY_PAGE = [
    ("Generate", "Generate", None, 1),
    ("Lesson", "Lesson: how GPT-2 works", _third_card, 1),
    ("Attention", "Attention", _pick_layer_1, 5),
    ("Q · K · V", "Q · K · V", _pick_layer_1, 6),
    ("MLP", "MLP", _pick_layer_1, 1),
    ("Inside a step", "Inside a step", _pick_layer_1, 10),
    ("Why this token?", "Why this token?", _pick_layer_1, 4),
    ("Patching", "Patching", _patch_heads, 3),
]


@pytest.mark.parametrize(("link", "heading", "change", "charts"), EVERY_PAGE, ids=[p[0] for p in EVERY_PAGE])
def test_every_page_after_a_sampled_generation(server, browser, link, heading, change, charts):  # noqa: F811
    page = open_app(browser, server)
    set_prompt(page, "The cat sat on the mat because it was", 4)
    page.get_by_text("Greedy (always the most likely token)").click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Stopped after").first.wait_for(timeout=240_000)
    step = page.locator("[data-testid='stSlider']", has_text="Generation step").get_by_role("slider")
    step.focus()
    page.keyboard.press("Home")  # the first step: a fresh visit would select the last
    page.locator(".gtitle", has_text="Step 1: candidates").wait_for(timeout=120_000)
    if link != "Generate":
        page.get_by_role("link", name=link).click()
        page.get_by_role("heading", name=heading).first.wait_for(timeout=180_000)
    if change is not None:
        change(page)
    same_figures_in_a_fresh_browser(browser, page, heading, charts)
    page.close()
