"""Where the files gpt2viz ships live: one ASSETS folder beside the package."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
