"""gpt2viz: see inside GPT-2 while it writes. Run with `streamlit run streamlit_app.py`."""

import streamlit as st

st.set_page_config(page_title="gpt2viz", page_icon="🔎", layout="wide")
st.navigation([
    st.Page("app/pages/generate.py", title="Generate", icon="✍️", default=True),
    st.Page("app/pages/attention.py", title="Attention", icon="🔦"),
    st.Page("app/pages/qkv.py", title="Q · K · V", icon="🧮", url_path="qkv"),
    st.Page("app/pages/mlp.py", title="MLP", icon="🧠"),
]).run()
