"""Shareable links in the app: the address follows the view, and a fresh session opened from it
shows the same view (the same generation, written again to the same length, the same step and
choices); bad parameters fall back with one notice, never an error.

AppTest cannot open a page from an address's path: it selects pages by a hash. Before the first
run `switch_page` uses the hash of the file's name, which is the hash the page's address gives
when the file is named like its address (attention, qkv, mlp, why): for those pages the test opens
the link on the page itself, as a browser would. Inside a step's address is /step (its file is
inside_step.py), so its link is opened on the Generate page and the session then switches to it:
the restore is the same (it runs before any page), only the first page drawn differs.
"""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import gpt2viz
from app import share
from app.link_params import PUBLIC_URL_ENV, link_for
from app.state import DEFAULT_PROMPT
from gpt2viz.paths import ASSETS
from tests.app_support import (
    APP,
    ATTENTION,
    GENERATE,
    INSIDE_STEP,
    LESSON,
    MLP,
    PATCHING,
    QKV,
    WHY,
    app_config,
    app_gpt2,
    generate,
    new_app,
    session_generation,
    texts,
)

pytestmark = pytest.mark.usefixtures("app_model", "public_url")

HOST = "http://localhost:8501/"
ADDRESSES = {GENERATE: "", ATTENTION: "attention", QKV: "qkv", MLP: "mlp", INSIDE_STEP: "step", WHY: "why",
             LESSON: "lesson", PATCHING: "patching"}
TITLES = {GENERATE: "Generate", ATTENTION: "Attention", QKV: "Q · K · V", MLP: "MLP",
          INSIDE_STEP: "Inside a step", WHY: "Why this token?", LESSON: "Lesson: how GPT-2 works",
          PATCHING: "Patching"}
PROMPT = "The cat sat on the mat because it was warm"
NOTICE = "Some link settings were not usable and were reset: "


@pytest.fixture
def public_url(monkeypatch):
    """Links name the address these tests give the app; the rule for a teacher on localhost (the
    machine's network address instead) is tested on its own below."""
    monkeypatch.setenv(PUBLIC_URL_ENV, HOST.rstrip("/"))


def address(page: str) -> str:
    """The page's address as st.context.url gives it (the default page's without the final /)."""
    return (HOST + ADDRESSES[page]).rstrip("/")


def open_link(params: dict[str, str], page: str = GENERATE) -> AppTest:
    """A new session opened from a link to `page` with these query parameters."""
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params.update(params)
    at.context["url"] = address(page)
    if page != INSIDE_STEP:
        at.switch_page(page)  # before the first run: the page the address names (see the docstring)
    at.run()
    if page == INSIDE_STEP:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    compact = page == LESSON and params.get("presenter") == "true"  # presenter view's lesson has no title
    assert [t.value for t in at.title] == ([] if compact else [TITLES[page]])
    return at


def kept(at: AppTest, key: str):
    return at.session_state[key + ".remembered"]


def shared_link(at: AppTest) -> str:
    """The link in the sidebar's "Share this view" popover."""
    (box,) = [b for b in at.sidebar.get("popover") if b.proto.popover.label == "Share this view"]
    (code,) = box.code
    return code.value


def notices(at: AppTest) -> list[str]:
    return [w for w in texts(at, "warning") if w.startswith(NOTICE)]


def test_a_plain_visit_has_a_clean_address_and_the_address_follows_the_view():
    at = new_app()
    assert at.query_params == {} and notices(at) == []
    at.context["url"] = address(GENERATE)
    at.run()
    assert shared_link(at) == address(GENERATE)  # the bare address: the default view
    generate(at, PROMPT, max_new_tokens=3)
    steps = len(session_generation(at).steps)
    # made by the page after the sidebar was drawn: the address and the link follow at the page's end;
    # the last step is selected, as a fresh visit selects it: no step in the link
    assert at.query_params == {"prompt": PROMPT, "tokens": str(steps), "max_new_tokens": "3"}
    assert shared_link(at) == link_for(address(GENERATE), at.query_params)
    at.select_slider(key="step").set_value(0).run()
    assert at.query_params["step"] == "1"
    at.context["url"] = address(ATTENTION)
    at.switch_page(ATTENTION).run()
    at.selectbox(key="layer").set_value(1).run()
    assert at.query_params == {"prompt": PROMPT, "layer": "1", "tokens": str(steps), "step": "1",
                               "max_new_tokens": "3"}
    assert shared_link(at) == link_for(address(ATTENTION), at.query_params)
    assert shared_link(at).startswith(HOST + "attention?prompt=The%20cat%20sat")


