"""Figures as a class sees them, in headless Chromium: a downloaded figure opened from disk, and
presenter view on every page at 1280×720 and 1920×1080, at ~30 and ~480 tokens (gpt2viz-mini's
context is 512). No text of a figure may lie outside its SVG or over another text.

Screenshots go to test-artifacts/screenshots/presenter-* (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_browser import SHOTS, browser, generate, open_app, requests_elsewhere, server  # noqa: F401

pytestmark = pytest.mark.browser

SIZES = ((1280, 720), (1920, 1080))
FOLDED = "[data-testid='stSidebar'][data-collapsed='true']"
PAGES = (("Attention", "attention"), ("Q · K · V", "qkv"), ("MLP", "mlp"), ("Inside a step", "step"),
         ("Why this token?", "why"))
# the likeliest next tokens (bars), the two masks (side by side), the temperatures (a legend)
LESSON_CARDS = (1, 7, 12)
SHORT = "The cat sat on the mat because it was warm, and the dog watched it from the door."
PARAGRAPH = ("The quick brown fox jumps over the lazy dog while a cat watches from the window. Nobody moves "
             "at all, and the afternoon light falls slowly across the old wooden floor. ")
LONG = PARAGRAPH * 14  # 477 tokens, and 4 new ones: most of gpt2viz-mini's context of 512

# For every figure on the page: each text element's own box (shrunk by `tol` px: glyph boxes
# include the line's spacing) through its transform, as four corners on screen; the texts that
# leave their figure's frame, and the pairs that overlap (separating axis test: slanted labels
# are slanted boxes, not their upright bounding rectangles).
FIGURE_TEXTS = """(tol) => {
  const SEL = ".xtick text, .ytick text, .gtitle, .g-xtitle text, .g-ytitle text, .annotation-text, "
            + ".legendtext, .cbtitle text";
  const TITLES = ["gtitle", "g-xtitle", "g-ytitle", "g-x2title", "g-y2title", "g-x3title", "g-y3title"];
  return [...document.querySelectorAll(".svg-container")].map((box, n) => {
    const frame = box.getBoundingClientRect();
    const texts = [];
    box.querySelectorAll(SEL).forEach(el => {
      const text = el.textContent.trim();
      if (!text || el.closest("[display='none']")) return;
      const b = el.getBBox();
      if (b.width === 0 || b.height === 0) return;
      const m = el.getScreenCTM(), s = Math.min(tol, b.height / 4, b.width / 4);
      const [x0, y0, x1, y1] = [b.x + s, b.y + s, b.x + b.width - s, b.y + b.height - s];
      const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
        .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
      const group = el.closest("g[class]");
      const title = el.classList.contains("gtitle") || TITLES.some(c => group && group.classList.contains(c));
      texts.push({text, title, corners});
    });
    const normals = c => [0, 1].map(i => [c[i][1] - c[i + 1][1], c[i + 1][0] - c[i][0]]);
    const apart = (p, q) => normals(p).concat(normals(q)).some(([ax, ay]) => {
      const a = p.map(([x, y]) => x * ax + y * ay), b = q.map(([x, y]) => x * ax + y * ay);
      return Math.max(...a) <= Math.min(...b) || Math.max(...b) <= Math.min(...a);
    });
    const overlaps = [];
    for (let i = 0; i < texts.length; i++)
      for (let j = i + 1; j < texts.length; j++)
        if (!apart(texts[i].corners, texts[j].corners))
          overlaps.push({pair: [texts[i].text, texts[j].text], title: texts[i].title || texts[j].title});
    const out = ([x, y]) => x < frame.left - 1 || x > frame.right + 1
                         || y < frame.top - 1 || y > frame.bottom + 1;
    const outside = texts.filter(t => t.corners.some(out)).map(t => t.text);
    const name = (box.querySelector(".gtitle") || {}).textContent || `figure ${n + 1}`;
    return {name: name.slice(0, 50), texts: texts.length, outside, overlaps};
  });
}"""


def figure_texts(page) -> list[dict]:
    return page.evaluate(FIGURE_TEXTS, 2)


def misplaced(page, only_titles: bool = False) -> list[str]:
    """Every figure text on the page outside its figure, or over another text (or, with
    `only_titles`, another text over a title or axis title)."""
    found = []
    for figure in figure_texts(page):
        assert figure["texts"] > 0, figure
        found += [f"{figure['name']}: {text!r} outside" for text in figure["outside"]]
        found += [f"{figure['name']}: {o['pair']} overlap" for o in figure["overlaps"]
                  if o["title"] or not only_titles]
    return found


def settled(page) -> None:
    """The run has ended and every chart is drawn."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " && !document.querySelector('[data-stale=true]')"
        " && [...document.querySelectorAll('[data-testid=stPlotlyChart]')]"
        "    .every(c => c.querySelector('.main-svg'))",
        timeout=180_000)
    page.wait_for_timeout(600)  # Plotly's last relayout


