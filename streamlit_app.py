"""gpt2viz: see inside GPT-2 while it writes. Run with `streamlit run streamlit_app.py`."""

import streamlit as st
from PIL import Image

from app import share
from app.memory import refresh_memory
from app.navigation import PAGES
from app.server_log import log_to_stderr
from app.step_worker import StepFailed
from gpt2viz.paths import ASSETS

log_to_stderr()
# A local image, not a ":material/…" name: that one is fetched from Google's font server.
st.set_page_config(page_title="gpt2viz", page_icon=Image.open(ASSETS / "icon.png"), layout="wide")
share.restore()  # a new session opened from a link: its settings, before any widget is drawn
page = st.navigation([
    st.Page(entry.path, title=entry.title, icon=entry.icon, default=entry.url_path == "/",
            **({} if entry.url_path == "/" else {"url_path": entry.url_path}))
    for entry in PAGES
])
try:
    page.run()
except StepFailed as failure:  # a generation step a page asked for (a continuation): said, not a traceback
    st.error(str(failure))
    st.stop()
share.refresh()  # the page ran to its end: the address and the sidebar's link follow its changes
refresh_memory()  # and the sidebar's memory line counts what it recorded
