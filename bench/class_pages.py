"""A class opens an analysis page at once: N Chromium sessions on one `streamlit run` process, each
with its own prompt of `--tokens` tokens and a 2-token generation, all open `--page` at the same
moment, so the server records N sequences at once. Prints the seconds from each click to the
page's first three charts drawn by it (p50, max) and the health endpoint's latency throughout.
Model: $GPT2VIZ_MODEL, else the bundled gpt2viz-mini.

    .venv/bin/python bench/class_pages.py [--sessions 20] [--tokens 200] [--page Attention]
                                          [--cores shared|split]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

from bench.bench_pages import FRESH_CHART, prompt_of  # noqa: E402
from bench.class_load import (  # noqa: E402
    ARGS,
    CHROMIUM,
    WORDS,
    HealthProbe,
    open_session,
    served,
    set_prompt,
    split_cores,
)

CHARTS = 3  # drawn by the new page: its first screen


def open_at_once(url: str, sessions: int, tokens: int, page_name: str) -> tuple[list[float], HealthProbe]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pages = [open_session(browser, url) for _ in range(sessions)]
        text = prompt_of(tokens)
        for i, page in enumerate(pages):  # each its own sequence: nothing recorded is shared
            set_prompt(page, f"{WORDS[i % len(WORDS)]} {text}", 2)
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Generate", exact=True).click()
        for page in pages:
            page.get_by_text("Stopped after 2 new tokens").wait_for(timeout=300_000)
        time.sleep(2.0)
        probe = HealthProbe(url)
        probe.start()
        clicked = []
        for page in pages:
            page.get_by_role("link", name=page_name).click(no_wait_after=True)
            clicked.append(time.perf_counter())
        done: dict[int, float] = {}
        while len(done) < sessions:
            for i, page in enumerate(pages):
                if i not in done and page.locator(FRESH_CHART).count() >= CHARTS:
                    done[i] = time.perf_counter() - clicked[i]
            time.sleep(0.2)
        probe.stop()
        browser.close()
    return [done[i] for i in range(sessions)], probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--page", default="Attention")
    parser.add_argument("--cores", choices=["shared", "split"], default="split")
    args = parser.parse_args()
    model = os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")
    with served(model) as (url, proc):
        with split_cores(proc.pid) if args.cores == "split" else nullcontext("all cores shared") as where:
            seconds, probe = open_at_once(url, args.sessions, args.tokens, args.page)
    answered = [x for x in probe.latencies if x is not None]
    print(f"model {model}; {args.sessions} sessions open {args.page} at once, {args.tokens}-token prompts; "
          f"{where}")
    print(f"  first {CHARTS} charts: p50 {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s")
    print(f"  health endpoint: {len(probe.latencies)} probes, max {max(answered):.3f} s, "
          f"{len(probe.latencies) - len(answered)} unanswered")


if __name__ == "__main__":
    main()
