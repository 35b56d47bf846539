"""gpt2viz: see inside GPT-2 while it writes. Run with `streamlit run streamlit_app.py`."""

import streamlit as st
from PIL import Image

from app import links
from app.memory import refresh_memory
from gpt2viz.paths import ASSETS

# A local image, not a ":material/…" name: that one is fetched from Google's font server.
st.set_page_config(page_title="gpt2viz", page_icon=Image.open(ASSETS / "icon.png"), layout="wide")
links.restore()  # a new session opened from a link: its settings, before any widget is drawn
page = st.navigation([
    st.Page("app/pages/generate.py", title="Generate", icon=":material/edit_note:", default=True),
    st.Page("app/pages/lesson.py", title="Lesson", icon=":material/school:", url_path="lesson"),
    st.Page("app/pages/attention.py", title="Attention", icon=":material/grid_on:"),
    st.Page("app/pages/qkv.py", title="Q · K · V", icon=":material/calculate:", url_path="qkv"),
    st.Page("app/pages/mlp.py", title="MLP", icon=":material/hub:"),
    st.Page("app/pages/inside_step.py", title="Inside a step", icon=":material/step_into:", url_path="step"),
    st.Page("app/pages/why.py", title="Why this token?", icon=":material/help:", url_path="why"),
])
page.run()
links.refresh()  # the page ran to its end: the address and the sidebar's link follow its changes
refresh_memory()  # and the sidebar's memory line counts what it recorded
