"""The floor of bench_first_screen.py: a Streamlit page with a title and one small Plotly chart.

Streamlit loads Plotly's JavaScript (its PlotlyChart bundle, about 4.7 MB) only when a page
draws a chart; this page measures what that costs on its own, with nothing of gpt2viz around it.
"""

import plotly.graph_objects as go
import streamlit as st

st.title("One chart")
st.plotly_chart(go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2])))
