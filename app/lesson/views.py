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


_DEMO_CSS = (".lesson-demo{margin:0.6rem 0 1.4rem 0}.lesson-demo blockquote{margin:0.2rem 0 0.6rem 0;"
             "padding:0.3rem 0.8rem;border-left:4px solid #6fa8dc;background:#f4f8fc;font-style:italic}")

# --- one view per card ------------------------------------------------------------------------

def _tail(texts: Sequence[str], n: int = 4) -> str:
    """The last `n` tokens as one quoted snippet."""
    return ("…" if len(texts) > n else "") + "".join(texts[-n:])


def next_token_view(ls: Lesson) -> CardView:
    top = ls.next_tokens
    labels = [visible_token(t) for _, t, _ in top]
    title = f"{short_name(ls.model.name)}'s {len(top)} likeliest next tokens after “{_tail(ls.texts)}”"
    fig = candidates_figure(Candidates(labels, [p for _, _, p in top], 0), title)
    return CardView(
        metrics=[("Top guess", quoted(top[0].text)), ("Its probability", percent(top[0].prob)),
                 ("Tokens scored", f"{ls.config.vocab_size:,}")],
        figure=fig,
        note=f"These {len(top)} tokens share {percent(sum(p for _, _, p in top))} of the probability; "
             f"the other {ls.config.vocab_size - len(top):,} tokens share the rest. Taking the top one "
             "every time is called greedy decoding (marked “chosen”).",
    )


def tokens_view(ls: Lesson) -> CardView:
    return CardView(
        metrics=[("Characters", f"{len(ls.prompt):,}"), ("Words", f"{len(ls.prompt.split()):,}"),
                 ("Tokens", f"{len(ls.ids):,}")],
        html=token_ids_html(ls.texts, ls.ids),
        note="Your prompt as the model sees it: each box is one token, with its id below "
             "(“·” is a space, “↵” a new line).",
    )


def embeddings_view(ls: Lesson) -> CardView:
    t, n = ls.trace, ls.last
    token = quoted(ls.texts[n])
    rows = [(f"token {token} (id {ls.ids[n]})", t["embed"][n].numpy()),
            (f"position {n}", t["pos_embed"][n].numpy()),
            ("sum: enters block 0", t["resid_pre", 0][n].numpy())]
    return CardView(
        metrics=[("d_model", f"{ls.config.n_embd:,} numbers"),
                 ("Token table", f"{ls.config.vocab_size:,} × {ls.config.n_embd:,}"),
                 ("Position table", f"{ls.config.n_positions:,} × {ls.config.n_embd:,}")],
        figure=strips_figure(rows, f"The last token of your prompt, {token} at position {n}"),
        note="Hover a cell to read its number. These tables were learned in training, like every "
             "other weight of the model.",
    )


def _cat_selection(ls: Lesson) -> dict[str, int]:
    selection = {"layer": ls.cat.layer, "head": ls.cat.head}
    if ls.cat_query_in_prompt is not None:
        selection["query"] = ls.cat_query_in_prompt
    return selection


def _cat_link_note(ls: Lesson) -> str:
    if ls.cat_query_in_prompt is not None:
        return ""
    return (f" The page linked below shows your own prompt, with layer {ls.cat.layer}, head "
            f"{ls.cat.head} selected.")


def qkv_view(ls: Lesson) -> CardView:
    c, s = ls.cat, ls.sharpness
    t = c.trace
    rows = [("query of “cat”", t["q", c.layer][c.query, c.head].numpy()),
            ("key of “black”", t["k", c.layer][c.key, c.head].numpy()),
            ("value of “black”", t["v", c.layer][c.key, c.head].numpy())]
    fig = strips_figure(rows, f"Layer {c.layer}, head {c.head}: vectors of d_k = {ls.config.d_head} numbers",
                        "component")
    rank = int((s.dots > s.dots[c.key]).sum()) + 1
    return CardView(
        metrics=[("Head", f"layer {c.layer}, head {c.head}"),
                 ("query(cat) · key(black)", f"{s.dots[c.key]:.2f}"),
                 ("Rank of “black” among the keys", f"{rank} of {len(s.dots)}")],
        figure=fig,
        note="Shown for the head where “cat” looks at “black” the most. Where the query and the key "
             "have the same sign, their product adds to the dot product." + _cat_link_note(ls),
        selection=_cat_selection(ls),
    )


def cat_black_view(ls: Lesson) -> CardView:
    c = ls.cat
    even = 1.0 / (c.query + 1)
    fig = head_bars_figure(c.attention[c.layer].numpy(), c.head, even,
                           f"Layer {c.layer}: how much “cat” attends to “black”, head by head")
    n_heads = c.attention.numel()
    return CardView(
        metrics=[("Strongest head", f"layer {c.layer}, head {c.head}"),
                 ("Its weight on “black”", percent(c.weight)),
                 (f"Average over all {n_heads} heads", percent(float(c.attention.mean())))],
        figure=fig,
        note=f"“cat” can see {c.query + 1} tokens (itself and the {c.query} before it), so an even spread "
             f"would give each {percent(even)}. The chart shows layer {c.layer}, which holds the strongest "
             f"head of the {ls.config.n_layer} layers." + _cat_link_note(ls),
        selection=_cat_selection(ls),
    )


