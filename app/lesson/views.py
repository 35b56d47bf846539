"""The Lesson's cards as views: for each card, the live numbers, one figure (or a token strip) and
a note, built from an `app.lesson.content.Lesson`. The page only draws a `CardView`."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import plotly.graph_objects as go

from gpt2viz import BUNDLED_NAME, EOT_TEXT, STOP_CONTEXT, STOP_ENDOFTEXT, kv_cache_bytes
from gpt2viz.budget import byte_size
from gpt2viz.viz.candidates import Candidates, candidates_figure, percent
from gpt2viz.viz.lens import residual_norms_figure
from gpt2viz.viz.lesson import (
    block_pushes_figure,
    head_bars_figure,
    masks_figure,
    mlp_widths_figure,
    sharpness_figure,
    temperatures_figure,
    token_ids_html,
)
from gpt2viz.viz.step import strips_figure
from gpt2viz.viz.tokens import token_labels, token_strip_html, visible_token

from ..stylesheet import section
from .content import (
    MASK_TOKENS,
    MLP_LAYER,
    Continuation,
    Lesson,
    bidirectional_mask,
    block_parameters,
)


@dataclass(frozen=True)
class CardView:
    metrics: list[tuple[str, str]]  # (label, value): live numbers shown large
    figure: go.Figure | None = None
    html: str | None = None  # token strips (HTML, escaped)
    note: str = ""  # Markdown: what the live numbers say
    # What the "see it" page should select: any of "layer", "head", "query".
    selection: dict[str, int] = field(default_factory=dict)


def short_name(name: str) -> str:
    """A model's name for titles and notes: the last part of a path or repo id (for a weights file,
    its folder's name), so a model loaded from /home/…/my-model reads "my-model"."""
    path = PurePath(name)
    if path.suffix == ".safetensors":
        path = path.parent if path.parent.name else PurePath(path.stem)
    return path.name or name


def quoted(text: str) -> str:
    """A token's text, visible and in quotes, for titles and notes."""
    return f"“{visible_token(text)}”"



# --- one view per card ------------------------------------------------------------------------

def _tail(texts: Sequence[str], count: int = 4) -> str:
    """The last `count` tokens as one quoted snippet."""
    return ("…" if len(texts) > count else "") + "".join(texts[-count:])


def next_token_view(lesson: Lesson) -> CardView:
    top = lesson.next_tokens
    labels = [visible_token(t) for _, t, _ in top]
    title = (f"{short_name(lesson.model.name)}'s {len(top)} likeliest next tokens after "
             f"“{_tail(lesson.texts)}”")
    fig = candidates_figure(Candidates(labels, [p for _, _, p in top], 0), title)
    return CardView(
        metrics=[("Top guess", quoted(top[0].text)), ("Its probability", percent(top[0].prob)),
                 ("Tokens scored", f"{lesson.config.vocab_size:,}")],
        figure=fig,
        note=f"These {len(top)} tokens share {percent(sum(p for _, _, p in top))} of the probability; "
             f"the other {lesson.config.vocab_size - len(top):,} tokens share the rest. Taking the top one "
             "every time is called greedy decoding (marked “chosen”).",
    )


def tokens_view(lesson: Lesson) -> CardView:
    return CardView(
        metrics=[("Characters", f"{len(lesson.prompt):,}"), ("Words", f"{len(lesson.prompt.split()):,}"),
                 ("Tokens", f"{len(lesson.ids):,}")],
        html=token_ids_html(lesson.texts, lesson.ids),
        note="Your prompt as the model sees it: each box is one token, with its id below "
             "(“·” is a space, “↵” a new line).",
    )


def embeddings_view(lesson: Lesson) -> CardView:
    trace, last = lesson.trace, lesson.last
    token = quoted(lesson.texts[last])
    rows = [(f"token {token} (id {lesson.ids[last]})", trace["embed"][last].numpy()),
            (f"position {last}", trace["pos_embed"][last].numpy()),
            ("sum: enters block 0", trace["resid_pre", 0][last].numpy())]
    return CardView(
        metrics=[("d_model", f"{lesson.config.n_embd:,} numbers"),
                 ("Token table", f"{lesson.config.vocab_size:,} × {lesson.config.n_embd:,}"),
                 ("Position table", f"{lesson.config.n_positions:,} × {lesson.config.n_embd:,}")],
        figure=strips_figure(rows, f"The last token of your prompt, {token} at position {last}"),
        note="Hover a cell to read its number. These tables were learned in training, like every "
             "other weight of the model.",
    )


