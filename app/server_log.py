"""The app's lines in the server's log (its stderr, beside Streamlit's own): what happened to a
class that nobody saw, such as a step that failed or a generation whose browser left."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr(level: int = logging.INFO) -> None:
    """Send the `app` loggers' lines to stderr, once per process however often it is called (the
    entry script runs again at every rerun)."""
    logger = logging.getLogger("app")
    if any(getattr(handler, "gpt2viz", False) for handler in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.gpt2viz = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
