"""Lesson: how GPT-2 works, one short card at a time, each with the live model's numbers."""

import streamlit as st

import gpt2viz
from app import state
from app.charts import chart
from app.computations import lesson, lesson_card
from app.lesson.content import CAT_SENTENCE, load_cards
from app.navigation import page_at
from app.pickers import point_query_at
from app.presenter import presenter_on
from app.sidebar import current_model, fallback_banner

SELECTION = {"layer": state.LAYER, "head": state.HEAD}  # and "query": point_query_at


def go_to(index: int) -> None:
    state.put(state.LESSON_CARD, index)


st.title("Lesson: how GPT-2 works")
current = current_model()
presenter = presenter_on()
fallback_banner(current)
cards = load_cards()
count = len(cards)
state.keep_within(state.LESSON_CARD, range(count), 0)
index = state.get(state.LESSON_CARD)

prompt = state.get(state.PROMPT)
try:
    lesson(current.source, prompt)
except gpt2viz.PromptError as err:
    st.info(f"{err} The lesson uses the example sentence instead.")
    prompt = CAT_SENTENCE

st.progress((index + 1) / count, text=f"Card {index + 1} of {count}")
previous_column, next_column, picker_column = st.columns([1, 1, 4], vertical_alignment="bottom")
# The arrow keys too: a presenter's clicker sends them.
previous_column.button("Previous", key="lesson_previous", disabled=index == 0, on_click=go_to,
                       args=(index - 1,),
                       width="stretch", shortcut="Left")
next_column.button("Next", key="lesson_next", type="primary", disabled=index == count - 1, on_click=go_to,
          args=(index + 1,), width="stretch", shortcut="Right")
if not presenter:
    state.widget(picker_column.selectbox, "Go to card", list(range(count)), key=state.LESSON_CARD,
                 format_func=lambda i: f"{i + 1}. {cards[i].title}")

card = cards[index]
st.header(card.title, divider="gray")
st.markdown(card.text)
view = lesson_card(current.source, prompt, card.id)
for column, (label, value) in zip(st.columns(len(view.metrics)), view.metrics, strict=True):
    column.metric(label, value)
if view.html:
    st.markdown(view.html, unsafe_allow_html=True)
if view.figure is not None:
    chart(st, view.figure, key=f"lesson_{card.id}")
if view.note:
    st.caption(view.note)

for name, value in view.selection.items():
    if name == "query":
        point_query_at(current, value)
    else:
        state.put(SELECTION[name], value)
see = page_at(card.see)
st.page_link(see.path, label=f"See it: the {see.title} page", icon=":material/open_in_new:")
if not presenter:
    st.caption(f"Model: **{current.model.name}** · prompt: “{prompt}”. Change the prompt on the Generate "
               "page; the “cat” and “black” cards always use their own sentence.")
