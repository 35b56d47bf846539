"""Patching: which layer, position and head carries the difference between two prompts.

The four inputs open on the pair known to work on the loaded model (assets/examples/patching.json;
the app's defaults, the real GPT-2's, for a model with none) until the person changes one of them.
"""

import streamlit as st

import gpt2viz
from app import chosen_model, session, state
from app.charts import chart
from app.computations import patching
from app.models import tokenizer
from gpt2viz.patching import SITES, PatchingExample, patching_example, prompt_ids
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
FADED = 0.3  # the opacity of a grid that explains noise (a pair the model does not tell apart)
PAIR = (state.PATCH_CLEAN, state.PATCH_CORRUPTED, state.PATCH_ANSWER, state.PATCH_WRONG)
EOT_HELP = f"{gpt2viz.EOT_TEXT} typed here is the end-of-text token, which began every text in training."


def one_token(text: str, what: str) -> int:
    """The id of `text` as one token, or the page stopped with what to type instead."""
    try:
        return tokenizer().single_token(text, what)
    except ValueError as err:
        st.warning(str(err))
        st.stop()


def texts_of(example: PatchingExample | None) -> tuple[str, ...]:
    """The four inputs' texts (PAIR's order) of `example`, or the app's defaults (the real GPT-2's
    pair) for None."""
    if example is None:
        return tuple(state.DEFAULTS[key] for key in PAIR)
    return example.clean, example.corrupted, example.answer, example.wrong


def open_on_example(example: PatchingExample | None) -> None:
    """The four inputs set to the model's example (the defaults when it has none) while the person
    has chosen none of them: switching models then switches the pair too."""
    if any(state.chosen(key) for key in PAIR):
        return
    clean, corrupted, answer, wrong = texts_of(example)
    state.put(state.PATCH_CLEAN, clean)
    state.put(state.PATCH_CORRUPTED, corrupted)
    state.put(state.PATCH_ANSWER, answer)
    state.put(state.PATCH_WRONG, wrong)


def use_example(example: PatchingExample) -> None:
    """The button's choice: the pair known to work on the loaded model, in the four inputs."""
    state.choose(state.PATCH_CLEAN, example.clean)
    state.choose(state.PATCH_CORRUPTED, example.corrupted)
    state.choose(state.PATCH_ANSWER, example.answer)
    state.choose(state.PATCH_WRONG, example.wrong)


def warn(problem: str, example: PatchingExample | None) -> None:
    """Why this pair explains noise, and a button that puts the model's own example in place."""
    st.warning(f"{problem} Faded below: the colours show noise, not the model's reasons.")
    shown = tuple(state.get(key) for key in PAIR)
    if example is not None and shown != texts_of(example):
        st.button("Use an example that works on this model", on_click=use_example, args=(example,),
                  help=example.why)


st.title("Patching")
st.caption(f"Two prompts that differ in one detail make the model prefer different next tokens. Each "
           f"cell runs {PATCHED}, and shows how much of the clean run's preference that one activation "
           "brings back: 0 is the corrupted run, 1 the clean run.")
current = chosen_model.current()
config = current.model.config
example = patching_example(current.model.name)
open_on_example(example)

clean_column, corrupted_column = st.columns(2)
clean_text = state.widget(clean_column.text_input, "Clean prompt", key=state.PATCH_CLEAN, help=EOT_HELP)
corrupted_text = state.widget(corrupted_column.text_input, "Corrupted prompt", key=state.PATCH_CORRUPTED,
                              help=EOT_HELP)
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
    clean = gpt2viz.encode_prompt(current.model, tokenizer(), prompt_ids(tokenizer(), clean_text), reserve=0)
    corrupted = gpt2viz.encode_prompt(current.model, tokenizer(), prompt_ids(tokenizer(), corrupted_text),
                                      reserve=0)
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
notice = st.container()  # why the pair explains noise, above the grids
slots = {name: st.container() for name in methods}  # exact above; the estimate is drawn first: it is faster
labels = session.labels_for(corrupted) if site != "z" else None
results = {}
for name in sorted(methods, key=lambda name: name != "attribution"):
    try:
        results[name] = patching(current.source, tuple(clean), tuple(corrupted), answer, wrong, site, name)
    except (gpt2viz.PromptError, ValueError) as err:
        st.warning(str(err))
        st.stop()
    problem = results[name].problem  # the same for both methods: the same two runs
    if problem and len(results) == 1:
        with notice:
            warn(problem, example)
    chart(slots[name], patching_figure, patching_map(results[name], labels),
          opacity=FADED if problem else None, key=f"patching_{name}")

first = next(iter(results.values()))
clean_column, corrupted_column, gap_column = metrics.columns(3)
clean_column.metric("Clean run: answer − wrong", f"{first.clean_value:.2f}")
corrupted_column.metric("Corrupted run: answer − wrong", f"{first.corrupted_value:.2f}")
gap_column.metric("Difference to explain", f"{first.clean_value - first.corrupted_value:.2f}")
if len(results) == 2:
    chart(st, patching_comparison_figure, patching_comparison(results["exact"], results["attribution"]),
          key="patching_comparison")
    st.caption("Each point is one cell: where the estimate agrees with the exact grid it lies on the line. "
               "The estimate needs one backward pass for the whole grid; the exact grid one pass per cell.")