def test_round_trip_a_view_through_its_link():
    """A session's view → its address → a new session opened from it: the same prompt, model,
    layer, head, step and settings, and the same generated tokens (sampled, so the seed counts)."""
    at = new_app()
    at.selectbox(key="model_choice").set_value(gpt2viz.BUNDLED_NAME).run()
    at.toggle(key="greedy").set_value(False).run()
    at.slider(key="temperature").set_value(1.3)
    at.number_input(key="top_k").set_value(50)
    at.slider(key="top_p").set_value(0.95)
    at.number_input(key="seed").set_value(11).run()
    generate(at, PROMPT, max_new_tokens=5)
    first = session_generation(at)
    index = min(2, len(first.steps) - 1)
    at.context["url"] = address(ATTENTION)
    at.switch_page(ATTENTION).run()
    at.selectbox(key="layer").set_value(app_config().n_layer - 1)
    at.selectbox(key="head").set_value(1)
    at.select_slider(key="step").set_value(index).run()
    params = dict(at.query_params)
    assert params["step"] == str(index + 1) and params["tokens"] == str(len(first.steps))
    assert params["model"] == gpt2viz.BUNDLED_NAME
    assert params["greedy"] == "false" and params["seed"] == "11" and params["top_k"] == "50"
    assert shared_link(at) == link_for(address(ATTENTION), params)

    other = open_link(params, ATTENTION)
    assert notices(other) == []
    assert dict(other.query_params) == params  # the same address again
    assert shared_link(other) == shared_link(at)
    for key in ("prompt", "model_choice", "layer", "head", "greedy", "temperature", "top_k", "top_p", "seed",
                "max_new_tokens"):
        assert kept(other, key) == kept(at, key), key
    assert other.selectbox(key="layer").value == app_config().n_layer - 1
    assert other.selectbox(key="head").value == 1
    assert other.select_slider(key="step").value == index
    again = session_generation(other)
    assert again.settings == first.settings and again.prompt == PROMPT
    assert again.ids == first.ids  # written again to the whole length, not only up to the step
    # on the Generate page it is this session's generation, made with its settings: no "another" caption
    other.switch_page(GENERATE).run()
    assert not other.exception
    assert not any("made with another" in c for c in texts(other, "caption"))
    assert other.select_slider(key="step").value == index


def test_bad_parameters_fall_back_with_one_notice():
    params = {"layer": "999", "head": "-2", "seed": "abc", "top_p": "7", "greedy": "maybe", "model": "gpt5",
              "prompt": "", "step": "0", "temperature": "hot", "utm_source": "mail"}
    at = open_link(params)
    (notice,) = notices(at)
    for part in ("layer 999 (this model has 0–", "head -2 (must be at least 0)",
                 'seed "abc" (not a whole number)', "top_p 7 (must be 0.05–1)",
                 'greedy "maybe" (must be true or false)', 'model "gpt5" (not a model this app knows)',
                 "prompt (empty)", "step 0 (must be at least 1)", 'temperature "hot" (not a number)'):
        assert part in notice, part
    assert "utm_source" not in notice  # unknown parameters are ignored
    assert texts(at, "error") == []
    assert session_generation(at).finished  # the example a plain visit opens on, not the link's step 0
    assert at.selectbox(key="model_choice").value == "" and at.toggle(key="greedy").value is True
    assert kept(at, "layer") == 0 and at.number_input(key="seed").value == 0
    assert at.text_area(key="prompt").value.startswith("I love the color black")
    assert at.query_params == {}  # the address is cleaned up
    at.run()
    assert notices(at) == []  # shown once


