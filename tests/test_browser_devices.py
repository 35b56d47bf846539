"""Tablets and phones, in headless Chromium: a phone (390×844, mobile, touch) and a tablet
(820×1180, touch), each after a short generation, on every page. Nothing scrolls sideways, no
figure text lies outside its figure or over another text, no figure is cut by its element,
Plotly's toolbar covers no title, no button label is cut short with "…", the tablet's sidebar is
folded, and the share link's copy button shows without a pointer over it.

Screenshots go to test-artifacts/screenshots/device-* (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import SHOTS, browser, generate, requests_elsewhere, server  # noqa: F401
from tests.test_browser_presenter import SHORT, misplaced, settled

pytestmark = pytest.mark.browser

# name, and the browser context's options
DEVICES = (
    ("phone", dict(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                   device_scale_factor=2)),
    ("tablet", dict(viewport={"width": 820, "height": 1180}, has_touch=True)),
)
PAGES = ("Lesson", "Attention", "Q · K · V", "MLP", "Inside a step", "Why this token?", "Patching")
FOLDED = "[data-testid='stSidebar'][data-collapsed='true']"
OPEN = "[data-testid='stSidebar'][data-collapsed='false']"

# The page's widths: the document and Streamlit's scrolling containers, each scrolled sideways or not.
OVERFLOW = """() => [document.scrollingElement, ...document.querySelectorAll(
    '[data-testid=stMain], [data-testid=stAppViewContainer], [data-testid=stMainBlockContainer]')]
  .filter(e => e.scrollWidth > Math.max(e.clientWidth, window.innerWidth) + 1)
  .map(e => `${e.getAttribute('data-testid') || e.tagName}: ${e.scrollWidth} > ${e.clientWidth}`)"""

# Every figure's toolbar (where it is drawn: shown all the time on a touch screen, else on hover)
# against the figure's title lines and subplot titles.
TOOLBAR_OVER_TITLES = """() => {
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
                     && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const found = [];
  document.querySelectorAll('[data-testid=stPlotlyChart]').forEach(chart => {
    const bar = chart.querySelector('.modebar');
    if (!bar || !bar.getBoundingClientRect().width) return;
    const box = bar.getBoundingClientRect();
    chart.querySelectorAll('.gtitle, .annotation-text').forEach(title => {
      if (hit(box, title.getBoundingClientRect())) found.push(title.textContent.slice(0, 60));
    });
  });
  return found;
}"""

# Figures drawn larger than the element that holds them (Streamlit's element hides what sticks out).
CLIPPED_FIGURES = """() => [...document.querySelectorAll('[data-testid=stPlotlyChart]')].flatMap(chart => {
  const svg = chart.querySelector('.svg-container'), title = chart.querySelector('.gtitle');
  if (!svg) return [];
  const outer = chart.getBoundingClientRect(), inner = svg.getBoundingClientRect();
  return inner.height > outer.height + 1 || inner.width > outer.width + 1
    ? [`${(title || {}).textContent || 'a figure'}: ${inner.width}×${inner.height}`
       + ` in ${outer.width}×${outer.height}`]
    : [];
})"""

# Labels of buttons (and of the page's widgets) drawn with an ellipsis (cut), among those shown.
CUT_LABELS = """() => [...document.querySelectorAll('button'), document.querySelector('[data-testid=stMain]')]
  .filter(b => b.getBoundingClientRect().width > 0)
  .flatMap(b => [...b.querySelectorAll('p, [data-testid=stMarkdownContainer]')])
  .filter(p => p.getBoundingClientRect().width > 0 && p.scrollWidth > p.clientWidth + 1)
  .map(p => p.textContent.trim())"""


def open_device(browser, url: str, options: dict):  # noqa: F811
    context = browser.new_context(**options)
    page = context.new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Prompt").wait_for(timeout=180_000)  # the Generate page's first run
    page.get_by_text(re.compile("for one step, or|Stopped after")).first.wait_for(timeout=180_000)
    page.requests, page.dialogs = requests, dialogs
    return context, page


def open_page(page, title: str) -> None:
    """Open a page from the folded sidebar: unfold it, follow the link, wait for the page's run."""
    page.locator("[data-testid='stExpandSidebarButton']").click()
    page.locator(OPEN).wait_for(state="attached", timeout=10_000)  # the sidebar, unfolded
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    heading = "Lesson: how GPT-2 works" if title == "Lesson" else title
    page.get_by_role("heading", name=heading).wait_for(timeout=180_000)  # the page's title, drawn
    page.locator(FOLDED).wait_for(state="attached", timeout=10_000)  # and the sidebar, folded again
    settled(page)


