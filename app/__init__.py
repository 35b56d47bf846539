"""The Streamlit UI of gpt2viz: pages, shared widgets, session-state keys, cached resources
(docs/ARCHITECTURE.md says which module may import which)."""