def test_a_layer_beyond_the_model_is_named_with_its_range():
    n_layer = app_config().n_layer
    at = open_link({"layer": str(n_layer), "head": "1", "prompt": PROMPT}, ATTENTION)
    assert notices(at) == [f"{NOTICE}layer {n_layer} (this model has 0–{n_layer - 1})."]
    assert at.selectbox(key="layer").value == 0 and at.selectbox(key="head").value == 1
    assert at.query_params == {"prompt": PROMPT, "head": "1"}


def test_a_prompt_longer_than_the_context():
    n = app_config().n_positions
    at = open_link({"prompt": " a" * (n + 5), "step": "2"})
    (notice,) = notices(at)
    assert f"this model's context holds {n}" in notice
    assert texts(at, "error") == [] and at.query_params == {}  # the default view: no step of another prompt
    assert at.text_area(key="prompt").value.startswith("I love the color black")


def test_a_step_the_generation_does_not_reach():
    n = app_config().n_positions
    prompt = " a" * (n - 3)  # three positions left: the generation stops at the context limit
    assert len(gpt2viz.load_tokenizer().encode(prompt)) == n - 3
    at = open_link({"prompt": prompt, "tokens": "5"})
    run = session_generation(at)
    assert run.finished and len(run.steps) <= 3
    assert notices(at) == [f"{NOTICE}tokens 5 (this generation ends after {len(run.steps)} tokens)."]
    assert kept(at, "step") == len(run.steps) - 1  # its last step
    assert at.query_params["tokens"] == str(len(run.steps)) and "step" not in at.query_params
    # a link of an earlier version named the step alone: it is written up to that step
    old = open_link({"prompt": prompt, "step": "5"})
    assert notices(old) == [f"{NOTICE}step 5 (this generation ends after {len(run.steps)} tokens)."]
    assert session_generation(old).ids == run.ids


def test_a_link_to_a_model_that_cannot_load_here_falls_back_to_the_default():
    hub = Path.home() / ".cache" / "huggingface" / "hub" / "models--distilbert--distilgpt2"
    if hub.exists():
        pytest.skip("distilgpt2 is in the Hugging Face cache: it would load")
    at = open_link({"model": "distilgpt2", "prompt": PROMPT, "layer": "1"})
    assert notices(at) == [f'{NOTICE}model "distilgpt2" (could not be loaded here).']
    assert texts(at, "error") == []
    assert at.selectbox(key="model_choice").value == ""
    assert at.text_area(key="prompt").value == PROMPT and kept(at, "layer") == 1
    assert at.query_params == {"prompt": PROMPT, "layer": "1"}


def test_a_local_model_stays_out_of_the_link(monkeypatch):
    monkeypatch.setenv("GPT2VIZ_ALLOW_LOCAL", "1")
    at = new_app()
    at.context["url"] = address(GENERATE)
    at.selectbox(key="model_choice").set_value("local folder or file…").run()
    at.text_input(key="local_path").input(str(ASSETS / gpt2viz.BUNDLED_NAME)).run()
    assert not at.exception
    assert "model" not in at.query_params and "local_path" not in at.query_params
    assert str(ASSETS) not in shared_link(at)
    assert any("leaves out the local model" in c for c in texts(at.sidebar, "caption"))


@pytest.mark.parametrize("page", [ATTENTION, QKV, MLP, INSIDE_STEP, WHY])
def test_each_page_opens_from_a_link(page):
    params = {"prompt": PROMPT, "layer": "1", "head": "2", "max_new_tokens": "3", "tokens": "3", "step": "2"}
    at = open_link(params, page)
    assert notices(at) == [] and texts(at, "error") == []
    run = session_generation(at)
    assert run.prompt == PROMPT and len(run.steps) == 3  # written to the link's length, past the step
    assert kept(at, "layer") == 1 and kept(at, "head") == 2 and kept(at, "step") == 1
    assert at.selectbox(key="layer").value == 1
    if page != MLP:  # the MLP page has no head
        assert at.selectbox(key="head").value == 2
    if page in (ATTENTION, INSIDE_STEP, WHY):  # the pages with the step selector
        assert at.select_slider(key="step").value == 1
    if page == QKV:  # the selected step's query
        assert at.selectbox(key="query").value == run.steps[1].query_position
    assert dict(at.query_params) == params
    assert shared_link(at) == link_for(address(page), params)


