"""Lesson: how GPT-2 works, one short card at a time, each with the live model's numbers."""

import streamlit as st

import gpt2viz
from app import chosen_model, state
from app.charts import chart
from app.computations import lesson
from app.lesson.content import CAT_SENTENCE, load_cards
from app.lesson.views import card_view
from app.navigation import page_at
from app.pickers import point_query_at, select_head
from app.presenter import BESIDE_TEXT_HEIGHT, BESIDE_TEXT_WIDTH, presenter_on, side_by_side
from app.sidebar import fallback_banner


def go_to(index: int) -> None:
    state.put(state.LESSON_CARD, index)


presenter = presenter_on()
if not presenter:
    st.title("Lesson: how GPT-2 works")
current = chosen_model.current()
if not presenter:  # in presenter view the progress line says it
    fallback_banner(current)
cards = load_cards()
count = len(cards)
state.fit_choice(state.LESSON_CARD, range(count), 0)
index = state.get(state.LESSON_CARD)

prompt = state.get(state.PROMPT)
try:
    lesson(current.source, prompt)
except gpt2viz.PromptError as err:
    st.info(f"{err} The lesson uses the example sentence instead.")
    prompt = CAT_SENTENCE

# In presenter view the card starts near the top and fits a 1280×720 screen: progress and buttons
# on one row, the text beside the figure. Moving between cards then never needs a scroll.
if presenter:
    progress_column, previous_column, next_column = st.columns([4, 1, 1], vertical_alignment="bottom")
    offline = f" · offline: {gpt2viz.BUNDLED_NAME}, not OpenAI's GPT-2" if current.fallback_reason else ""
    progress_column.progress((index + 1) / count, text=f"Card {index + 1} of {count}{offline}")
else:
    st.progress((index + 1) / count, text=f"Card {index + 1} of {count}")
    previous_column, next_column, picker_column = st.columns([1, 1, 4], vertical_alignment="bottom")
    state.widget(picker_column.selectbox, "Go to card", list(range(count)), key=state.LESSON_CARD,
                 format_func=lambda i: f"{i + 1}. {cards[i].title}")
# The arrow keys too: a presenter's clicker sends them.
previous_column.button("Previous", key="lesson_previous", disabled=index == 0, on_click=go_to,
                       args=(index - 1,), width="stretch", shortcut="Left")
next_column.button("Next", key="lesson_next", type="primary", disabled=index == count - 1, on_click=go_to,
                   args=(index + 1,), width="stretch", shortcut="Right")

card = cards[index]
view = card_view(lesson(current.source, prompt), card.id)  # the numbers once, the figure each run
if presenter:
    st.subheader(card.title, divider="gray", anchor=False)
    text_column, figure_column = side_by_side([2, 3])
else:
    st.header(card.title, divider="gray")
    text_column = figure_column = st.container()
text_column.markdown(card.text)
if presenter:
    row = text_column.container(horizontal=True, gap="medium")
    for label, value in view.metrics:
        row.metric(label, value, width="content")
else:
    for column, (label, value) in zip(text_column.columns(len(view.metrics)), view.metrics, strict=True):
        column.metric(label, value)
if view.html:
    figure_column.markdown(view.html, unsafe_allow_html=True)
if view.figure is not None:
    chart(figure_column, view.figure, key=f"lesson_{card.id}", presenter_height=BESIDE_TEXT_HEIGHT,
          presenter_width=BESIDE_TEXT_WIDTH)
if view.note:
    text_column.caption(view.note)

if "query" in view.selection:
    point_query_at(current, view.selection["query"])
if "layer" in view.selection:
    select_head(view.selection["layer"], view.selection.get("head"))
see = page_at(card.see)
st.page_link(see.path, label=f"See it: the {see.title} page", icon=":material/open_in_new:")
if not presenter:
    st.caption(f"Model: **{current.model.name}** · prompt: “{prompt}”. Change the prompt on the Generate "
               "page; the “cat” and “black” cards always use their own sentence.")