def _cat_selection(lesson: Lesson) -> dict[str, int]:
    selection = {"layer": lesson.cat.layer, "head": lesson.cat.head}
    if lesson.cat_query_in_prompt is not None:
        selection["query"] = lesson.cat_query_in_prompt
    return selection


def _cat_link_note(lesson: Lesson) -> str:
    if lesson.cat_query_in_prompt is not None:
        return ""
    return (f" The page linked below shows your own prompt, with layer {lesson.cat.layer}, head "
            f"{lesson.cat.head} selected.")


def qkv_view(lesson: Lesson) -> CardView:
    cat, sharpness = lesson.cat, lesson.sharpness
    trace = cat.trace
    rows = [("query of “cat”", trace["q", cat.layer][cat.query, cat.head].numpy()),
            ("key of “black”", trace["k", cat.layer][cat.key, cat.head].numpy()),
            ("value of “black”", trace["v", cat.layer][cat.key, cat.head].numpy())]
    fig = strips_figure(rows, f"Layer {cat.layer}, head {cat.head}: vectors of d_k = {lesson.config.d_head} "
                              "numbers", "component")
    rank = int((sharpness.dots > sharpness.dots[cat.key]).sum()) + 1
    return CardView(
        metrics=[("Head", f"layer {cat.layer}, head {cat.head}"),
                 ("query(cat) · key(black)", f"{sharpness.dots[cat.key]:.2f}"),
                 ("Rank of “black” among the keys", f"{rank} of {len(sharpness.dots)}")],
        figure=fig,
        note="Shown for the head where “cat” looks at “black” the most. Where the query and the key "
             "have the same sign, their product adds to the dot product." + _cat_link_note(lesson),
        selection=_cat_selection(lesson),
    )


def cat_black_view(lesson: Lesson) -> CardView:
    cat = lesson.cat
    even = 1.0 / (cat.query + 1)
    fig = head_bars_figure(cat.attention[cat.layer].numpy(), cat.head, even,
                           f"Layer {cat.layer}: how much “cat” attends to “black”, head by head")
    n_heads = cat.attention.numel()
    return CardView(
        metrics=[("Strongest head", f"layer {cat.layer}, head {cat.head}"),
                 ("Its weight on “black”", percent(cat.weight)),
                 (f"Average over all {n_heads} heads", percent(float(cat.attention.mean())))],
        figure=fig,
        note=f"“cat” can see {cat.query + 1} tokens (itself and the {cat.query} before it), so an even "
             f"spread would give each {percent(even)}. The chart shows layer {cat.layer}, which holds the "
             f"strongest head of the {lesson.config.n_layer} layers." + _cat_link_note(lesson),
        selection=_cat_selection(lesson),
    )


def scaling_view(lesson: Lesson) -> CardView:
    cat, sharpness = lesson.cat, lesson.sharpness
    keys = token_labels(cat.texts[: cat.query + 1])
    fig = sharpness_figure(sharpness.weights, sharpness.unscaled_weights, sharpness.d_k, keys,
                           f"Layer {cat.layer}, head {cat.head}: the weights of “cat” over its keys")
    return CardView(
        metrics=[(f"Largest weight ÷ √{sharpness.d_k}", percent(sharpness.max_weight)),
                 ("Largest weight, undivided", percent(sharpness.unscaled_max_weight)),
                 ("Entropy ÷ √d_k → undivided",
                  f"{sharpness.entropy:.2f} → {sharpness.unscaled_entropy:.2f} bits")],
        figure=fig,
        note=f"d_k = {sharpness.d_k}, so the scores are divided by {np.sqrt(sharpness.d_k):.2f}. Undivided, "
             f"they range from {sharpness.dots.min():.1f} to {sharpness.dots.max():.1f}; divided, from "
             f"{sharpness.scaled.min():.2f} to {sharpness.scaled.max():.2f}. Entropy measures how spread out "
             f"the weights are: 0 bits means all weight on one key, {np.log2(len(keys)):.2f} bits an even "
             f"spread over these {len(keys)}.",
        selection=_cat_selection(lesson),
    )