@pytest.mark.parametrize("page", [ATTENTION, QKV, WHY])
def test_a_link_without_a_generation_opens_on_the_example_as_a_fresh_visit_does(page):
    """The teacher opened the app, went to a page and picked head 1: the students' link has no
    prompt and no tokens, and shows the same finished example, not the prompt alone."""
    teacher = new_app()
    example = session_generation(teacher)
    teacher.context["url"] = address(page)
    teacher.switch_page(page).run()
    teacher.selectbox(key="head").set_value(1).run()
    assert dict(teacher.query_params) == {"head": "1"}
    student = open_link(dict(teacher.query_params), page)
    assert session_generation(student) is example  # the process's finished example
    assert student.selectbox(key="head").value == 1
    assert kept(student, "step") == len(example.steps) - 1  # its last step, as a fresh visit shows


def test_a_links_choices_hold_on_the_generation_it_writes_again():
    """Choices that follow a generation (the Q·K·V query, the step's sampling controls) are kept for
    the generation the link writes again, not reset as for a new one; presenter view and the
    pattern/scores choice come along."""
    params = {"prompt": PROMPT, "tokens": "3", "max_new_tokens": "3", "query": "2", "step_temperature": "1.5",
              "kind": "scores", "presenter": "true"}
    at = open_link(params, QKV)
    assert notices(at) == []
    assert at.selectbox(key="query").value == 2  # not the last step's query
    assert kept(at, "attn_kind") == "scores" and at.toggle(key="presenter").value is True
    at.switch_page(INSIDE_STEP).run()
    assert at.slider(key="step_temperature").value == 1.5
    assert {k: v for k, v in at.query_params.items() if k in params} == params


def test_a_teacher_on_localhost_shares_the_machines_network_address(monkeypatch):
    monkeypatch.delenv(PUBLIC_URL_ENV)
    monkeypatch.setattr(share, "network_host", lambda: "10.1.2.3")
    at = new_app()
    at.context["url"] = address(ATTENTION)
    at.switch_page(ATTENTION).run()
    at.selectbox(key="head").set_value(1).run()
    assert shared_link(at) == "http://10.1.2.3:8501/attention?head=1"
    assert any("uses this machine's network address (10.1.2.3)" in c for c in texts(at.sidebar, "caption"))


def test_the_example_is_written_for_each_start_and_token_cap(monkeypatch):
    """A link that starts prompts with <|endoftext|> gets an example that does, and a plain visit
    after it still gets the plain one; a server's token cap shortens the example too."""
    with_eot = open_link({"eot": "true"})
    assert session_generation(with_eot).prompt_ids[0] == gpt2viz.EOT_ID
    plain = new_app()
    assert session_generation(plain).prompt == DEFAULT_PROMPT
    monkeypatch.setenv("GPT2VIZ_MAX_NEW_TOKENS", "3")
    capped = new_app()
    example = session_generation(capped)
    assert example.settings["max_new_tokens"] == 3 and len(example.steps) <= 3
    assert dict(capped.query_params) == {"max_new_tokens": "3"}  # the example's own length, nothing more


def sampling_shows(at: AppTest) -> int:
    """The "Max new tokens" the Sampling popover shows."""
    return at.number_input(key="max_new_tokens").value


