"""Rounds of a live class: "what comes next?".

The teacher, on the Generate page at a step, asks (`teacher_round`): the round is the token after
the text the teacher's view shows up to that step. Every follower then sees that text and a guess
box instead of the page (`follower_round`), so the page cannot give the answer away; the teacher's
page shows, live, how many have answered and the class's guesses (each read as its first token:
gpt2viz.guesses) beside the model's likeliest tokens. Reveal takes the step (the generation goes on
by one token if it had not got there) and selects it; every follower then sees what the model
drew, its candidates, and the probability the model gave to their own guess. No names: a guess is
kept under its browser session's id, in the class store, and expires with the round.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st
import torch

import gpt2viz
from gpt2viz import Candidate
from gpt2viz.generation import top_tokens
from gpt2viz.guesses import MAX_GUESS_CHARS, GuessError, clean_guess, guess_token, rank_of, tally
from gpt2viz.viz.candidates import candidates_figure, percent, step_candidates
from gpt2viz.viz.rounds import round_figure
from gpt2viz.viz.tokens import visible_token

from . import chosen_model, live_class, session, state
from .charts import chart
from .class_settings import class_settings
from .class_store import ClassStoreDown, Reveal, Round
from .computations import next_token_logits
from .models import CurrentModel, tokenizer
from .sampling_controls import ask_for_tokens
from .settings import kept_settings
from .step_worker import StepFailed

SHOWN_CHARS = 600  # a long text so far shows its end: what the next word continues


def escaped(text: str) -> str:
    """`text` shown as itself in Markdown: every character Markdown or HTML could read escaped."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~$&:" else ch for ch in text)


