"""The app's stylesheet and its one script, read once from app/static/: `section("presenter",
...)` is a `<style>` element of one section of style.css, with the values the Python code uses
put in for its $NAMEs."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from string import Template

STATIC = Path(__file__).resolve().parent / "static"
_SECTION = re.compile(r"/\* == ([\w-]+) == \*/\n")


@functools.cache
def sections() -> dict[str, str]:
    """Every section of style.css by name (the text after its `/* == name == */` line)."""
    parts = _SECTION.split((STATIC / "style.css").read_text(encoding="utf-8"))
    return {name: text.strip() for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def section(name: str, element_id: str | None = None, **values: object) -> str:
    """A `<style>` element (with `element_id`) holding the section `name`, `values` put in for its
    $NAMEs; a KeyError names a section or a value that is missing."""
    css = Template(sections()[name]).substitute(values)
    opening = f'<style id="{element_id}">' if element_id else "<style>"
    return f"{opening}\n{css}\n</style>"


@functools.cache
def script(name: str) -> str:
    """A `<script>` element holding app/static/`name`."""
    return f"<script>\n{(STATIC / name).read_text(encoding='utf-8')}</script>"