def check(page, where: str) -> list[str]:
    """Every problem this page shows, named with `where`."""
    page.mouse.move(0, 0)
    problems = [f"{where}: {p}" for p in misplaced(page)]
    problems += [f"{where}: scrolls sideways: {p}" for p in page.evaluate(OVERFLOW)]
    problems += [f"{where}: the toolbar covers {t!r}" for t in page.evaluate(TOOLBAR_OVER_TITLES)]
    problems += [f"{where}: label cut: {t!r}" for t in page.evaluate(CUT_LABELS)]
    problems += [f"{where}: figure cut: {t}" for t in page.evaluate(CLIPPED_FIGURES)]
    return problems


def shoot(page, name: str) -> None:
    """The whole page (the window made as tall as the page for it: Streamlit scrolls inside it)."""
    size = page.viewport_size
    tall = page.evaluate("() => document.querySelector('[data-testid=stMainBlockContainer]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(tall + 200, 12_000))})
    page.wait_for_timeout(500)  # the charts follow the window
    page.screenshot(path=str(SHOTS / f"device-{name}.png"))
    page.set_viewport_size(size)
    page.wait_for_timeout(300)


def copy_button_problems(page, where: str) -> list[str]:
    """The share link's copy button, in the sidebar's "Share this view": shown without a pointer
    over the link (a touch screen has none)."""
    page.locator("[data-testid='stExpandSidebarButton']").click()
    page.locator(OPEN).wait_for(state="attached", timeout=10_000)  # the sidebar, unfolded
    page.get_by_role("button", name="Share this view").click()
    code = page.locator("[data-testid='stCode']").first
    code.wait_for(timeout=30_000)  # the link, in the popover
    page.mouse.move(0, 0)
    page.wait_for_timeout(400)  # any fade of the button ends
    button = code.locator("button").first
    shown = button.evaluate("""b => { const s = getComputedStyle(b), r = b.getBoundingClientRect();
        return s.visibility === 'visible' && +s.opacity > 0.9 && r.width > 0 && r.height > 0; }""")
    shoot(page, f"{where}-share")
    page.keyboard.press("Escape")  # the popover closes
    page.locator("[data-testid='stSidebarCollapseButton'] button").click(force=True)
    page.locator(FOLDED).wait_for(state="attached", timeout=10_000)  # the sidebar, folded
    return [] if shown else [f"{where}: the copy button is hidden until hovered"]


def test_phones_and_tablets_see_every_page_whole(server, browser):  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for device, options in DEVICES:
        context, page = open_device(browser, server, options)
        if device == "tablet":  # Streamlit folds it by itself only below 768 px
            page.locator(FOLDED).wait_for(state="attached", timeout=10_000)
        generate(page, SHORT, 3)
        settled(page)
        problems += check(page, f"{device} Generate")
        shoot(page, f"{device}-generate")
        problems += copy_button_problems(page, device)
        for title in PAGES:
            open_page(page, title)
            problems += check(page, f"{device} {title}")
            shoot(page, f"{device}-{re.sub(r'[^a-z]+', '-', title.lower()).strip('-')}")
        assert page.dialogs == [] and requests_elsewhere(page, server) == []
        context.close()
    assert problems == [], "\n".join(problems)
