"""Every page at real size, in the browser: a 900-token prompt on a gpt2-small-shaped checkpoint
(random weights, made here), 12 tokens generated, then each page opened from the sidebar in
Debian's chromium. Prints seconds to the page's first drawn figure and until it stops running
(targets, issue 21: first figure <= 2 s, complete <= 5 s on a 2-core machine).

    .venv/bin/python bench/bench_pages.py [--tokens 900] [--new 12] [--model PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.class_load import ARGS, CHROMIUM, served, set_prompt  # noqa: E402

PAGES = ("Lesson", "Attention", "Q · K · V", "MLP", "Inside a step", "Why this token?", "Patching")
TARGET_FIRST, TARGET_DONE = 2.0, 5.0
# A chart this page's run has drawn: the previous page's stay in the DOM, stale, until replaced.
FRESH_CHART = "[data-testid='stElementContainer'][data-stale='false'] [data-testid='stPlotlyChart'] .main-svg"
PARAGRAPH = ("The river ran past the old mill, where the miller's daughter counted sacks of flour and "
             "sang to the cat that slept on the warm stones by the door. ")


def gpt2_small(folder: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)
    return folder


def prompt_of(tokens: int) -> str:
    import gpt2viz

    tok = gpt2viz.load_tokenizer()
    ids = tok.encode(PARAGRAPH * (tokens // len(tok.encode(PARAGRAPH)) + 1))[:tokens]
    return tok.decode(ids)


def settled(page, timeout: float = 120.0) -> float:
    """Seconds until the page has stopped running for a second."""
    start = time.monotonic()
    status = page.locator("[data-testid='stStatusWidget']")
    quiet_since = None
    while time.monotonic() - start < timeout:
        if status.count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 1.0:
                return quiet_since - start
        else:
            quiet_since = None
        page.wait_for_timeout(50)
    return float("nan")


def walk(url: str, tokens: int, new: int) -> list[tuple[str, float, float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Stopped after").first.wait_for(timeout=300_000)
        set_prompt(page, prompt_of(tokens), new)
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Generate", exact=True).click()
        page.get_by_text(f"Stopped after {new} new tokens").wait_for(timeout=600_000)
        settled(page)
        rows = []
        for title in PAGES:
            start = time.monotonic()
            page.get_by_role("link", name=title).click()
            page.get_by_role("heading", name=title).first.wait_for(timeout=300_000)
            page.locator(FRESH_CHART).first.wait_for(timeout=300_000)
            first = time.monotonic() - start
            done = first + settled(page, timeout=300)
            rows.append((title, first, done))
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=900)
    parser.add_argument("--new", type=int, default=12)
    parser.add_argument("--model", default=None, help="a checkpoint folder (default: gpt2-small, random)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(gpt2_small(Path(folder)))
        with served(model) as (url, _):
            rows = walk(url, args.tokens, args.new)
    name = args.model or "gpt2-small, random weights"
    print(f"{args.tokens}-token prompt, {args.new} tokens generated, {name}")
    print(f"{'page':<16} {'first figure':>13} {'complete':>9}")
    for title, first, done in rows:
        met = first <= TARGET_FIRST and done <= TARGET_DONE
        print(f"{title:<16} {first:>12.1f}s {done:>8.1f}s  {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
