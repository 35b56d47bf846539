"""The app's pages, listed once: streamlit_app.py builds the navigation from them and the Lesson's
"see it" links name them by url path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    path: str  # the page's script, from the repository's root
    title: str
    icon: str  # a Material Symbols name: Streamlit draws these from its own bundled font
    url_path: str  # "/" for the default page


PAGES = (
    PageEntry("app/pages/generate.py", "Generate", ":material/edit_note:", "/"),
    PageEntry("app/pages/lesson.py", "Lesson", ":material/school:", "lesson"),
    PageEntry("app/pages/attention.py", "Attention", ":material/grid_on:", "attention"),
    PageEntry("app/pages/qkv.py", "Q · K · V", ":material/calculate:", "qkv"),
    PageEntry("app/pages/mlp.py", "MLP", ":material/hub:", "mlp"),
    PageEntry("app/pages/inside_step.py", "Inside a step", ":material/step_into:", "step"),
    PageEntry("app/pages/why.py", "Why this token?", ":material/help:", "why"),
    PageEntry("app/pages/patching.py", "Patching", ":material/compare_arrows:", "patching"),
)
URL_PATHS = tuple(page.url_path for page in PAGES)


def page_at(url_path: str) -> PageEntry:
    """The page registered under `url_path` (KeyError for one that is not)."""
    return {page.url_path: page for page in PAGES}[url_path]