def scaling_view(ls: Lesson) -> CardView:
    c, s = ls.cat, ls.sharpness
    keys = token_labels(c.texts[: c.query + 1])
    fig = sharpness_figure(s.weights, s.unscaled_weights, s.d_k, keys,
                           f"Layer {c.layer}, head {c.head}: the weights of “cat” over its keys")
    return CardView(
        metrics=[(f"Largest weight ÷ √{s.d_k}", percent(s.max_weight)),
                 ("Largest weight, undivided", percent(s.unscaled_max_weight)),
                 ("Entropy ÷ √d_k → undivided", f"{s.entropy:.2f} → {s.unscaled_entropy:.2f} bits")],
        figure=fig,
        note=f"d_k = {s.d_k}, so the scores are divided by {np.sqrt(s.d_k):.2f}. Undivided, they range "
             f"from {s.dots.min():.1f} to {s.dots.max():.1f}; divided, from {s.scaled.min():.2f} to "
             f"{s.scaled.max():.2f}. Entropy measures how spread out the weights are: 0 bits means all "
             f"weight on one key, {np.log2(len(keys)):.2f} bits an even spread over these {len(keys)}.",
        selection=_cat_selection(ls),
    )


def mask_view(ls: Lesson) -> CardView:
    t = ls.mask_trace
    allowed = t["mask", 0].numpy().astype(bool)
    n = allowed.shape[0]
    pattern = t["pattern", 0].numpy()  # [head, q, k]
    future = float(np.where(~allowed[None], pattern, 0.0).max())
    labels = token_labels(ls.texts[:n])
    return CardView(
        metrics=[("Weight on later tokens", f"{future:g}"),
                 ("Cells hidden by the mask", f"{int((~allowed).sum())} of {n * n}"),
                 ("Weight on itself, first token", percent(float(pattern[:, 0, 0].min())))],
        figure=masks_figure(allowed, bidirectional_mask(n), labels),
        note=f"The first {n} tokens of your prompt (at most {MASK_TOKENS}). Blue: the token of the row may "
             "look at the token of the column; grey: hidden. “Weight on later tokens” is "
             f"the largest attention any head of layer 0 gives to a hidden cell in this run. The first "
             f"token can only see itself, so all of its weight stays there.",
    )


def heads_view(ls: Lesson) -> CardView:
    cfg, t, n = ls.config, ls.trace, ls.last
    layer = min(MLP_LAYER, cfg.n_layer - 1)
    rows = [("heads' outputs, end to end", t["z", layer][n].reshape(-1).numpy()),
            ("× W_O: the layer's output", t["attn_out", layer][n].numpy())]
    fig = strips_figure(rows, f"Layer {layer} at the last token, {quoted(ls.texts[n])}",
                        boundaries=cfg.d_head)
    return CardView(
        metrics=[("Heads per layer", str(cfg.n_head)), ("d_k per head", str(cfg.d_head)),
                 ("Heads × d_k", f"{cfg.n_head} × {cfg.d_head} = {cfg.n_head * cfg.d_head}")],
        figure=fig,
        note=f"W_O is a {cfg.n_embd} × {cfg.n_embd} matrix; every output number mixes all heads.",
        selection={"layer": layer},
    )


def mlp_view(ls: Lesson) -> CardView:
    cfg, t, n = ls.config, ls.trace, ls.last
    layer = min(MLP_LAYER, cfg.n_layer - 1)
    post = t["post", layer][n].numpy()
    fig = mlp_widths_figure(t["normalized", layer, "ln2"][n].numpy(), post, t["mlp_out", layer][n].numpy(),
                            f"Layer {layer}'s feed-forward layer at {quoted(ls.texts[n])}, drawn to scale")
    active = int((post > 0).sum())
    return CardView(
        metrics=[("d_model", f"{cfg.n_embd:,}"), ("d_mlp", f"{cfg.d_mlp:,}"),
                 ("Wider by", f"{cfg.d_mlp / cfg.n_embd:g}×")],
        figure=fig,
        note=f"{active:,} of the {cfg.d_mlp:,} neurons are above zero after GELU for this token "
             f"({percent(active / cfg.d_mlp)}). Each row has its own colour range.",
        selection={"layer": layer},
    )


