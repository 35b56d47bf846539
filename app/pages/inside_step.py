"""Inside a step: one generated token's whole forward pass, over the key/value cache."""

import streamlit as st

from app import chosen_model, session, state
from app.charts import chart
from app.computations import inside_step, lens_at, lens_overview, sequence_norms, sequence_trace
from app.models import tokenizer
from app.pickers import explained_position, pick_head, pick_layer
from app.step_sampling import sampling_chain
from gpt2viz import kv_cache_bytes
from gpt2viz.budget import byte_size
from gpt2viz.kv_cache import forward_multiply_adds
from gpt2viz.lens import residual_points
from gpt2viz.viz.lens import (
    lens_grid,
    lens_overview_figure,
    lens_window,
    logit_lens_figure,
    residual_norms_figure,
)
from gpt2viz.viz.step import (
    cache_overview_figure,
    kv_cache_figure,
    step_block,
    step_scores_figure,
    strips_figure,
    top_neurons_figure,
)
from gpt2viz.viz.tokens import visible_token

st.title("Inside a step")
st.caption("How GPT-2 makes one token: the newest token goes through every block alone, its query "
           "reads the keys and values cached from earlier steps, and the last block's output "
           "becomes the probabilities the next token is drawn from.")
current = chosen_model.current()
model, config, tok = current.model, current.model.config, tokenizer()
here = explained_position(current)
ids, query = here.ids, here.position  # query: the position this step runs
if here.step is not None:
    chosen, index, seed = here.step.token_id, here.step.index, here.kept.generation.settings["seed"]
else:
    chosen, index, seed = None, 0, state.get(state.SEED)
    st.info("No generation yet: this is the prompt's last token. Generate on the Generate page to "
            "step through the tokens it writes.")
labels, key = session.labels_for(ids), (current.source, tuple(ids))
step = inside_step(*key, query)

entering = visible_token(tok.token_text(ids[query]))
st.subheader(f"1. The token {entering!r} (id {ids[query]}) enters at position {query}")
sequence = sequence_trace(*key)
first = step_block(model, step, sequence, 0, 0, labels)
embeddings = [("token embedding", first.embed), ("position embedding", first.pos_embed),
              ("sum", first.resid_pre)]
chart(st, strips_figure, embeddings, "A row of wte plus a row of wpe", key="embeddings")

st.subheader("2. One block, with the key/value cache")
layer_column, head_column = st.columns(2)
layer, head = pick_layer(config, layer_column), pick_head(config, head_column)
block = step_block(model, step, sequence, layer, head, labels)
chart(st, strips_figure, [("ln_1(x)", block.ln1)], f"Layer {layer}: ln_1 normalises the residual stream",
      key="ln1")
new_qkv = [("q", block.q), ("k", block.keys[-1]), ("v", block.values[-1])]
new_title = f"Head {head}: the new token's query, key and value"
chart(st, strips_figure, new_qkv, new_title, "d_head component", key="qkv_new")
dtype = str(model.dtype).removeprefix("torch.")
st.markdown(
    f"**The cache** holds the keys and values of all {query} earlier positions, in every layer: "
    f"{byte_size(kv_cache_bytes(config, query + 1, model.dtype))} for the whole model with this step's row "
    f"({byte_size(kv_cache_bytes(config, config.n_positions, model.dtype))} at the "
    f"{config.n_positions}-token "
    f"limit, {dtype}). Thanks to it this step costs {forward_multiply_adds(config, 1, query) / 1e6:,.1f} M "
    f"multiply-adds, against {forward_multiply_adds(config, query + 1) / 1e6:,.1f} M to run the whole "
    "sequence again.")
keys_column, values_column = st.columns(2)
where = f"layer {layer} head {head}"
chart(keys_column, kv_cache_figure, block.keys, block.key_labels, f"Cached keys, {where}", key="cache_k")
chart(values_column, kv_cache_figure, block.values, block.key_labels, f"Cached values, {where}",
      key="cache_v")
chart(st, cache_overview_figure, block, key="cache_overview")
chart(st, step_scores_figure, block, key="step_scores")
st.caption("The query scores every cached key, the scores are divided by √d_head and turned into "
           "weights by softmax; the weights mix the cached values into z.")
heads = f"All {config.n_head} heads' z concatenated (lines between heads)"
chart(st, strips_figure, [("z, every head", block.z_heads)], heads, boundaries=block.d_head, key="z_heads")
attention_added = [("resid_pre", block.resid_pre), ("+ attention", block.attn_out),
                   ("= resid_mid", block.resid_mid)]
added_title = "W_O · z + b_O is added to the residual stream"
chart(st, strips_figure, attention_added, added_title, key="attn_add")
chart(st, top_neurons_figure, block, key="mlp_neurons")
mlp_added = [("resid_mid", block.resid_mid), ("+ MLP", block.mlp_out), ("= resid_post", block.resid_post)]
wider = f"The MLP, {config.d_mlp // config.n_embd}× wider ({config.d_mlp} neurons), adds its output"
chart(st, strips_figure, mlp_added, wider, key="mlp_add")

st.subheader("3. From the last block to the next token")
sampling_chain(here.kept, step.logits, chosen, seed, index)

st.subheader("4. The residual stream across depth")
chart(st, residual_norms_figure, sequence_norms(*key), query, key="residual_norms")
positions = tuple(lens_window(query + 1, query))  # ending at the step: later tokens are not written yet
overview = lens_overview(*key).numpy()[:, : query + 1]
points = [label for label, _, _ in residual_points(config.n_layer)]
chart(st, lens_overview_figure, overview, points, positions, query, key="lens_overview")
lens = lens_at(*key, positions)
lens_labels = [labels[position] for position in positions]
chart(st, logit_lens_figure, lens_grid(lens, tok, lens_labels), query, key="logit_lens")
st.caption("The logit lens: the residual stream at each depth put through ln_f and the unembedding, as "
           "if the model stopped there. Each cell names the most likely next token; colour is its "
           "probability.")
check = (f"This step used the key/value cache; a full re-run of the whole sequence gives logits that "
         f"differ by at most {step.max_logit_diff:.1e}")
if step.max_logit_diff < 1e-3:
    st.success(check + ": the same, up to float rounding.")
else:
    st.warning(check + ": more than float rounding explains.")
