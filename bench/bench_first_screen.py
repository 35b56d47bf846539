"""Time from opening the app to its first figure, in a real browser (Debian's chromium):

- cold: a new `streamlit run` process, timed from its start (the model loads and the opening
  example is generated once per process);
- warm: a new browser tab on the running server (the example is already there).

Model: $GPT2VIZ_MODEL, else the bundled gpt2viz-mini. Target: warm under 2 s on this machine.
Usage: .venv/bin/python bench/bench_first_screen.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIGURE = "[data-testid='stPlotlyChart'] .main-svg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_figure(browser, url: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator(FIGURE).first.wait_for(state="visible", timeout=300_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "GPT2VIZ_MODEL": os.environ.get("GPT2VIZ_MODEL", "gpt2viz-mini")}
    cold, warm = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        for _ in range(args.repeats):
            port = free_port()
            started = time.perf_counter()
            server = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
                 "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                 "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT)
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = started + 120
                while True:  # the server takes a moment to listen
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        if server.poll() is not None or time.perf_counter() > deadline:
                            sys.exit(f"streamlit did not start (exit code {server.poll()})")
                        time.sleep(0.1)
                first_figure(browser, url)
                cold.append(time.perf_counter() - started)
                warm.append(first_figure(browser, url))
            finally:
                server.terminate()
                server.wait(timeout=30)
        browser.close()
    print(f"model {env['GPT2VIZ_MODEL']}; median of {args.repeats}")
    print(f"  cold: process start → first figure   {statistics.median(cold):6.2f} s")
    print(f"  warm: new tab → first figure          {statistics.median(warm):6.2f} s  (target < 2 s: "
          f"{'met' if statistics.median(warm) < 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
