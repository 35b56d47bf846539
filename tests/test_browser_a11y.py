"""WCAG 2.1 AA on every page of the real app, checked by axe-core in headless Chromium.

axe-core comes from the `axe-playwright-python` package (pinned in requirements-test.txt), which
puts its bundled `axe.min.js` into the page with `page.evaluate`: nothing is fetched, and the test
checks that the page asked no other host for anything. The pages are checked after a short
generation, so each one has drawn its figures; any violation of impact critical or serious of the
WCAG 2.0/2.1 A and AA rules fails the test, with every element named.
"""

from __future__ import annotations

import pytest

from tests.test_browser import browser, generate, open_app, requests_elsewhere, server  # noqa: F401

pytestmark = pytest.mark.browser

PAGES = ("Generate", "Lesson", "Attention", "Q · K · V", "MLP", "Inside a step", "Why this token?",
         "Patching")
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SERIOUS = ("critical", "serious")

SETTLED = """() => !document.querySelector('[data-testid=stStatusWidget]')
  && !document.querySelector('[data-stale=true]')
  && [...document.querySelectorAll('[data-testid=stPlotlyChart]')].every(c => c.querySelector('.main-svg'))"""


def settled(page, title: str) -> int:
    """Waits (at most 180 s) until `title`'s run has ended with every chart drawn and nothing
    faded as stale (a stale element is drawn at a third of its opacity: its contrast is not the
    page's); returns how many charts the page shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(SETTLED, timeout=180_000)
    except PlaywrightTimeout:
        raise AssertionError(f"waited 180 s for the {title!r} page's run to end with its charts "
                             "drawn") from None
    page.wait_for_timeout(600)  # Plotly's last relayout
    return page.locator("[data-testid='stPlotlyChart'] .main-svg").count()


def serious_violations(page) -> list[str]:
    """One line per element that breaks a WCAG 2.1 A/AA rule with critical or serious impact."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    results = Axe().run(page, options=options).response
    assert results["testEngine"]["name"] == "axe-core"
    lines = []
    for rule in results["violations"]:
        if rule["impact"] in SERIOUS:
            for node in rule["nodes"]:
                why = "; ".join(check["message"] for check in node["any"] + node["all"] + node["none"])
                lines.append(f"{rule['id']} ({rule['impact']}) {' '.join(node['target'])}: {why}")
    return lines


def test_every_page_meets_wcag_21_aa(server, browser):  # noqa: F811
    page = open_app(browser, server)
    generate(page, "The cat sat on the mat because it was warm", 4)
    found: dict[str, list[str]] = {}
    for title in PAGES:
        if title != "Generate":  # the generation leaves the Generate page open
            page.get_by_role("link", name=title).click()
        page.get_by_role("heading", name=title).wait_for(timeout=180_000)
        charts = settled(page, title)
        assert charts > 0 or title == "Lesson", f"the {title!r} page drew no figure"
        found[title] = serious_violations(page)
    assert page.dialogs == []
    # axe came from the package, and nothing else came from elsewhere either
    assert len(page.requests) > 20 and requests_elsewhere(page, server) == []
    report = "\n".join(f"{title}: {line}" for title, lines in found.items() for line in lines)
    assert found == {title: [] for title in PAGES}, report
    page.close()
