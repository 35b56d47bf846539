"""Tablets and phones as first-class screens: on every run, the stylesheet's screens section (the
Plotly toolbar on a row of its own on touch screens, button labels that wrap, the share link's
copy button shown without a pointer) and the script that folds the sidebar below FOLD_BELOW px
and lays each figure out for the width it gets (app/static/screens.js, from the layouts
`gpt2viz.viz.export.fitted` puts in it, `gpt2viz.viz.narrow`)."""

from __future__ import annotations

import functools
from string import Template

import streamlit as st

from .stylesheet import STATIC, section

# px: narrower than this the sidebar starts folded (its 300 px would leave the page under 700), as
# Streamlit folds it by itself only under 768 px
FOLD_BELOW = 1000
MODEBAR_ROW = 30  # px above a figure for Plotly's toolbar on touch screens (its buttons are 26 high)


def screens_css() -> str:
    """The stylesheet's screens section, as a style element."""
    return section("screens", MODEBAR_ROW=MODEBAR_ROW, NARROW_MAX=FOLD_BELOW - 1)


@functools.cache
def screens_script() -> str:
    """app/static/screens.js with FOLD_BELOW put in, as a `<script>` element."""
    code = Template((STATIC / "screens.js").read_text(encoding="utf-8")).substitute(FOLD_BELOW=FOLD_BELOW)
    return f"<script>\n{code}</script>"


def adapt() -> None:
    """Draw the screens section (a style element takes no room) and the script, in the sidebar.
    Called once per run, before anything that may stop it."""
    st.html(screens_css())
    st.sidebar.html(screens_script(), unsafe_allow_javascript=True)
