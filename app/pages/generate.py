"""Generate: type a prompt, step through the model's choices token by token."""

import json

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

import gpt2viz
from app import chosen_model, session, state
from app.charts import chart
from app.class_rounds import teacher_round
from app.class_settings import class_settings
from app.compare_models import comparison_section
from app.computations import full_recording
from app.live_redraw import LiveRedraw
from app.models import device_label, tokenizer
from app.presenter import presenter_on
from app.sampling_controls import settings_controls
from app.settings import kept_settings
from app.sidebar import fallback_banner
from app.step_worker import StepFailed
from gpt2viz import Generation
from gpt2viz.paths import ASSETS
from gpt2viz.saved_trace import trace_bytes
from gpt2viz.viz.candidates import candidates_figure, percent, step_candidates
from gpt2viz.viz.tokens import token_strip_html

EXAMPLES = ASSETS / "examples" / "prompts.json"


def use_example() -> None:
    if st.session_state.get(state.EXAMPLE):
        state.put(state.PROMPT, st.session_state[state.EXAMPLE])


def after_typed_eot(prompt: str) -> str | None:
    """What follows the <|endoftext|> typed at the start of `prompt` (once or more), or None when
    the prompt does not start with it."""
    text = prompt.lstrip()
    if not text.startswith(gpt2viz.EOT_TEXT):
        return None
    while text.startswith(gpt2viz.EOT_TEXT):
        text = text.removeprefix(gpt2viz.EOT_TEXT)
    return text


def use_the_eot_switch() -> None:
    """The prompt without the <|endoftext|> typed at its start, and the switch that puts the real
    token there on."""
    state.choose(state.PROMPT, after_typed_eot(state.get(state.PROMPT)) or "")
    state.choose(state.START_WITH_EOT, True)


def typed_eot_hint(prompt: str) -> None:
    """When the prompt holds the text <|endoftext|>: what the model reads there, the switch that
    gives it the real token, and a button that uses the switch when the text starts the prompt."""
    pieces = tokenizer().token_texts(tokenizer().encode(gpt2viz.EOT_TEXT))
    shown = ", ".join(f"`{piece}`" for piece in pieces)
    st.info(f"The prompt holds `{gpt2viz.EOT_TEXT}` typed as text: the model reads it as {len(pieces)} "
            f"ordinary tokens ({shown}), not as its one end-of-text token, so no new text starts there. "
            f"The **Start with {gpt2viz.EOT_TEXT}** switch puts the real token before the prompt.")
    rest = after_typed_eot(prompt)
    if rest is not None and rest.strip():
        st.button("Use the switch instead", key="typed_eot", on_click=use_the_eot_switch,
                  help=f"Removes the typed {gpt2viz.EOT_TEXT} from the start of the prompt and switches on "
                       f"Start with {gpt2viz.EOT_TEXT}.")


def strip(generation: Generation, selected: int | None = None, progress: int | None = None) -> str:
    tok = tokenizer()
    return token_strip_html(tok.token_texts(generation.prompt_ids), [step.text for step in generation.steps],
                            selected, tok.character_groups(generation.ids), progress, generation.token_probs)


def extend(source: str, generation: Generation, to_end: bool, live: DeltaGenerator) -> None:
    """One step, or every step to the end with the tokens and a progress bar appearing live (paced
    while other sessions use the model: see LiveRedraw)."""
    if not to_end:
        session.generate(source, generation, until=len(generation.steps) + 1)
        return
    redraw = LiveRedraw()

    def draw_live() -> None:  # the page draws the finished strip after the last step in any case
        if redraw.due():
            live.markdown(strip(generation, progress=generation.settings["max_new_tokens"]),
                          unsafe_allow_html=True)
    session.generate(source, generation, after_step=draw_live)


st.title("Generate")
st.caption("GPT-2 writes one token at a time: at each step it gives every token of its vocabulary "
           "a probability, and one is picked (the most likely, or a random draw). Step through it "
           "and see what else it considered.")
current = chosen_model.current()
fallback_banner(current)
st.caption(f"Running on **{device_label(current.model)}**.")

