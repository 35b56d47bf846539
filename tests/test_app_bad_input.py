"""Bad input gets a clear message or renders literally: never a traceback, never live HTML."""

import pytest

import gpt2viz
from gpt2viz import EOT_ID, load_tokenizer
from tests.app_support import (
    PAGES,
    app_config,
    assert_steps,
    escaped_tokens,
    generate,
    new_app,
    press_next,
    session_generation,
    strip_html,
    strip_spans,
    texts,
)

pytestmark = pytest.mark.usefixtures("app_model")


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_empty_prompt_says_so_on_every_page(prompt):
    at = new_app()
    at.text_area(key="prompt").input(prompt)
    press_next(at)
    # one clear message: the error, and no hint, info or progress bar beside it
    assert texts(at, "error") == [gpt2viz.errors.EMPTY_PROMPT]
    assert texts(at, "info") == [] and not at.get("progress")
    assert "generation" not in at.session_state
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception
        assert any("The prompt is empty" in w for w in texts(at, "warning"))


def test_prompt_longer_than_the_context_gets_one_message_on_every_page():
    """Generate keeps a position free for the token it writes, the analysis pages need none; both
    ask for the same cut, so that a prompt shortened as told runs everywhere."""
    n = app_config().n_positions
    at = new_app()
    at.text_area(key="prompt").input(" a" * (n + 5))  # n + 5 tokens: " a" is one
    at.button[1].click().run()
    assert not at.exception
    want = (f"The prompt is {n + 5:,} tokens; this model's context holds {n:,}, and generating keeps one "
            f"of them free for the new token. Shorten it by 6 tokens or more (to {n - 1:,} at most).")
    assert texts(at, "error") == [want]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception and texts(at, "warning") == [want], page


def test_a_prompt_that_fills_the_context_runs_but_cannot_generate():
    n = app_config().n_positions
    at = new_app()
    at.text_area(key="prompt").input("a" + " a" * (n - 1))  # exactly n tokens
    at.button[1].click().run()
    assert texts(at, "error") == [gpt2viz.errors.prompt_too_long(n, n)]
    assert texts(at, "error")[0].endswith(f"Shorten it by 1 token or more (to {n - 1:,} at most).")
    at.switch_page(PAGES[2]).run()  # Q·K·V reads the prompt alone: it fits
    assert not at.exception and texts(at, "warning") == [] and len(at.dataframe[0].value) == n


def test_endoftext_typed_in_the_prompt_is_plain_text():
    at = generate(new_app(), "Hello<|endoftext|>world", max_new_tokens=2)
    run = session_generation(at)
    assert EOT_ID not in run.prompt_ids and len(run.prompt_ids) > 3
    # typed as text, it is nine ordinary tokens, each in its own box: Hello < | end of text | > world
    pieces = load_tokenizer().token_texts(run.prompt_ids)
    assert pieces == ["Hello", "<", "|", "end", "of", "text", "|", ">", "world"]
    assert strip_spans(strip_html(at), "prompt") == escaped_tokens(pieces)
    # and the page says so, naming the switch that gives the real token; typed inside the text,
    # there is no button to move it into the switch
    (hint,) = [i for i in texts(at, "info") if "<|endoftext|>" in i]
    assert "the model reads it as 7 ordinary tokens (`<`, `|`, `end`, `of`, `text`, `|`, `>`)" in hint
    assert "The **Start with <|endoftext|>** switch puts the real token before the prompt." in hint
    assert not [b for b in at.button if b.key == "typed_eot"]


@pytest.mark.parametrize("prompt", ["I ❤️ 🐈‍⬛ cats", "שלום עולם مرحبا", "zero\u200bwidth\u200djoin\u200f"])
def test_unicode_prompts_run_and_render(prompt):
    at = generate(new_app(), prompt, max_new_tokens=2)
    html = strip_html(at)
    run = session_generation(at)
    assert strip_spans(html, "prompt") == escaped_tokens(load_tokenizer().token_texts(run.prompt_ids))
    assert strip_spans(html, "gen") == escaped_tokens([s.text for s in run.steps])
    assert_steps(at, 2)
    if "🐈" in prompt:  # its four bytes are three tokens: bracketed with the cat drawn above
        assert "<rt>·🐈</rt>" in html and "<rt>·❤</rt>" in html
    if "\u200b" in prompt:
        assert "⟨U+200B⟩" in html and "\u200b" not in html
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception


def test_html_in_the_prompt_renders_literally():
    attack = "<script>alert(1)</script><b>x</b>"
    at = generate(new_app(), attack, max_new_tokens=2)
    html = strip_html(at)
    assert "<script" not in html and "<b>" not in html
    # each of GPT-2's 15 tokens of the attack escaped once in its own box, in order: none dropped,
    # none merged, none escaped twice (written out, so a wrong escape cannot agree with itself)
    assert strip_spans(html, "prompt") == [
        "&lt;", "script", "&gt;", "alert", "(", "1", ")&lt;/", "script", "&gt;&lt;", "b", "&gt;", "x",
        "&lt;/", "b", "&gt;"]
    run = session_generation(at)
    assert strip_spans(html, "gen") == escaped_tokens([s.text for s in run.steps])
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception
        assert not [m for m in texts(at, "markdown") if "<script" in m or "<b>x" in m]