def test_a_downloaded_figure_opens_from_disk_as_the_page_shows_it(server, browser, tmp_path):  # noqa: F811
    """The Attention heatmap's "⤓ HTML" file, opened from disk with no server: Plotly inline,
    nothing loaded from elsewhere, no theme placeholder colour, every label inside the figure and
    no axis title over a label."""
    page = open_app(browser, server)
    generate(page, SHORT, 4)
    page.get_by_role("link", name="Attention").click()
    page.get_by_text("Layer 0, head 0: attention pattern").wait_for(timeout=180_000)
    settled(page)
    with page.expect_download() as got:
        page.locator(".st-key-attention_heatmap-html button").first.click()
    saved = tmp_path / "gpt2viz-attention_heatmap.html"
    Path(got.value.path()).replace(saved)
    page.close()
    html = saved.read_text()
    assert not re.search(r"#0000[0-4]\d\b", html.split("Plotly.newPlot(")[-1])
    opened = browser.new_page(viewport={"width": 1000, "height": 800})
    requests: list[str] = []
    opened.on("request", lambda r: requests.append(r.url))
    opened.goto(saved.as_uri())
    opened.locator(".heatmaplayer image").wait_for(timeout=30_000)
    opened.wait_for_timeout(500)
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    (figure,) = figure_texts(opened)
    assert figure["texts"] > 20 and figure["name"].startswith("Layer 0, head 0: attention pattern")
    assert misplaced(opened, only_titles=True) == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(SHOTS / "presenter-export-opened-from-disk.png"))
    opened.close()


def look(page, name: str) -> list[str]:
    """At each screen size: the figures checked, and two screenshots, the screen a class sees and
    the whole page (the window made as tall as the page: Streamlit scrolls inside it)."""
    found = []
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        tall = 0
        for _ in range(3):  # until the page's height settles at this width
            page.wait_for_timeout(600)  # the charts follow the window's width
            now = page.evaluate("() => document.querySelector('[data-testid=stMainBlockContainer]')"
                                ".scrollHeight")
            if now == tall:
                break
            tall = now
            page.set_viewport_size({"width": width, "height": max(height, tall + 100)})
        page.mouse.move(0, 0)
        found += [f"{name} at {width}×{height}: {problem}" for problem in misplaced(page)]
        page.screenshot(path=str(SHOTS / f"presenter-{name}-{width}.png"),
                        clip={"x": 0, "y": 0, "width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"presenter-{name}-{width}-whole.png"))
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[0], strict=True)))
    return found


def open_page(page, title: str) -> None:
    """Open a page from the folded sidebar, as a presenter does; it folds again."""
    page.locator("[data-testid='stExpandSidebarButton']").click()
    page.get_by_role("link", name=title, exact=True).click()
    ready = page.get_by_text("Card 1 of 14") if title == "Lesson" else page.get_by_role("heading", name=title)
    ready.wait_for(timeout=180_000)
    page.locator(FOLDED).wait_for(state="attached", timeout=10_000)
    settled(page)


def card_in_view(page) -> None:
    """The card's title and figure within the 1280×720 screen, the page not scrolled."""
    title = page.locator("h3").first.bounding_box()
    assert title is not None and 0 < title["y"] < 250, title
    for chart in page.locator("[data-testid='stPlotlyChart']").all():
        box = chart.bounding_box()
        assert box["y"] + box["height"] <= SIZES[0][1], box
    scrolled = page.evaluate("() => [document.scrollingElement, ...document.querySelectorAll("
                             "'[data-testid=stMain], [data-testid=stAppViewContainer]')]"
                             ".map(e => e.scrollTop)")
    assert not any(scrolled), scrolled


@pytest.mark.parametrize(("length", "prompt", "new"), [("short", SHORT, 4), ("long", LONG, 4)],
                         ids=["short", "long"])
def test_presenter_view_fits_every_page(server, browser, length, prompt, new):  # noqa: F811
    """Presenter view switched on from the Generate page's sidebar: the sidebar folds, and stays
    folded as pages open; on every page and three lesson cards, at both screen sizes, no figure
    text is clipped or overlaps another; the arrow keys move between cards without a scroll."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_app(browser, server)
    page.set_viewport_size(dict(zip(("width", "height"), SIZES[0], strict=True)))
    generate(page, prompt, new)
    page.get_by_text("Presenter view").click()
    page.locator(FOLDED).wait_for(state="attached", timeout=30_000)
    settled(page)
    problems = look(page, f"{length}-generate")
    open_page(page, "Lesson")
    card = 1
    for wanted in LESSON_CARDS:
        while card < wanted:
            page.keyboard.press("ArrowRight")  # a presenter's clicker
            card += 1
            page.get_by_text(f"Card {card} of 14").wait_for(timeout=60_000)
        settled(page)
        card_in_view(page)
        problems += look(page, f"{length}-lesson-card-{card}")
    for title, name in PAGES:
        open_page(page, title)
        problems += look(page, f"{length}-{name}")
    assert problems == []
    assert page.dialogs == [] and requests_elsewhere(page, server) == []
    page.close()
