"""gpt2viz: see inside GPT-2 while it writes. Run with `streamlit run streamlit_app.py`.

One run of the app, top to bottom: join the live class → restore the link → load the model → apply
the link → open the example → draw the sidebar → a round → run the page → refresh the link →
publish the teacher's view → let the next follower run."""

import streamlit as st
from PIL import Image

from app import chosen_model, class_rounds, layout, live_class, session, share
from app.memory import refresh_memory
from app.navigation import PAGES
from app.server_log import log_to_stderr
from app.sidebar import draw_sidebar
from app.step_worker import StepFailed
from gpt2viz.paths import ASSETS

log_to_stderr()
# A local image, not a ":material/…" name: that one is fetched from Google's font server.
st.set_page_config(page_title="gpt2viz", page_icon=Image.open(ASSETS / "icon.png"), layout="wide")
pages = [
    st.Page(entry.path, title=entry.title, icon=entry.icon, default=entry.url_path == "/",
            **({} if entry.url_path == "/" else {"url_path": entry.url_path}))
    for entry in PAGES
]
page = st.navigation(pages)
layout.adapt()  # tablets and phones: the sidebar folded below 1000 px, figures fitted to their width
try:
    live_class.join(page, {p.url_path: p for p in pages})  # a follower: the teacher's newer view (as a link)
    share.restore()  # a new session opened from a link: its choices, before any widget is drawn
    loaded = chosen_model.load_chosen()  # the picker's model (a link's that fails falls back, and reruns)
    try:
        if not isinstance(loaded, chosen_model.NoModel):
            share.apply_link(loaded)  # checked against the model; its generation written again
            session.open_example(loaded)  # a new session on the default prompt opens on the finished example
        draw_sidebar(loaded)  # with no model: the picker and why, and the run stops here
        class_rounds.follower_round(loaded)  # a follower, while a round is open: the question, not the page
        page.run()
    except StepFailed as failure:  # a step the link, the example or a page asked for: said, not a traceback
        st.error(str(failure))
        st.stop()
    share.refresh()  # the page ran to its end: the address and the sidebar's link follow its changes
    refresh_memory()  # and the sidebar's memory line counts what it recorded
    live_class.publish(loaded, page)  # the teacher's view, to every follower
finally:  # however the run ended (a page switch, st.stop, an error)
    live_class.ended()  # the next follower the watcher holds back may run
