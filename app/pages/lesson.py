"""Lesson: how GPT-2 works, one short card at a time, each with the live model's numbers."""

import streamlit as st

import gpt2viz
from app import state
from app.charts import chart
from app.model_picker import current_model, fallback_banner
from app.presenter import presenter_on
from app.resources import lesson, lesson_card
from gpt2viz.lesson import CAT_SENTENCE, load_cards

# The page each card's "see it" link opens, by url path (as streamlit_app.py registers them).
PAGES = {
    "/": ("app/pages/generate.py", "Generate"),
    "attention": ("app/pages/attention.py", "Attention"),
    "qkv": ("app/pages/qkv.py", "Q · K · V"),
    "mlp": ("app/pages/mlp.py", "MLP"),
    "step": ("app/pages/inside_step.py", "Inside a step"),
    "why": ("app/pages/why.py", "Why this token?"),
}
SELECTION = {"layer": state.LAYER, "head": state.HEAD, "query": state.QUERY}


def go_to(index: int) -> None:
    state.put(state.LESSON_CARD, index)


st.title("Lesson: how GPT-2 works")
current = current_model()
presenter = presenter_on()
fallback_banner(current)
cards = load_cards()
n = len(cards)
state.keep_within(state.LESSON_CARD, range(n), 0)
index = state.get(state.LESSON_CARD)

prompt = state.get(state.PROMPT)
try:
    lesson(current.source, prompt)
except gpt2viz.PromptError as err:
    st.info(f"{err} The lesson uses the example sentence instead.")
    prompt = CAT_SENTENCE

st.progress((index + 1) / n, text=f"Card {index + 1} of {n}")
c1, c2, c3 = st.columns([1, 1, 4], vertical_alignment="bottom")
# The arrow keys too: a presenter's clicker sends them.
c1.button("Previous", key="lesson_previous", disabled=index == 0, on_click=go_to, args=(index - 1,),
          width="stretch", shortcut="Left")
c2.button("Next", key="lesson_next", type="primary", disabled=index == n - 1, on_click=go_to,
          args=(index + 1,), width="stretch", shortcut="Right")
if not presenter:
    state.widget(c3.selectbox, "Go to card", list(range(n)), key=state.LESSON_CARD,
                 format_func=lambda i: f"{i + 1}. {cards[i].title}")

card = cards[index]
st.header(card.title, divider="gray")
st.markdown(card.text)
v = lesson_card(current.source, prompt, card.id)
for column, (label, value) in zip(st.columns(len(v.metrics)), v.metrics, strict=True):
    column.metric(label, value)
if v.html:
    st.markdown(v.html, unsafe_allow_html=True)
if v.figure is not None:
    chart(st, v.figure, key=f"lesson_{card.id}")
if v.note:
    st.caption(v.note)

for name, value in v.selection.items():
    state.put(SELECTION[name], value)
path, title = PAGES[card.see]
st.page_link(path, label=f"See it: the {title} page", icon=":material/open_in_new:")
if not presenter:
    st.caption(f"Model: **{current.model.name}** · prompt: “{prompt}”. Change the prompt on the Generate "
               "page; the “cat” and “black” cards always use their own sentence.")