def text_shown(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else "…" + text[-SHOWN_CHARS:]


def _can_go_on(current: CurrentModel, generation: gpt2viz.Generation) -> bool:
    """Whether the generation can be written a token further: it has not finished, or it stopped
    only at its length and this server allows one more (the reveal then writes it one longer)."""
    if not generation.finished:
        return True
    most = class_settings().token_cap(current.model.config.n_positions)
    stopped_at_length = generation.steps[-1].stop_reason == gpt2viz.STOP_MAX_TOKENS
    return stopped_at_length and len(generation.steps) < most


def _so_far(current: CurrentModel) -> tuple[int, list[int]] | None:
    """(the step asked about, the ids before it) for the teacher's selected step; None, with a
    note, when the generation cannot go on there."""
    kept = session.current(current)
    if kept is None:
        return 0, session.analysed_ids(current)  # before the first token: the prompt
    generation = kept.generation
    step = session.selected_step(kept) + 1
    if step >= len(generation.steps) and not _can_go_on(current, generation):
        reason = session.STOP_MESSAGES[generation.steps[-1].stop_reason]
        st.warning(f"The generation ends here ({reason}): select an earlier step to ask what comes next.")
        return None
    return step, generation.ids[:len(generation.prompt_ids) + step]


def _one_longer(current: CurrentModel, generation: gpt2viz.Generation) -> gpt2viz.Generation:
    """The same generation written again one token longer (the same draws: the same seed), kept
    as the session's, and "Max new tokens" set to its length."""
    ask_for_tokens(len(generation.steps) + 1)
    longer = session.start(current.model, state.get(state.PROMPT), kept_settings())
    session.generate(current.source, longer, until=len(generation.steps) + 1)
    session.set_generation(longer)
    return longer


def _ask(current: CurrentModel) -> None:
    try:
        asked = _so_far(current)
    except gpt2viz.PromptError as err:
        st.warning(str(err))
        return
    if asked is None:
        return
    step, ids = asked
    tok = tokenizer()
    probs = torch.softmax(next_token_logits(current.source, tuple(ids)).float(), dim=-1)
    text = tok.decode([i for i in ids if i != gpt2viz.EOT_ID])
    top = [tuple(c) for c in top_tokens(probs, tok, 10)]
    round_ = Round(uuid.uuid4().hex[:12], step, text, top, time.time())
    live_class.class_store().open_round(round_)
    st.session_state[state.ROUND_PROBS] = (round_.id, tuple(ids), probs)


def teacher_round(current: CurrentModel) -> None:
    """On the Generate page of the teacher: the Ask button, and the round's live panel."""
    if not live_class.leading():
        return
    try:
        if st.button("Ask: what comes next?", help="Every student following you guesses the token after "
                     "the selected step; you see their guesses beside the model's"):
            _ask(current)
        round_ = live_class.class_store().state().round
    except ClassStoreDown as down:
        st.warning(str(down), icon="⚠️")
        return
    if round_ is not None:
        _round_panel(current.source, round_.id)


@st.fragment(run_every=1)
def _round_panel(source: str, round_id: str) -> None:
    store = live_class.class_store()
    try:
        round_ = store.state().round
        guesses = store.guesses(round_id)
        followers = store.follower_count(time.time())
    except ClassStoreDown as down:
        st.warning(str(down), icon="⚠️")
        return
    if round_ is None or round_.id != round_id:
        return
    counted = tally(tokenizer(), guesses.values(), round_.text, [Candidate(*c) for c in round_.top])
    answered = f"{counted.answered} of {followers} following" if followers else f"{counted.answered}"
    st.markdown(f"**What comes next?** {answered} have answered.")
    drawn = round_.reveal.token_id if round_.reveal is not None else None
    chart(st, round_figure, counted, drawn=drawn, key="round")
    columns = iter(st.columns([1, 1, 3]))  # the buttons side by side from the left
    if round_.reveal is None and next(columns).button(
            "Reveal", type="primary", help="Take the step and show everyone what the model drew"):
        _reveal(round_, guesses)
        st.rerun()
    if next(columns).button("End the round", help="Students go back to following your view"):
        store.end_round()
        st.rerun()


def _reveal(round_: Round, guesses: dict[str, str]) -> None:
    """The round's step taken (if the generation had not got there) and selected, and every guess's
    probability under the model, for the followers."""
    current = chosen_model.current()
    kept = session.current(current)
    try:
        if kept is None:
            kept = session.to_extend(current, state.get(state.PROMPT),
                                     kept_settings(class_settings().token_cap(current.model.config.n_positions)),
                                     restart_finished=True)
        generation = kept.generation
        if len(generation.steps) <= round_.step:
            if not generation.finished:
                session.generate(current.source, generation, until=round_.step + 1)
            elif _can_go_on(current, generation):
                generation = _one_longer(current, generation)
    except (StepFailed, gpt2viz.PromptError) as failure:
        st.error(str(failure))
        return
    if len(generation.steps) <= round_.step:
        st.warning("The generation ended before this step: nothing to reveal. End the round and ask again.")
        return
    drawn = generation.steps[round_.step]
    before = tuple(generation.ids[:drawn.position])
    asked = st.session_state.get(state.ROUND_PROBS)
    probs = asked[2] if asked is not None and asked[:2] == (round_.id, before) else \
        torch.softmax(next_token_logits(current.source, before).float(), dim=-1)
    tok = tokenizer()
    tokens = {sid: guess_token(tok, text, round_.text) for sid, text in guesses.items()}
    reveal = Reveal(drawn.token_id, drawn.text, drawn.prob,
                    {sid: float(probs[t]) for sid, t in tokens.items()},
                    {sid: rank_of(probs, t) for sid, t in tokens.items()})
    try:
        live_class.class_store().reveal(round_.id, reveal)
    except ClassStoreDown as down:
        st.warning(str(down), icon="⚠️")
        return
    st.session_state.pop(state.ROUND_PROBS, None)
    session.select_step(round_.step, chosen=True)


def follower_round(loaded: CurrentModel) -> None:
    """Before a follower's page: while a round is open, its question instead of the page; once
    revealed, the answer above the page."""
    if not live_class.following():
        return
    seen = live_class.seen()
    round_ = seen.state.round if seen is not None and seen.state is not None else None
    if round_ is None:
        return
    session_id = st.session_state.setdefault(state.GUESSER, uuid.uuid4().hex)
    try:
        mine = live_class.class_store().guesses(round_.id).get(session_id)
    except ClassStoreDown as down:
        st.warning(str(down), icon="⚠️")
        return
    if round_.reveal is None:
        _question(round_, session_id, mine)
        st.stop()  # the page would show the answer
    _answer(round_, session_id, mine)


def _question(round_: Round, session_id: str, mine: str | None) -> None:
    st.title("What comes next?")
    st.caption("The teacher asks: which word will the model write next? Send your guess; you can change "
               "it until the answer is revealed.")
    with st.container(border=True):
        st.markdown(escaped(text_shown(round_.text)) + " **…?**")
    with st.form("guess", clear_on_submit=True):
        typed = st.text_input("Your guess for the next word", max_chars=MAX_GUESS_CHARS,
                              key=state.GUESS_INPUT)
        sent = st.form_submit_button("Send my guess", type="primary")
    if sent:
        try:
            guess = clean_guess(typed)
            if not live_class.class_store().guess(round_.id, session_id, guess):
                st.info("This round has closed: the answer is on its way.")
                return
            mine = guess
        except GuessError as err:
            st.error(str(err))
        except ClassStoreDown as down:
            st.warning(str(down), icon="⚠️")
    if mine is not None:
        st.success(f"Your guess: **{escaped(mine)}**. Waiting for the teacher to reveal what the model "
                   "wrote.")


def _answer(round_: Round, session_id: str, mine: str | None) -> None:
    reveal = round_.reveal
    st.subheader("What came next")
    drawn = escaped(visible_token(reveal.text))
    lines = [f"The model wrote **{drawn}** (it gave it {percent(reveal.prob)})."]
    if session_id in reveal.probabilities and mine is not None:
        token = guess_token(tokenizer(), mine, round_.text)
        read = visible_token(tokenizer().token_text(token))
        lines.append(f"Your guess **{escaped(mine)}** (read as the token {escaped(read)}): the model gave it "
                     f"{percent(reveal.probabilities[session_id])}, its choice number "
                     f"{reveal.ranks[session_id]:,} of {tokenizer().n_vocab:,}.")
    else:
        lines.append("You did not guess in this round.")
    st.markdown(" ".join(lines))
    chart(st, candidates_figure, step_candidates(round_.top, reveal.token_id, reveal.text, reveal.prob),
          "The model's candidates for the next token", key="round_candidates")
