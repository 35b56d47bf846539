"""The parts of the Why-this-token page that take input: the distractor, an ablation, a forced
token and a second prompt. Each shows its problem as one message instead of failing the page."""

from __future__ import annotations

import streamlit as st
import torch

import gpt2viz
from gpt2viz import Candidate, Step
from gpt2viz.generation import top_tokens
from gpt2viz.interventions import parse_units
from gpt2viz.viz.attention import attention_heatmap_figure, attention_matrix
from gpt2viz.viz.candidates import candidates_figure, step_candidates
from gpt2viz.viz.tokens import token_labels, visible_token
from gpt2viz.viz.why import branches, branches_html

from . import state
from .charts import chart
from .computations import ablated_logits, attention_layer, continuation, next_token_logits
from .models import CurrentModel, tokenizer
from .session import SessionGeneration

TYPED, NONE = -1, -2  # distractor choices besides the candidates
Top = list[Candidate]


def top_candidates(logits: torch.Tensor) -> Top:
    """The 10 likeliest tokens after `logits`, as a generation step lists them."""
    return top_tokens(logits.float().softmax(-1), tokenizer(), 10)


def probability(logits: torch.Tensor, token: int) -> float:
    """The softmax probability of `token` under `logits` [vocab] (in float64: a token far down the
    list keeps its small probability instead of rounding to 0)."""
    return float(logits.double().softmax(-1)[token])


def _chart(top: Top, target: int, prob: float, title: str, key: str, where) -> None:
    """The candidates with the target marked; a target outside `top` gets its own last bar, with
    its probability `prob`."""
    chart(where, candidates_figure, step_candidates(top, target, tokenizer().token_text(target), prob), title,
          key=key)


def distractor_picker(top: Top, target: int) -> int | None:
    """The token the target is weighed against: the runner-up by default, another candidate, one
    typed, or none (the target's logit alone)."""
    others = [t for t, _, _ in top if t != target]
    options = [*others, TYPED, NONE]
    state.fit_choice(state.DISTRACTOR, options, others[0] if others else NONE)
    names = {t: f"#{i + 1} {visible_token(text)!r}" for i, (t, text, _) in enumerate(top)}
    names.update({TYPED: "type a token…", NONE: "none: the target's logit alone"})
    choice = state.widget(st.selectbox, "Against which token?", options, key=state.DISTRACTOR,
                          format_func=names.__getitem__)
    if choice == NONE:
        return None
    if choice != TYPED:
        return choice
    text = state.widget(st.text_input, "Distractor token (with its leading space, if any)",
                        key=state.DISTRACTOR_TEXT)
    try:
        return tokenizer().single_token(text, "The distractor")
    except ValueError as err:
        st.warning(str(err))
        return None


def ablation_section(current: CurrentModel, kept: SessionGeneration | None, ids: list[int], position: int,
                     top: Top, logits: torch.Tensor, selected: tuple[int, int]) -> None:
    """The candidates at `position` as the model ran (`top`, from `logits`) and with the chosen
    heads or neurons switched off."""
    st.subheader("Switch parts off")
    c1, c2, c3 = st.columns([2, 2, 1])
    kind = state.widget(c1.radio, "Ablate", state.ABLATE_KINDS, key=state.ABLATE_KIND,
                        horizontal=True)
    mode = state.widget(c3.radio, "Set to", state.ABLATE_MODES, key=state.ABLATE_MODE, horizontal=True,
                        help="mean: the head's (neuron's) mean over the sequence's positions")
    try:
        if kind == "selected head":
            units = [selected]
        else:
            units = parse_units(state.widget(c2.text_input, f"{kind} as layer.index, e.g. 0.3, 1.2",
                                             key=state.ABLATE_UNITS))
        unit_kind = "neurons" if kind == "neurons" else "heads"
        after = ablated_logits(current.source, tuple(ids[: position + 1]), tuple(units), unit_kind, mode)
    except ValueError as err:
        st.warning(str(err))
        return
    generation = kept.generation if kept is not None else None
    target = top[0].token_id if generation is None else generation.ids[position + 1]
    names = ", ".join(f"{la}.{u}" for la, u in units)
    left, right = st.columns(2)
    _chart(top, target, probability(logits, target), "As the model ran", "before_ablation", left)
    what = unit_kind if len(units) > 1 else unit_kind[:-1]
    _chart(top_candidates(after), target, probability(after, target), f"With {what} {names} set to {mode}",
           "after_ablation", right)
    rerun = generation is not None and state.widget(
        st.toggle, "Also write the whole generation again with it", key=state.ABLATE_RERUN,
        help="Runs the model for every generated token: on only when asked for")
    if rerun:
        ablated = continuation(current.source, tuple(generation.prompt_ids),
                               tuple(generation.settings.items()), (tuple(units), unit_kind, mode))
        br = branches(len(generation.prompt_ids), generation.ids, ablated, tokenizer().token_text)
        st.markdown(branches_html(br, ("original", "ablated")), unsafe_allow_html=True)
        st.caption("The whole generation run again from the prompt with the ablation; outlined from the "
                   "first token that differs." if br.diverge is not None else
                   "The whole generation run again from the prompt with the ablation: it writes the same.")


