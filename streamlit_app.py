"""gpt2viz: see inside GPT-2 while it writes. Run with `streamlit run streamlit_app.py`.

One run of the app, top to bottom: restore the link → load the model → apply the link → open the
example → draw the sidebar → run the page → refresh the link."""

import streamlit as st
from PIL import Image

from app import chosen_model, session, share
from app.memory import refresh_memory
from app.navigation import PAGES
from app.server_log import log_to_stderr
from app.sidebar import draw_sidebar
from app.step_worker import StepFailed
from gpt2viz.paths import ASSETS

log_to_stderr()
# A local image, not a ":material/…" name: that one is fetched from Google's font server.
st.set_page_config(page_title="gpt2viz", page_icon=Image.open(ASSETS / "icon.png"), layout="wide")
page = st.navigation([
    st.Page(entry.path, title=entry.title, icon=entry.icon, default=entry.url_path == "/",
            **({} if entry.url_path == "/" else {"url_path": entry.url_path}))
    for entry in PAGES
])
share.restore()  # a new session opened from a link: its choices, before any widget is drawn
loaded = chosen_model.load_chosen()  # the picker's model (a link's that fails falls back, and reruns)
try:
    if not isinstance(loaded, chosen_model.NoModel):
        share.apply_link(loaded)  # checked against the model; its generation written again
        session.open_example(loaded)  # a new session on the default prompt opens on the finished example
    draw_sidebar(loaded)  # with no model: the picker and why, and the run stops here
    page.run()
except StepFailed as failure:  # a step the link, the example or a page asked for: said, not a traceback
    st.error(str(failure))
    st.stop()
share.refresh()  # the page ran to its end: the address and the sidebar's link follow its changes
refresh_memory()  # and the sidebar's memory line counts what it recorded
