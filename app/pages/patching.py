"""Patching: which layer, position and head carries the difference between two prompts."""

import streamlit as st

import gpt2viz
from app import chosen_model, session, state
from app.charts import chart
from app.computations import patching
from app.models import tokenizer
from gpt2viz.patching import SITES
from gpt2viz.viz.patching import (
    PATCHED,
    patching_comparison,
    patching_comparison_figure,
    patching_figure,
    patching_map,
)

SITE_LABELS = {"resid_pre": "residual stream (resid_pre)", "attn_out": "attention output (attn_out)",
               "mlp_out": "MLP output (mlp_out)", "z": "each head (z)"}
METHOD_LABELS = {"both": "both, to compare", "exact": "exact (a pass per cell)",
                 "attribution": "estimate (one backward pass)"}
EXACT_CELLS = 600  # past this many cells, "both" shows the estimate alone: the exact grid takes long


def one_token(text: str, what: str) -> int:
    """The id of `text` as one token, or the page stopped with what to type instead."""
    try:
        return tokenizer().single_token(text, what)
    except ValueError as err:
        st.warning(str(err))
        st.stop()


st.title("Patching")
st.caption(f"Two prompts that differ in one detail make the model prefer different next tokens. Each "
           f"cell runs {PATCHED}, and shows how much of the clean run's preference that one activation "
           "brings back: 0 is the corrupted run, 1 the clean run.")
current = chosen_model.current()
config = current.model.config

clean_column, corrupted_column = st.columns(2)
clean_text = state.widget(clean_column.text_input, "Clean prompt", key=state.PATCH_CLEAN)
corrupted_text = state.widget(corrupted_column.text_input, "Corrupted prompt", key=state.PATCH_CORRUPTED)
answer_column, wrong_column, site_column, method_column = st.columns([1, 1, 2, 2])
answer = one_token(state.widget(answer_column.text_input, "Answer (clean)", key=state.PATCH_ANSWER),
                   "The answer")
wrong = one_token(state.widget(wrong_column.text_input, "Wrong (corrupted)", key=state.PATCH_WRONG),
                  "The wrong token")
site = state.widget(site_column.selectbox, "Patch", SITES, key=state.PATCH_SITE,
                    format_func=SITE_LABELS.__getitem__)
method = state.widget(method_column.radio, "Method", state.PATCH_METHODS, key=state.PATCH_METHOD,
                      format_func=METHOD_LABELS.__getitem__, horizontal=True)
try:
    clean = gpt2viz.encode_prompt(current.model, tokenizer(), clean_text, reserve=0)
    corrupted = gpt2viz.encode_prompt(current.model, tokenizer(), corrupted_text, reserve=0)
except gpt2viz.PromptError as err:
    st.warning(str(err))
    st.stop()

cells = config.n_layer * (config.n_head if site == "z" else len(corrupted))
methods = ["exact", "attribution"] if method == "both" else [method]
if method == "both" and cells > EXACT_CELLS:
    methods = ["attribution"]
    st.info(f"The exact grid is {cells:,} patched passes: this shows the estimate alone. Choose “exact” to "
            "run it.")
metrics = st.container()
slots = {name: st.container() for name in methods}  # exact above; the estimate is drawn first: it is faster
labels = session.labels_for(corrupted) if site != "z" else None
results = {}
for name in sorted(methods, key=lambda name: name != "attribution"):
    try:
        results[name] = patching(current.source, tuple(clean), tuple(corrupted), answer, wrong, site, name)
    except (gpt2viz.PromptError, ValueError) as err:
        st.warning(str(err))
        st.stop()
    chart(slots[name], patching_figure(patching_map(results[name], labels)), key=f"patching_{name}")

first = next(iter(results.values()))
clean_column, corrupted_column, gap_column = metrics.columns(3)
clean_column.metric("Clean run: answer − wrong", f"{first.clean_value:.2f}")
corrupted_column.metric("Corrupted run: answer − wrong", f"{first.corrupted_value:.2f}")
gap_column.metric("Difference to explain", f"{first.clean_value - first.corrupted_value:.2f}")
if len(results) == 2:
    chart(st, patching_comparison_figure(patching_comparison(results["exact"], results["attribution"])),
          key="patching_comparison")
    st.caption("Each point is one cell: where the estimate agrees with the exact grid it lies on the line. "
               "The estimate needs one backward pass for the whole grid; the exact grid one pass per cell.")