def mask_view(lesson: Lesson) -> CardView:
    trace = lesson.mask_trace
    allowed = trace["mask", 0].numpy().astype(bool)
    count = allowed.shape[0]
    pattern = trace["pattern", 0].numpy()  # [head, q, k]
    future = float(np.where(~allowed[None], pattern, 0.0).max())
    labels = token_labels(lesson.texts[:count])
    return CardView(
        metrics=[("Weight on later tokens", f"{future:g}"),
                 ("Cells hidden by the mask", f"{int((~allowed).sum())} of {count * count}"),
                 ("Weight on itself, first token", percent(float(pattern[:, 0, 0].min())))],
        figure=masks_figure(allowed, bidirectional_mask(count), labels),
        note=f"The first {count} tokens of your prompt (at most {MASK_TOKENS}). Blue: the token of the row "
             "may look at the token of the column; grey: hidden. “Weight on later tokens” is "
             f"the largest attention any head of layer 0 gives to a hidden cell in this run. The first "
             f"token can only see itself, so all of its weight stays there.",
    )


def heads_view(lesson: Lesson) -> CardView:
    cfg, trace, last = lesson.config, lesson.trace, lesson.last
    layer = min(MLP_LAYER, cfg.n_layer - 1)
    rows = [("heads' outputs, end to end", trace["z", layer][last].reshape(-1).numpy()),
            ("× W_O: the layer's output", trace["attn_out", layer][last].numpy())]
    fig = strips_figure(rows, f"Layer {layer} at the last token, {quoted(lesson.texts[last])}",
                        boundaries=cfg.d_head)
    return CardView(
        metrics=[("Heads per layer", str(cfg.n_head)), ("d_k per head", str(cfg.d_head)),
                 ("Heads × d_k", f"{cfg.n_head} × {cfg.d_head} = {cfg.n_head * cfg.d_head}")],
        figure=fig,
        note=f"W_O is a {cfg.n_embd} × {cfg.n_embd} matrix; every output number mixes all heads.",
        selection={"layer": layer},
    )


def mlp_view(lesson: Lesson) -> CardView:
    cfg, trace, last = lesson.config, lesson.trace, lesson.last
    layer = min(MLP_LAYER, cfg.n_layer - 1)
    post = trace["post", layer][last].numpy()
    fig = mlp_widths_figure(trace["normalized", layer, "ln2"][last].numpy(), post,
                            trace["mlp_out", layer][last].numpy(),
                            f"Layer {layer}'s feed-forward layer at {quoted(lesson.texts[last])}, drawn to "
                            "scale")
    active = int((post > 0).sum())
    return CardView(
        metrics=[("d_model", f"{cfg.n_embd:,}"), ("d_mlp", f"{cfg.d_mlp:,}"),
                 ("Wider by", f"{cfg.d_mlp / cfg.n_embd:g}×")],
        figure=fig,
        note=f"{active:,} of the {cfg.d_mlp:,} neurons are above zero after GELU for this token "
             f"({percent(active / cfg.d_mlp)}). Each row has its own colour range.",
        selection={"layer": layer},
    )


def residual_view(lesson: Lesson) -> CardView:
    norms, last, width = lesson.norms, lesson.last, lesson.config.n_embd
    first, end = float(norms.resid[0, last]), float(norms.resid[-1, last])
    return CardView(
        metrics=[("Length after the embeddings", f"{first:.1f}"),
                 ("Length after the last block", f"{end:.1f}"),
                 ("Grew by", f"{end / first:.1f}×")],
        figure=residual_norms_figure(norms, last),
        note=f"Lengths (L2 norms) at the last token, {quoted(lesson.texts[last])}. Whatever the stream's "
             f"length, a layer norm hands its sub-layer a vector of mean 0 and spread 1, whose length is "
             f"√{width} ≈ {np.sqrt(width):.1f} (before its learned scale and shift).",
    )


def stacking_view(lesson: Lesson) -> CardView:
    dla, cfg = lesson.attribution, lesson.config
    token = quoted(lesson.next_tokens[0].text)
    attn, mlp = dla.heads.sum(1).numpy(), dla.mlps.numpy()
    fig = block_pushes_figure(attn, mlp, dla.rest["embeddings"],
                              f"How each block pushed the logit of {token}")
    per_block = block_parameters(lesson.model)
    total = sum(p.numel() for p in lesson.model.parameters())
    biases = dla.rest["attention output biases"] + dla.rest["final LayerNorm bias"]
    return CardView(
        metrics=[("Blocks", str(cfg.n_layer)), ("Parameters per block", f"{per_block:,}"),
                 ("All blocks / whole model",
                  f"{per_block * cfg.n_layer / 1e6:.1f} M / {total / 1e6:.1f} M")],
        figure=fig,
        note=f"The parts add up to the logit of {token}, the top guess: {dla.total:.2f} (with "
             f"{biases:.2f} from the biases). The rest of the parameters are mostly the token table.",
    )