def force_section(current: CurrentModel, kept: SessionGeneration, record: Step) -> None:
    """The generation written again from `record`'s step with another token there; a sampled one
    draws its later tokens with the original's random numbers, step for step, or with fresh ones."""
    st.subheader("Force another token")
    generation = kept.generation
    options = [t for t, _, _ in record.top]
    state.fit_choice(state.FORCED, options, options[1] if len(options) > 1 else options[0])
    forced = state.widget(st.selectbox, f"At step {record.index + 1}, write instead", options,
                          key=state.FORCED, format_func=lambda t: visible_token(tokenizer().token_text(t)))
    prefix = generation.ids[: record.position] + [forced]
    left = generation.settings["max_new_tokens"] - record.index - 1
    sampled = generation.settings["temperature"] > 0 and left > 0
    fresh = sampled and state.widget(
        st.toggle, "Fresh random numbers for the branch", key=state.FRESH_DRAWS,
        help="Off: each later step draws with the random number the original drew with at that step. "
             "On: with numbers the original never drew.")
    # the original's step k draws with number k (gpt2viz.Generation); past the context, no step's
    first_draw = record.index + 1 + (current.model.config.n_positions if fresh else 0)
    settings = {**generation.settings, "max_new_tokens": left}
    branch = continuation(current.source, tuple(prefix), tuple(settings.items()),
                          first_draw=first_draw) if left > 0 else prefix
    br = branches(record.position, generation.ids, branch, tokenizer().token_text)
    st.markdown(branches_html(br, ("original", "forced")), unsafe_allow_html=True)
    st.caption(branch_caption(generation.ids[record.position + 1:], branch[record.position + 1:],
                              sampled, fresh, left))


def branch_caption(original: list[int], branch: list[int], sampled: bool, fresh: bool, left: int) -> str:
    """What the forced branch's later tokens are drawn with, in plain words; `original` and `branch`
    are the tokens after the forced one."""
    if left <= 0:
        return "The forced token is the generation's last: nothing is written after it."
    if not sampled:
        return ("The generation goes on from the forced token with the same settings. It is greedy: each "
                "later token is the likeliest one, with no random draw.")
    if fresh:
        return ("The generation goes on from the forced token with the same settings, drawing fresh random "
                "numbers, ones the original never drew: the branch differs from the original by the forced "
                "token and by chance.")
    same = sum(a == b for a, b in zip(original, branch, strict=False))
    return (f"The generation goes on from the forced token with the same settings, and each later step "
            f"draws with the same random number as the original's step at that place. Where the forced "
            f"token changed the model's probabilities little, that draw picks the original's token again "
            f"({same} of {len(branch)} later tokens here): the same luck, not the model repeating "
            f"itself. Switch on fresh random numbers to draw new ones.")


def compare_section(current: CurrentModel, selected: tuple[int, int]) -> None:
    st.subheader("Compare two prompts")
    first = state.get(state.PROMPT)
    second = state.widget(st.text_input, "A second prompt", key=state.COMPARE_PROMPT,
                          placeholder="e.g. the same sentence with one word changed")
    if not second.strip():
        st.caption("Type a second prompt to see both runs' attention and next-token candidates side by side.")
        return
    layer, head = selected
    columns = st.columns(2)
    for i, (prompt, column) in enumerate(zip((first, second), columns, strict=True)):
        try:
            ids = gpt2viz.encode_prompt(current.model, tokenizer(), prompt, reserve=0)
        except gpt2viz.PromptError as err:
            column.warning(str(err))
            continue
        trace = attention_layer(current.source, tuple(ids), layer)
        labels = token_labels(tokenizer().token_texts(ids))
        matrix = attention_matrix(trace, layer, head, "pattern", labels)
        chart(column, attention_heatmap_figure, matrix, key=f"compare_attention_{i}")
        top = top_candidates(next_token_logits(current.source, tuple(ids)))
        _chart(top, top[0].token_id, top[0].prob, f"Next token after prompt {i + 1}",
               f"compare_candidates_{i}", column)