def test_a_link_longer_than_the_servers_cap_sets_the_control_to_the_cap(monkeypatch):
    """`max_new_tokens=6&tokens=6` on a server that allows 5: the generation has 5 tokens, the
    Sampling popover says 5 (not the default) and Generate writes 5 again; the notice names the cap."""
    monkeypatch.setenv("GPT2VIZ_MAX_NEW_TOKENS", "5")
    at = open_link({"prompt": PROMPT, "max_new_tokens": "6", "tokens": "6"})
    assert notices(at) == [f"{NOTICE}max_new_tokens 6 and tokens 6 (this server allows at most 5)."]
    run = session_generation(at)
    want = list(gpt2viz.generate(app_gpt2(), gpt2viz.load_tokenizer(), PROMPT, max_new_tokens=5))
    assert run.ids == run.prompt_ids + [step.token_id for step in want]
    assert run.settings["max_new_tokens"] == 5 and sampling_shows(at) == 5
    assert at.query_params["max_new_tokens"] == "5"
    at.button[1].click().run()  # Generate
    assert not at.exception
    again = session_generation(at)
    assert again is not run and again.settings["max_new_tokens"] == 5 and again.ids == run.ids


def test_tokens_alone_set_the_control_they_stand_for():
    """`tokens=24` alone: written to 24 tokens (not cut to the default 20), with "Max new tokens" at 24."""
    at = open_link({"prompt": PROMPT, "tokens": "24"})
    run = session_generation(at)
    want = list(gpt2viz.generate(app_gpt2(), gpt2viz.load_tokenizer(), PROMPT, max_new_tokens=24))
    assert run.ids == run.prompt_ids + [step.token_id for step in want]
    ends = [] if len(want) == 24 else [f"{NOTICE}tokens 24 (this generation ends after {len(want)} tokens)."]
    assert notices(at) == ends
    assert run.settings["max_new_tokens"] == 24 and sampling_shows(at) == 24
    assert at.query_params["max_new_tokens"] == "24"
    at.button[1].click().run()  # Generate: the same 24 tokens, not 20
    assert not at.exception and session_generation(at).ids == run.ids


def progress(at: AppTest) -> str:
    return at.get("progress")[0].proto.text


def test_lesson_cards_are_counted_from_1_in_the_link():
    from app.lesson.content import load_cards

    count = len(load_cards())
    at = open_link({"card_number": str(count)}, LESSON)
    assert progress(at) == f"Card {count} of {count}" and notices(at) == []
    assert dict(at.query_params) == {"card_number": str(count)}
    at.button(key="lesson_previous").click().run()
    assert progress(at) == f"Card {count - 1} of {count}"
    assert dict(at.query_params) == {"card_number": str(count - 1)}
    at.selectbox(key="lesson_card").select(0).run()  # the first card: the address is bare
    assert progress(at) == f"Card 1 of {count}" and dict(at.query_params) == {}


@pytest.mark.parametrize(("param", "number", "why"), [
    ("card_number", "99", "the lesson has cards 1–{count}"),
    ("card_number", "{count_plus_1}", "the lesson has cards 1–{count}"),
    ("card", "{count}", "this older parameter counts from 0: cards 0–{last}; card_number counts from 1"),
])
def test_a_card_the_lesson_does_not_have_is_named_in_a_notice(param, number, why):
    from app.lesson.content import load_cards

    count = len(load_cards())
    fill = dict(count=count, count_plus_1=count + 1, last=count - 1)
    number, why = number.format(**fill), why.format(**fill)
    at = open_link({param: number, "layer": "1"}, LESSON)
    assert notices(at) == [f"{NOTICE}{param} {number} ({why})."]
    assert progress(at) == f"Card 1 of {count}" and kept(at, "layer") == 1
    assert dict(at.query_params) == {"layer": "1"}


def test_a_lesson_link_written_before_card_number_opens_the_same_card():
    """Links once named the card counted from 0: `card=3` was the fourth card and still opens it,
    and the address then says it the new way."""
    from app.lesson.content import load_cards

    cards = load_cards()
    at = open_link({"card": "3"}, LESSON)
    assert notices(at) == [] and progress(at) == f"Card 4 of {len(cards)}"
    assert at.header[0].value == cards[3].title
    assert at.query_params["card_number"] == "4" and "card" not in at.query_params