def sampling_view(lesson: Lesson) -> CardView:
    table = lesson.temperatures
    fig = temperatures_figure(
        table.labels, table.temperatures, table.probs,
        f"The {len(table.ids)} likeliest next tokens at {len(table.temperatures)} temperatures")
    return CardView(
        metrics=[(f"Top token at T = {temp:g}", percent(float(table.probs[i, 0])))
                 for i, temp in enumerate(table.temperatures)],
        figure=fig,
        note=f"Logits of the next token after “{_tail(lesson.texts)}”, divided by each temperature, then "
             "softmax. A low temperature piles the probability on the top tokens; a high one spreads it out.",
    )


def _strip(continuation: Continuation, texts: Callable[[list[int]], list[str]]) -> str:
    return token_strip_html(texts(continuation.prompt_ids), texts(continuation.new_ids))


STOPS = {STOP_ENDOFTEXT: f"it chose `{EOT_TEXT}`", STOP_CONTEXT: "the context window is full"}


def kv_cache_view(lesson: Lesson) -> CardView:
    cfg = lesson.config
    continuation = lesson.continuation
    full = byte_size(kv_cache_bytes(cfg, cfg.n_positions, lesson.model.dtype))
    if continuation is None:
        return CardView(
            metrics=[("Context window", f"{cfg.n_positions:,} tokens"), ("Cache when full", full)],
            note="Your prompt already fills the context window: there is no room for another token.")
    total = len(continuation.prompt_ids) + len(continuation.new_ids)
    why = STOPS.get(continuation.stop_reason, f"it wrote the {len(continuation.new_ids)} tokens asked for")
    return CardView(
        metrics=[("Context window", f"{cfg.n_positions:,} tokens"),
                 (f"Cache at {total} tokens", byte_size(kv_cache_bytes(cfg, total, lesson.model.dtype))),
                 ("Cache when full", full)],
        html=_strip(continuation, lesson.tok.token_texts),
        note=f"Blue: the {len(continuation.new_ids)} tokens {short_name(lesson.model.name)} wrote after your "
             f"prompt, one per step, always taking the likeliest. It stopped because {why}. The cache holds "
             f"a key and a value for every token in each of the {cfg.n_layer} layers.",
    )


def demo_note(model_name: str) -> str:
    """What to expect from the prompting demos, said plainly."""
    if model_name == BUNDLED_NAME:
        return (f"{BUNDLED_NAME} is a tiny model trained on little text (1960s American English and "
                "Python documentation). It has not learned to summarise or translate, so do not expect "
                "either here: this shows how the prompt steers a model, not a working summary.")
    return (f"{short_name(model_name)} was never trained for these tasks, and GPT-2 of any size does them "
            "poorly; larger, newer models do them well.")


def beyond_view(lesson: Lesson) -> CardView:
    parts = []
    for demo in lesson.demos:
        written = html.escape(lesson.tok.decode(demo.new_ids).strip() or "(nothing)")
        parts.append(f"<div class='lesson-demo'><p><b>{html.escape(demo.label)}</b>: what "
                     f"{html.escape(short_name(lesson.model.name))} wrote ({len(demo.new_ids)} tokens, "
                     "greedy):</p>"
                     f"<blockquote>{written}</blockquote>{_strip(demo, lesson.tok.token_texts)}</div>")
    return CardView(
        metrics=[(demo.label + ": tokens written", str(len(demo.new_ids))) for demo in lesson.demos],
        html=section("lesson-demo") + "".join(parts),
        note=f"Grey: the prompt; blue: the output, unedited. {demo_note(lesson.model.name)}",
    )


VIEWS: dict[str, Callable[[Lesson], CardView]] = {
    "next_token": next_token_view,
    "tokens": tokens_view,
    "embeddings": embeddings_view,
    "qkv": qkv_view,
    "cat_black": cat_black_view,
    "scaling": scaling_view,
    "mask": mask_view,
    "heads": heads_view,
    "mlp": mlp_view,
    "residual": residual_view,
    "stacking": stacking_view,
    "sampling": sampling_view,
    "kv_cache": kv_cache_view,
    "beyond": beyond_view,
}


def card_view(lesson: Lesson, card_id: str) -> CardView:
    """The view of one card; a KeyError names an unknown card id."""
    try:
        view = VIEWS[card_id]
    except KeyError:
        raise KeyError(f"No lesson card {card_id!r}; known: {', '.join(VIEWS)}.") from None
    return view(lesson)
