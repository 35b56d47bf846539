"""Time from opening the app to its first figure, in a real browser (Debian's chromium):

- cold: a new `streamlit run` process, timed from its start (the model loads and the opening
  example is generated once per process);
- warm: new browser tabs (each a fresh browser context: nothing cached) on the running server,
  `--tabs` of them after the cold one, timed to the finished example's text and to the first
  figure (the example's candidates chart);
- warm, returning browser: new tabs in one browser context, after two visits (its HTTP cache and
  V8's code cache are warm, as in a teacher's browser that has opened the app before);
- the floor: the same warm measure on `bench/one_chart_app.py`, a page with a title and one small
  Plotly chart and nothing else, served the same way.

Model: $GPT2VIZ_MODEL, else the bundled gpt2viz-mini. Target: warm under 2 s on this machine.
Usage: .venv/bin/python bench/bench_first_screen.py [--repeats 3] [--tabs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.class_load import ARGS, CHROMIUM, served  # noqa: E402

FIGURE = "[data-testid='stPlotlyChart'] .main-svg"
EXAMPLE_TEXT = "Stopped after"  # the finished example's closing line, drawn just above its chart


def open_page(context, url: str, text: str | None = None) -> tuple[float | None, float]:
    """A new tab on `url`: seconds to `text` (when given) and to the first figure."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    to_text = None
    if text is not None:
        page.get_by_text(text).first.wait_for(timeout=300_000)
        to_text = time.perf_counter() - start
    page.locator(FIGURE).first.wait_for(state="visible", timeout=300_000)
    to_figure = time.perf_counter() - start
    page.close()
    return to_text, to_figure


def fresh(browser, url: str, text: str | None = None) -> tuple[float | None, float]:
    """`open_page` in a new browser context: nothing cached."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    try:
        return open_page(context, url, text)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="server processes started")
    parser.add_argument("--tabs", type=int, default=3, help="warm tabs opened on each")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    model = os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")
    cold, text, warm, returning, floor = [], [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for _ in range(args.repeats):
            started = time.perf_counter()
            with served(model) as (url, _):
                fresh(browser, url)
                cold.append(time.perf_counter() - started)
                for _ in range(args.tabs):
                    to_text, to_figure = fresh(browser, url, EXAMPLE_TEXT)
                    text.append(to_text)
                    warm.append(to_figure)
                context = browser.new_context(viewport={"width": 1400, "height": 1600})
                for _ in range(2):
                    open_page(context, url)
                returning.append(open_page(context, url)[1])
                context.close()
        with served(model, script=Path(__file__).with_name("one_chart_app.py")) as (url, _):
            fresh(browser, url)
            floor += [fresh(browser, url)[1] for _ in range(args.repeats * args.tabs)]
        browser.close()
    median = statistics.median
    print(f"model {model}; medians over {args.repeats} server processes, {args.tabs} warm tabs on each")
    print(f"  cold: process start → first figure               {median(cold):6.2f} s")
    print(f"  warm: new tab → the finished example's text      {median(text):6.2f} s")
    print(f"  warm: new tab → first figure                     {median(warm):6.2f} s  (target < 2 s: "
          f"{'met' if median(warm) < 2 else 'MISSED'})")
    print(f"  warm, returning browser: new tab → first figure  {median(returning):6.2f} s")
    print(f"  floor: one Plotly chart alone, new tab → figure  {median(floor):6.2f} s  "
          "(bench/one_chart_app.py)")


if __name__ == "__main__":
    main()
