"""The Q·K·V and Why-this-token pages at a long context: a labelled window of the keys (tokens)
up to the explained position, with an overview (a ranked list) of all of them."""

import re

import numpy as np
import pytest

import gpt2viz
from gpt2viz.attribution import saliency, saliency_in_bf16
from gpt2viz.viz.tokens import token_labels, visible_token
from tests.app_support import GENERATE, QKV, WHY, app_config, app_gpt2, figure, new_app, texts

pytestmark = pytest.mark.usefixtures("app_model")

PARAGRAPH = ("The old house stood at the end of the lane, and every evening the children ran past it "
             "to the river, where the water was cold and the stones were smooth. ")


@pytest.fixture(scope="module")
def long_ids() -> list[int]:
    """A prompt of 300 tokens or more that fits the app's model, from a repeated paragraph."""
    tok = gpt2viz.load_tokenizer()
    n = min(400, app_config().n_positions - 1)
    text = PARAGRAPH * (n // len(tok.encode(PARAGRAPH)) + 1)
    ids = tok.encode(text)[:n]
    assert len(ids) > 2 * 64
    return ids


def typed(ids: list[int], page: str):
    """A session with the prompt `ids` typed (not generated), opened on `page`."""
    at = new_app(GENERATE)
    at.text_area(key="prompt").input(gpt2viz.load_tokenizer().decode(ids)).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_qkv_scores_show_the_64_keys_up_to_the_query_and_a_line_of_all(long_ids):
    at = typed(long_ids, QKV)
    n = len(long_ids)
    query = at.selectbox(key="query").value
    assert query == n - 1  # the prompt's last token
    labels = token_labels(gpt2viz.load_tokenizer().token_texts(long_ids))
    fig = figure(at, "scores")
    scores, _, weights, line, best = fig["data"]
    window = labels[n - 64:]
    assert list(scores["x"]) == window and list(fig["layout"]["xaxis3"]["tickvals"]) == window
    recorded = app_gpt2().run_with_capture(long_ids, names=["blocks.0.attn.hook_pattern"])
    pattern = recorded["pattern", 0][0, query]  # layer 0, head 0: the page's defaults
    np.testing.assert_allclose(np.asarray(line["y"], dtype=float), pattern.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(weights["y"], dtype=float), pattern.numpy()[n - 64:], atol=1e-5)
    title = f"Keys {n - 64}–{n - 1} of {n}: the 64 up to the query {labels[-1]}"
    assert fig["layout"]["title"]["text"] == title
    # the table keeps every key; the caption names the strongest ones
    assert len(at.dataframe[0].value) == n
    strongest = [int(i) for i in np.argsort(-pattern.numpy(), kind="stable")[:3]]
    assert list(best["x"]) == strongest
    (note,) = [c for c in texts(at, "caption") if c.startswith("The bars show")]
    assert note.startswith(f"The bars show 64 of the {n} keys") and labels[strongest[0]] in note


def test_why_strip_is_a_window_and_the_list_ranks_every_earlier_token(long_ids):
    at = typed(long_ids, WHY)
    n = len(long_ids)
    model, texts_ = app_gpt2(), gpt2viz.load_tokenizer().token_texts(long_ids)
    top2 = model.next_token_logits(long_ids).topk(2).indices.tolist()  # the target and its runner-up
    values = saliency(model, long_ids, n - 1, top2[0], top2[1], bf16=saliency_in_bf16(n - 1)).numpy()
    (strip,) = [m for m in texts(at, "markdown") if "sal-explained" in m and "sal-strip" in m]
    positions = [int(p) for p in re.findall(r'title="position (\d+):', strip)]
    assert positions == list(range(n - 64, n)) and f"… {n - 64:,} earlier tokens" in strip
    bar = figure(at, "saliency_ranked")["data"][0]
    shown = [int(name.split(" ", 1)[0]) for name in bar["y"]]
    assert len(shown) == 15 and n - 1 not in shown  # the explained token is not ranked
    assert [f"{i} {visible_token(texts_[i])}" for i in shown] == list(bar["y"])
    magnitudes = np.abs(np.asarray(bar["x"], dtype=float))
    assert (np.diff(magnitudes) <= 1e-9).all()  # largest first
    limit = np.abs(values[:-1]).max()
    np.testing.assert_allclose(np.asarray(bar["x"], dtype=float), values[shown], atol=0.02 * limit)
    # no earlier token outside the list beats the list's last one by more than bf16's noise
    rest = np.delete(np.abs(values[:-1]), shown)
    assert rest.max() <= magnitudes[-1] + 0.02 * limit
    assert any(c.startswith("Full colour:") and "the last 64 tokens" in c for c in texts(at, "caption"))
