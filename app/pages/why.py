"""Why this token? What pushed the model to this token rather than another, and what changes it."""

import streamlit as st

from app import chosen_model, state
from app.charts import chart
from app.computations import attribution, explained_step, input_saliency
from app.models import tokenizer
from app.pickers import explained_position, on_grid_click, pick_head, pick_layer
from app.why_sections import (
    ablation_section,
    compare_section,
    distractor_picker,
    force_section,
    top_candidates,
)
from gpt2viz.attribution import SALIENCY_BF16_FROM, saliency_in_bf16
from gpt2viz.viz.why import (
    dla_heads_figure,
    dla_parts_figure,
    ranked_saliency,
    ranked_saliency_figure,
    saliency_caption,
    saliency_html,
    saliency_window,
)

st.title("Why this token?")
st.caption("Which parts of the model pushed it to this token rather than another: each head's and "
           "MLP's direct push on the logits, which input tokens mattered, and what changes when a "
           "head is switched off or another token is forced.")
current = chosen_model.current()
model, config, tok = current.model, current.model.config, tokenizer()
here = explained_position(current)
ids, position, record = here.ids, here.position, here.step
logits = explained_step(current.source, tuple(ids), position).logits[-1]  # [vocab]
if record is not None:
    top, target = record.top, record.token_id
else:
    top = top_candidates(logits)
    target = top[0].token_id
    st.info("No generation yet: this explains the prompt's most likely next token. Generate on the "
            "Generate page to explain each token it writes.")

distractor = distractor_picker(top, target)
versus = "" if distractor is None else f" rather than {tok.token_text(distractor)!r}"
st.subheader(f"Position {position} → {tok.token_text(target)!r}{versus}")

layer_column, head_column = st.columns(2)
layer, head = pick_layer(config, layer_column), pick_head(config, head_column)
dla = attribution(current.source, tuple(ids), position, target, distractor)
actual = float(logits[target] - (logits[distractor] if distractor is not None else 0.0))
left, right = st.columns([3, 2])
chart(left, dla_heads_figure, dla, (layer, head), "Each head's direct push (click a head to select it)",
      key=state.DLA_GRID,
      events=dict(on_select=lambda: on_grid_click(state.DLA_GRID), selection_mode="points"))
chart(right, dla_parts_figure, dla, actual, key="dla_parts")
st.caption("Direct logit attribution: what each part wrote into the residual stream at this position, "
           "read through the final LayerNorm (its scale fixed at this position) and the unembedding "
           "direction of the target" + (" minus the distractor." if distractor is not None else "."))

st.markdown("**Which input tokens mattered** (gradient × input; red pushed towards the target, blue away)")
if position == 0:
    st.info("This is the first position: there is no earlier token to attribute to.")
values = input_saliency(current.source, tuple(ids), position, target, distractor).numpy()
texts = tok.token_texts(ids[: position + 1])
shown = saliency_window(len(values))
left, right = st.columns([3, 2])
left.markdown(saliency_html(texts, values, shown), unsafe_allow_html=True)
window_note = (f" The strip shows the last {len(shown)} tokens, up to the explained one; the list ranks all "
               f"{position:,} earlier tokens." if shown.start else "")
left.caption(saliency_caption(values) + window_note)
if saliency_in_bf16(position):
    left.caption(f"At {SALIENCY_BF16_FROM} tokens or more the gradients run in bfloat16, about 2.5× faster "
                 "on this CPU: each value is within about 1% of the largest.")
if position > 0:
    ranked = ranked_saliency(texts, values)
    chart(right, ranked_saliency_figure, ranked, f"The {len(ranked)} earlier tokens that mattered most",
          key="saliency_ranked")

ablation_section(current, here.kept, ids, position, top, logits, (layer, head))
if here.kept is not None:
    force_section(current, here.kept, record)
compare_section(current, (layer, head))
