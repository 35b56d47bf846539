"""Generate: type a prompt, step through the model's choices token by token."""

import json

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import gpt2viz
from app import state
from app.charts import chart
from app.model_picker import current_model, device_label, fallback_banner
from app.presenter import presenter_on
from app.resources import LiveRedraw, model_turn, tokenizer
from app.run import (
    STOP_MESSAGES,
    example_run,
    kept_settings,
    matches,
    run_to_extend,
    settings_controls,
)
from app.sequence import step_selector
from gpt2viz import Generation
from gpt2viz.paths import ASSETS
from gpt2viz.saved_trace import trace_bytes
from gpt2viz.viz.candidates import candidates_figure, percent, step_candidates
from gpt2viz.viz.tokens import token_strip_html

EXAMPLES = ASSETS / "examples" / "prompts.json"


def use_example() -> None:
    if st.session_state.get(state.EXAMPLE):
        state.put(state.PROMPT, st.session_state[state.EXAMPLE])


def strip(run: Generation, selected: int | None = None, progress: int | None = None) -> str:
    tok = tokenizer()
    return token_strip_html(tok.token_texts(run.prompt_ids), [s.text for s in run.steps], selected,
                            tok.character_groups(run.ids), progress)


def full_recording(model: gpt2viz.GPT2, ids: list[int]) -> gpt2viz.Trace:
    """Every hook point of the sequence, recorded when the download is clicked, in the model's turn."""
    with model_turn():
        return model.run_with_capture(ids)


def extend(run: Generation, to_end: bool, live: DeltaGenerator) -> None:
    """One step, or every step to the end with the tokens and a progress bar appearing live (paced
    while other sessions use the model: see LiveRedraw)."""
    if not to_end:
        with model_turn():
            run.advance()
        return
    redraw = LiveRedraw()
    while not run.finished:
        with model_turn():  # one step at a time: the other sessions' steps interleave with ours
            run.advance()
        if redraw.due():  # the page draws the finished strip after the last step in any case
            live.markdown(strip(run, progress=run.settings["max_new_tokens"]), unsafe_allow_html=True)


st.title("Generate")
st.caption("GPT-2 writes one token at a time: at each step it gives every token of its vocabulary "
           "a probability, and one is picked (the most likely, or a random draw). Step through it "
           "and see what else it considered.")
current = current_model()
fallback_banner(current)
st.caption(f"Running on **{device_label(current.model)}**.")

examples = json.loads(EXAMPLES.read_text())["prompts"]
st.selectbox("Example prompts", examples, index=None, key=state.EXAMPLE, on_change=use_example,
             placeholder="Pick an example…")
prompt = state.widget(st.text_area, "Prompt", key=state.PROMPT, height=100)
max_tokens = max(1, current.model.config.n_positions - 1)
b1, b2, b3, b4 = st.columns([1, 1, 1, 3], vertical_alignment="center")
if presenter_on():  # the sampling controls are hidden; the settings chosen before still apply
    settings = kept_settings()
else:  # a popover, not an expander: its widgets are drawn in the browser only once it is opened
    with b3.popover("Sampling", icon=":material/tune:", help="Greedy or random, temperature, top-k, "
                    "top-p, seed and how many tokens to write"):
        settings = settings_controls(max_tokens)
b4.caption(settings.summary())
next_clicked = b1.button("Next token", help="Generate one more token")
generate_clicked = b2.button("Generate", type="primary", help="Generate to the end")
live = st.empty()
if next_clicked or generate_clicked:
    try:
        run = run_to_extend(current, prompt, settings, restart_finished=generate_clicked)
        if run is not None:
            st.session_state[state.RUN] = run
            extend(run, generate_clicked, live)
            state.put(state.STEP, len(run.steps) - 1)
    except gpt2viz.PromptError as err:
        st.session_state.pop(state.RUN, None)
        st.error(str(err))
        st.stop()  # the one message: no hint below it

if state.RUN not in st.session_state and prompt == state.DEFAULTS[state.PROMPT]:
    st.session_state[state.RUN] = example_run(current.model, current.source)  # a finished example
run = st.session_state.get(state.RUN)
if run is None or not run.steps:
    st.info("Press **Next token** for one step, or **Generate** to write to the end.")
    st.stop()
if not matches(run, current.model, prompt, settings):
    st.caption("Showing the last generation, made with another prompt, model or settings. "
               "Press Next token or Generate to start a new one.")
record = step_selector(run)
live.markdown(strip(run, record.index), unsafe_allow_html=True)
st.caption("Grey: prompt tokens; blue: generated tokens; outlined: the selected step. "
           "“·” marks a space, “↵” a newline. A purple bracket with a character above joins tokens "
           "that are each only some bytes of that character (\\xNN: one byte).")
c1, c2, _ = st.columns([1, 1, 2])
# Callables: made only when clicked (a full recording is large).
c1.download_button("Download the generation (JSON)", on_click="ignore", file_name="gpt2viz-generation.json",
                   data=lambda: json.dumps(run.to_dict(), indent=1, ensure_ascii=False),
                   mime="application/json")
c2.download_button("Download the recording (trace)", on_click="ignore", file_name="gpt2viz-trace.safetensors",
                   data=lambda: trace_bytes(full_recording(current.model, run.ids)),
                   mime="application/octet-stream",
                   help="Every hook point of the whole sequence; open it with gpt2viz.load_trace")
if run.finished:
    st.success(f"Stopped after {len(run.steps)} new tokens: {STOP_MESSAGES[run.steps[-1].stop_reason]}.")
figure = candidates_figure(
    step_candidates(record.top, record.token_id, record.text, record.prob),
    f"Step {record.index + 1}: candidates for position {record.position} (chosen p = {percent(record.prob)})",
)
chart(st, figure, key="candidates")