examples = json.loads(EXAMPLES.read_text())["prompts"]
st.selectbox("Example prompts", examples, index=None, key=state.EXAMPLE, on_change=use_example,
             placeholder="Pick an example…")
prompt = state.widget(st.text_area, "Prompt", key=state.PROMPT, height=100)
state.widget(st.toggle, f"Start with {gpt2viz.EOT_TEXT}", key=state.START_WITH_EOT,
             help=f"GPT-2 read {gpt2viz.EOT_TEXT} between the texts it was trained on, so a text that "
                  "starts with it begins as they did. Many heads then rest their attention on it.")
max_tokens = class_settings().token_cap(current.model.config.n_positions)
next_column, generate_column, sampling_column, summary_column = st.columns(
    [1, 1, 1, 3], vertical_alignment="center")
if presenter_on():  # the sampling controls are hidden; the settings chosen before still apply
    settings = kept_settings(max_tokens)
else:  # a popover, not an expander: its widgets are drawn in the browser only once it is opened
    with sampling_column.popover("Sampling", icon=":material/tune:", help="Greedy or random, temperature, "
                                 "top-k, top-p, seed and how many tokens to write"):
        settings = settings_controls(max_tokens)
summary_column.caption(settings.summary())
next_clicked = next_column.button("Next token", help="Generate one more token")
generate_clicked = generate_column.button("Generate", type="primary", help="Generate to the end")
if gpt2viz.EOT_TEXT in prompt:  # below the buttons: the page's first two stay Next token and Generate
    typed_eot_hint(prompt)
live = st.empty()
if next_clicked or generate_clicked:
    try:
        extended = session.to_extend(current, prompt, settings, restart_finished=generate_clicked)
        if extended is not None:
            extend(current.source, extended.generation, generate_clicked, live)
            session.select_step(len(extended.generation.steps) - 1)
    except gpt2viz.PromptError as err:
        session.forget()
        st.error(str(err))
        st.stop()  # the one message: no hint below it
    except StepFailed as failure:  # the generation is as it was before the step: shown below
        st.error(str(failure))

teacher_round(current)  # in a live class, for the teacher: "what comes next?"
kept = session.current(current)  # a generation of another prompt or model is not this prompt's
if kept is None:
    st.info("Press **Next token** for one step, or **Generate** to write to the end.")
    st.stop()
if not kept.is_for(current.model, prompt, settings):
    st.caption("Showing this prompt's last generation, made with other sampling settings. "
               "Press Generate to write it with these.")
generation = kept.generation
record = session.step_picker(kept)
live.markdown(strip(generation, record.index), unsafe_allow_html=True)
st.caption("Grey: prompt tokens; blue: generated tokens; outlined: the selected step. The bar under each "
           "token is how surprising it was to the model, given the tokens before it: green expected, red "
           "unexpected (hover for its probability). “·” marks a space, “↵” a newline. A purple bracket "
           "with a character above joins tokens that are each only some bytes of that character (\\xNN: "
           "one byte).")
json_column, trace_column, _ = st.columns([2, 2, 1])  # wide enough for the labels at 1280 px
# Callables: made only when clicked (a full recording is large).
json_column.download_button("Download the generation (JSON)", on_click="ignore",
                            file_name="gpt2viz-generation.json", mime="application/json",
                            data=lambda: json.dumps(generation.to_dict(), indent=1, ensure_ascii=False))
trace_column.download_button("Download the recording (trace)", on_click="ignore",
                             file_name="gpt2viz-trace.safetensors", mime="application/octet-stream",
                             data=lambda: trace_bytes(full_recording(current.source, tuple(generation.ids))),
                             help="Every hook point of the whole sequence; open it with gpt2viz.load_trace")
if generation.finished:
    reason = session.STOP_MESSAGES[generation.steps[-1].stop_reason]
    st.success(f"Stopped after {len(generation.steps)} new tokens: {reason}.")
chart(st, candidates_figure, step_candidates(record.top, record.token_id, record.text, record.prob),
      f"Step {record.index + 1}: candidates for position {record.position} "
      f"(chosen p = {percent(record.prob)})", key="candidates")
if not presenter_on():
    comparison_section(current, generation.ids)