def residual_view(ls: Lesson) -> CardView:
    norms, n, d = ls.norms, ls.last, ls.config.n_embd
    first, end = float(norms.resid[0, n]), float(norms.resid[-1, n])
    return CardView(
        metrics=[("Length after the embeddings", f"{first:.1f}"),
                 ("Length after the last block", f"{end:.1f}"),
                 ("Grew by", f"{end / first:.1f}×")],
        figure=residual_norms_figure(norms, n),
        note=f"Lengths (L2 norms) at the last token, {quoted(ls.texts[n])}. Whatever the stream's length, "
             f"a layer norm hands its sub-layer a vector of mean 0 and spread 1, whose length is "
             f"√{d} ≈ {np.sqrt(d):.1f} (before its learned scale and shift).",
    )


def stacking_view(ls: Lesson) -> CardView:
    dla, cfg = ls.attribution, ls.config
    token = quoted(ls.next_tokens[0].text)
    attn, mlp = dla.heads.sum(1).numpy(), dla.mlps.numpy()
    fig = block_pushes_figure(attn, mlp, dla.rest["embeddings"],
                              f"How each block pushed the logit of {token}")
    per_block = block_parameters(ls.model)
    total = sum(p.numel() for p in ls.model.parameters())
    biases = dla.rest["attention output biases"] + dla.rest["final LayerNorm bias"]
    return CardView(
        metrics=[("Blocks", str(cfg.n_layer)), ("Parameters per block", f"{per_block:,}"),
                 ("All blocks / whole model",
                  f"{per_block * cfg.n_layer / 1e6:.1f} M / {total / 1e6:.1f} M")],
        figure=fig,
        note=f"The parts add up to the logit of {token}, the top guess: {dla.total:.2f} (with "
             f"{biases:.2f} from the biases). The rest of the parameters are mostly the token table.",
    )


def sampling_view(ls: Lesson) -> CardView:
    t = ls.temperatures
    fig = temperatures_figure(
        t.labels, t.temperatures, t.probs,
        f"The {len(t.ids)} likeliest next tokens at {len(t.temperatures)} temperatures")
    return CardView(
        metrics=[(f"Top token at T = {temp:g}", percent(float(t.probs[i, 0])))
                 for i, temp in enumerate(t.temperatures)],
        figure=fig,
        note=f"Logits of the next token after “{_tail(ls.texts)}”, divided by each temperature, then "
             "softmax. A low temperature piles the probability on the top tokens; a high one spreads it out.",
    )


def _strip(c: Continuation, texts: Callable[[list[int]], list[str]]) -> str:
    return token_strip_html(texts(c.prompt_ids), texts(c.new_ids))


STOPS = {STOP_ENDOFTEXT: f"it chose `{EOT_TEXT}`", STOP_CONTEXT: "the context window is full"}


def kv_cache_view(ls: Lesson) -> CardView:
    cfg = ls.config
    c = ls.continuation
    full = byte_size(kv_cache_bytes(cfg, cfg.n_positions, ls.model.dtype))
    if c is None:
        return CardView(
            metrics=[("Context window", f"{cfg.n_positions:,} tokens"), ("Cache when full", full)],
            note="Your prompt already fills the context window: there is no room for another token.")
    total = len(c.prompt_ids) + len(c.new_ids)
    why = STOPS.get(c.stop_reason, f"it wrote the {len(c.new_ids)} tokens asked for")
    return CardView(
        metrics=[("Context window", f"{cfg.n_positions:,} tokens"),
                 (f"Cache at {total} tokens", byte_size(kv_cache_bytes(cfg, total, ls.model.dtype))),
                 ("Cache when full", full)],
        html=_strip(c, ls.tok.token_texts),
        note=f"Blue: the {len(c.new_ids)} tokens {short_name(ls.model.name)} wrote after your prompt, one "
             f"per step, always taking the likeliest. It stopped because {why}. The cache holds a key and a "
             f"value for every token in each of the {cfg.n_layer} layers.",
    )


def demo_note(model_name: str) -> str:
    """What to expect from the prompting demos, said plainly."""
    if model_name == BUNDLED_NAME:
        return (f"{BUNDLED_NAME} is a tiny model trained on little text (1960s American English and "
                "Python documentation). It has not learned to summarise or translate, so do not expect "
                "either here: this shows how the prompt steers a model, not a working summary.")
    return (f"{short_name(model_name)} was never trained for these tasks, and GPT-2 of any size does them "
            "poorly; larger, newer models do them well.")


def beyond_view(ls: Lesson) -> CardView:
    parts = []
    for c in ls.demos:
        written = html.escape(ls.tok.decode(c.new_ids).strip() or "(nothing)")
        parts.append(f"<div class='lesson-demo'><p><b>{html.escape(c.label)}</b>: what "
                     f"{html.escape(short_name(ls.model.name))} wrote ({len(c.new_ids)} tokens, greedy):</p>"
                     f"<blockquote>{written}</blockquote>{_strip(c, ls.tok.token_texts)}</div>")
    return CardView(
        metrics=[(c.label + ": tokens written", str(len(c.new_ids))) for c in ls.demos],
        html=f"<style>{_DEMO_CSS}</style>" + "".join(parts),
        note=f"Grey: the prompt; blue: the output, unedited. {demo_note(ls.model.name)}",
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
