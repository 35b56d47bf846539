"""Where the files gpt2viz ships live: the ASSETS folder."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

# An installed wheel carries them inside the package; a checkout (or `pip install -e .`) beside it.
ASSETS = _PACKAGE / "assets" if (_PACKAGE / "assets").is_dir() else _PACKAGE.parent / "assets"
