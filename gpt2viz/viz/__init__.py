"""Pure data steps and Plotly figure factories for the gpt2viz app. Never imports streamlit.

Each module pairs functions that turn a `Trace` (or a generation `Step`) into plain arrays and
labels with functions that only build a `plotly.graph_objects.Figure` from them.
"""
