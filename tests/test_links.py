"""Shareable links, the pure part: an address's query parameters checked (bad ones fall back with a
notice), checked against a model's shape, and the inverse (a view → its parameters)."""

from urllib.parse import parse_qsl, urlsplit

import pytest

import gpt2viz
from app import link_params as links
from app import state
from app.link_params import fit_to_model, link_for, parse_params, settings_values, to_params

# Every parameter set to a usable value that is not its default.
ALL = {
    "prompt": "The cat sat on the mat & then? 100% — “quoted”\nsecond line",
    "model": gpt2viz.BUNDLED_NAME,
    "layer": 3,
    "head": 2,
    "step": 5,
    "greedy": False,
    "temperature": 0.9500000000000001,  # what slider arithmetic can give: must come back exactly
    "top_k": 40,
    "top_p": 0.9,
    "seed": 12345,
    "max_new_tokens": 30,
    "tokens": 12,
    "eot": True,
    "kind": "scores",
    "without_first": True,
    "query": 4,
    "zoom_query": 64,
    "zoom_key": 32,
    "find": " cat",
    "mlp_stage": "pre",
    "neurons": 48,
    "step_temperature": 1.25,
    "step_top_k": 5,
    "step_top_p": 0.5,
    "distractor": -1,  # app.why_sections.TYPED: the distractor is typed
    "distractor_text": " dog",
    "ablate": "heads",
    "units": "0.1, 1.2",
    "ablate_mode": "mean",
    "ablate_rerun": True,
    "forced": 262,
    "compare": "The dog sat on the mat",
    "compare_model": "gpt2-medium",
    "clean": "When Anna and Paul went out, Paul gave a ball to",
    "corrupted": "When Anna and Paul went out, Anna gave a ball to",
    "answer": " Anna",
    "wrong": " Paul",
    "site": "z",
    "method": "exact",
    links.CARD: 3,  # the fourth card: its index here, its number (4) in the address
    "presenter": True,
    "fresh_draws": True,
}


def test_no_parameters_is_the_default_view():
    link = parse_params({})
    assert link.values == {} and link.notices == []
    assert to_params(links.DEFAULTS) == {}


def test_every_parameter_read():
    params = to_params(ALL)
    assert list(params) == list(links.ORDER)  # a fixed order, the one the module lists
    link = parse_params(params)
    assert link.notices == []
    assert link.values == ALL
    assert type(link.values["temperature"]) is float and type(link.values["seed"]) is int


def test_round_trip_through_an_address():
    """state values → parameters → a link's text → parsed back by the standard library → the same."""
    address = link_for("http://localhost:8501/attention", to_params(ALL))
    parts = urlsplit(address)
    assert parts.path == "/attention" and " " not in address and "+" not in parts.query
    assert parse_params(dict(parse_qsl(parts.query, keep_blank_values=True))).values == ALL


def test_only_values_that_differ_from_the_defaults():
    values = dict(links.DEFAULTS, layer=2, greedy=False)
    assert to_params(values) == {"layer": "2", "greedy": "false"}
    assert link_for("http://h/", {}) == "http://h/"
    assert link_for(None, {"layer": "2"}) == "?layer=2"


def test_keys_are_the_session_keys_with_their_defaults():
    assert links.KEYS["model"] == state.MODEL_CHOICE and links.KEYS["step"] == state.STEP
    for param, key in links.KEYS.items():
        assert links.DEFAULTS[param] == state.DEFAULTS.get(key)
    assert links.DEFAULTS["step"] is None and links.DEFAULTS["tokens"] is None  # no generation


def test_every_linked_key_has_a_parameter_and_a_parser():
    """The link table: each widget key of app.state is linked or says why not; each link parameter
    is read by a parser and written in ORDER."""
    assert set(ALL) == set(links.ORDER) == set(links.PARSERS)
    assert set(links.KEYS.values()) == set(state.LINKED)
    assert not set(state.LINKED) & set(state.NOT_LINKED)
    assert all(reason for reason in state.NOT_LINKED.values())


@pytest.mark.parametrize(("param", "raw", "why"), [
    ("layer", "abc", 'layer "abc" (not a whole number)'),
    ("layer", "-1", "layer -1 (must be at least 0)"),
    ("layer", "1.5", "layer 1.5 (not a whole number)"),
    ("layer", "9" * 40, "(too large)"),  # too many digits: out of range, not a crash
    ("step", "99999999999999999999999", "step 99999999999999999999999 (too large)"),
    ("layer", "-" + "9" * 40, "(must be at least 0)"),
    ("kind", "weights", 'kind "weights" (must be pattern or scores)'),
    ("ablate", "all", 'ablate "all" (must be selected head or heads or neurons)'),
    ("presenter", "big", 'presenter "big" (must be true or false)'),
    ("distractor", "-3", "distractor -3 (must be -2–50257)"),
    ("find", "x" * 201, "(too long: 201 characters, at most 200)"),
    ("head", "", 'head "" (not a whole number)'),
    ("seed", "abc", 'seed "abc" (not a whole number)'),
    ("seed", str(2**31), f"seed {2**31} (must be 0–{2**31 - 1})"),
    ("top_k", "50258", "top_k 50258 (must be 0–50257)"),
    ("top_p", "7", "top_p 7 (must be 0.05–1)"),
    ("top_p", "0", "top_p 0 (must be 0.05–1)"),
    ("temperature", "nan", 'temperature "nan" (not a number)'),
    ("temperature", "inf", 'temperature "inf" (not a number)'),
    ("temperature", "1e9", "temperature 1e9 (must be 0.05–2)"),
    ("greedy", "maybe", 'greedy "maybe" (must be true or false)'),
    ("max_new_tokens", "0", "max_new_tokens 0 (must be at least 1)"),
    ("step", "0", "step 0 (must be at least 1)"),
    ("model", "gpt5", 'model "gpt5" (not a model this app knows)'),
    ("model", "/etc/passwd", 'model "/etc/passwd" (not a model this app knows)'),  # never a path
    ("prompt", "", "prompt (empty)"),
    ("prompt", " \n\t", "prompt (empty)"),
])
def test_an_unusable_value_falls_back_with_a_notice(param, raw, why):
    link = parse_params({param: raw, "head": "1"} if param != "head" else {param: raw})
    assert param not in link.values  # its default stands
    assert len(link.notices) == 1 and why in link.notices[0], link.notices
    if param != "head":
        assert link.values == {"head": 1}  # the other parameters are kept


def test_a_long_value_is_cut_short_in_the_notice():
    (notice,) = parse_params({"seed": "x" * 500}).notices
    assert notice == 'seed "' + "x" * 24 + '…" (not a whole number)'


def test_a_prompt_too_long_for_a_link():
    words = " ".join(["word"] * 10_000)
    link = parse_params({"prompt": words, "layer": "1"})
    assert link.values == {"layer": 1}
    assert link.notices == [f"prompt (too long for a link: {len(words):,} characters, at most 10,000)"]


def test_lenient_spellings():
    link = parse_params({"greedy": "FALSE", "layer": " 2 ", "temperature": ".5", "top_k": "+3", "model": ""})
    assert link.values == {"greedy": False, "layer": 2, "temperature": 0.5, "top_k": 3, "model": ""}
    assert link.notices == []
    assert parse_params({"greedy": "1"}).values == {"greedy": True}


def test_unknown_parameters_are_ignored():
    link = parse_params({"utm_source": "mail", "embed": "true", "Layer": "2", "layer": "1"})
    assert link.values == {"layer": 1} and link.notices == []


def test_a_step_beyond_the_new_tokens_asked_for_becomes_the_last():
    link = parse_params({"step": "30", "max_new_tokens": "8"})
    assert link.values == {"step": 8, "max_new_tokens": 8}
    assert link.notices == ["step 30 (the link's generation has 8 new tokens; showing the last)"]
    assert parse_params({"step": "25"}).values == {"step": 20}  # the default max_new_tokens
    assert parse_params({"step": "20"}).notices == []


def test_tokens_bound_the_step_and_are_bounded_by_the_new_tokens_asked_for():
    link = parse_params({"tokens": "12", "step": "15", "max_new_tokens": "30"})
    assert link.values == {"tokens": 12, "step": 12, "max_new_tokens": 30}
    assert link.notices == ["step 15 (the link's generation has 12 new tokens; showing the last)"]
    # a longer generation than the link asks for raises what it asks for: the control shows the length
    link = parse_params({"tokens": "40", "max_new_tokens": "30"})
    assert link.values == {"tokens": 40, "max_new_tokens": 40}
    assert link.notices == ["max_new_tokens 30 (raised to 40: the link's generation has 40 new tokens)"]


def test_tokens_alone_set_the_new_tokens_asked_for():
    """`tokens=30` alone is a generation of 30 tokens: "Max new tokens" becomes 30, not the default 20
    (which would cut it); a shorter one leaves the default, as a link of the app's own has it."""
    link = parse_params({"tokens": "30", "step": "25"})
    assert link.values == {"tokens": 30, "step": 25} and link.notices == []
    fitted = fit_to_model(link, 4, 4, 512, None)
    assert fitted.values == {"tokens": 30, "step": 25, "max_new_tokens": 30} and fitted.notices == []
    assert fit_to_model(parse_params({"tokens": "12"}), 4, 4, 512, None).values == {"tokens": 12}


@pytest.mark.parametrize(("params", "values", "notice"), [
    ({"max_new_tokens": "41", "tokens": "41"}, {"max_new_tokens": 40, "tokens": 40},
     "max_new_tokens 41 and tokens 41 (this server allows at most 40)"),
    ({"tokens": "41"}, {"max_new_tokens": 40, "tokens": 40}, "tokens 41 (this server allows at most 40)"),
    ({"max_new_tokens": "50", "tokens": "30"}, {"max_new_tokens": 40, "tokens": 30},
     "max_new_tokens 50 (this server allows at most 40)"),
])
def test_a_server_cap_cuts_the_token_count_and_the_control_alike(params, values, notice):
    """The generation and "Max new tokens" are cut to the server's cap together, the cap named once."""
    fitted = fit_to_model(parse_params(params), 12, 12, 1024, None, token_cap=40)
    assert fitted.values == values
    assert fitted.notices == [notice]


def test_a_card_is_counted_from_1_in_the_address_and_from_0_in_the_session():
    assert links.CARD == "card_number" and links.OLD_CARD == "card"
    assert to_params({links.CARD: 13}) == {"card_number": "14"}  # the last of 14 cards
    assert to_params({links.CARD: 0}) == {}  # the first card: a fresh visit's
    assert parse_params({"card_number": "14"}, lesson_cards=14).values == {links.CARD: 13}
    assert parse_params({"card_number": "1"}, lesson_cards=14).values == {links.CARD: 0}


@pytest.mark.parametrize(("params", "notice"), [
    ({"card_number": "15"}, "card_number 15 (the lesson has cards 1–14)"),
    ({"card_number": "99"}, "card_number 99 (the lesson has cards 1–14)"),
    ({"card_number": "0"}, "card_number 0 (must be at least 1)"),
    ({"card": "14"}, "card 14 (this older parameter counts from 0: cards 0–13; card_number counts from 1)"),
    ({"card": "-1"}, "card -1 (must be at least 0)"),
])
def test_a_card_the_lesson_does_not_have_is_named_in_a_notice(params, notice):
    link = parse_params(params, lesson_cards=14)
    assert link.values == {} and link.notices == [notice]


def test_a_link_written_before_card_number_opens_the_card_it_always_did():
    """`card` counted from 0: card=3 was the fourth card, and still is; card_number wins over it."""
    assert parse_params({"card": "3"}, lesson_cards=14).values == {links.CARD: 3}
    assert parse_params({"card": "0"}, lesson_cards=14).values == {links.CARD: 0}
    assert parse_params({"card": "13"}, lesson_cards=14).values == {links.CARD: 13}
    link = parse_params({"card": "3", "card_number": "9"}, lesson_cards=14)
    assert link.values == {links.CARD: 8} and link.notices == []
    assert to_params(parse_params({"card": "3"}).values) == {"card_number": "4"}  # rewritten as the new one


def test_fit_to_model():
    link = parse_params({"layer": "999", "head": "3", "max_new_tokens": "600", "step": "4", "prompt": "Hi"})
    fitted = fit_to_model(link, n_layer=4, n_head=4, n_positions=512, prompt_tokens=1)
    assert fitted.values == {"head": 3, "step": 4, "prompt": "Hi"}
    assert fitted.notices == ["layer 999 (this model has 0–3)",
                              "max_new_tokens 600 (this model writes at most 511)"]
    assert link.values["layer"] == 999  # the link itself is left as it was


def test_fit_to_model_keeps_values_that_fit():
    link = parse_params({"layer": "3", "head": "3", "max_new_tokens": "511", "step": "2"})
    assert fit_to_model(link, 4, 4, 512, None) == link


def test_a_prompt_longer_than_the_context_drops_it_and_its_step():
    link = parse_params({"prompt": "a " * 600, "step": "3", "tokens": "5", "layer": "1"})
    fitted = fit_to_model(link, 4, 4, 512, prompt_tokens=600)
    assert fitted.values == {"layer": 1}
    assert fitted.notices == ["prompt (600 tokens; this model's context holds 512)"]
    # a prompt that leaves one position free still fits
    assert "prompt" in fit_to_model(link, 4, 4, 512, prompt_tokens=511).values


def test_notices_in_one_line():
    text = links.notice_text(["layer 999 (this model has 0–3)", 'seed "abc" (not a whole number)'])
    assert text == ("Some link settings were not usable and were reset: layer 999 (this model has 0–3); "
                    'seed "abc" (not a whole number).')


def test_settings_of_a_generation():
    sampled = dict(max_new_tokens=8, temperature=0.7, top_k=40, top_p=0.9, seed=3)
    assert settings_values(sampled, 0.8) == dict(greedy=False, temperature=0.7, top_k=40, top_p=0.9, seed=3,
                                                max_new_tokens=8)
    greedy = dict(max_new_tokens=20, temperature=0.0, top_k=None, top_p=None, seed=0)
    values = settings_values(greedy, 0.8)  # a greedy run keeps the session's (unused) temperature
    assert values == dict(greedy=True, temperature=0.8, top_k=0, top_p=1.0, seed=0, max_new_tokens=20)
    assert to_params(values) == {}


def test_round_trip_of_a_generation_settings():
    """Generation settings → link values → parameters → parsed → app.settings.Settings → the same settings."""
    from app.settings import Settings

    for settings in (dict(max_new_tokens=8, temperature=0.7, top_k=40, top_p=0.9, seed=3),
                     dict(max_new_tokens=20, temperature=0.0, top_k=None, top_p=None, seed=0)):
        values = dict(links.DEFAULTS, **parse_params(to_params(settings_values(settings, 0.8))).values)
        rebuilt = Settings(values["greedy"], values["temperature"], values["top_k"], values["top_p"],
                           values["seed"], values["max_new_tokens"])
        assert rebuilt.generate_kwargs() == settings


@pytest.mark.parametrize(("page", "listen", "public", "network", "address", "hint"), [
    # a public address set by whoever started the server wins
    ("http://localhost:8501/attention", None, "https://class.example.org/gpt2/", "10.0.0.5",
     "https://class.example.org/gpt2/attention", None),
    # the teacher opened the app by its network address: students can use the same
    ("http://10.0.0.5:8501/attention", None, None, "10.0.0.5", "http://10.0.0.5:8501/attention", None),
    # on localhost, listening on every address: the machine's network address instead, with a hint
    ("http://localhost:8501/qkv", None, None, "10.0.0.5", "http://10.0.0.5:8501/qkv", "network address"),
    ("http://127.0.0.1:8501/", "0.0.0.0", None, "192.168.1.7", "http://192.168.1.7:8501/", "network address"),
    # on localhost with no network: the link stays, and says how to fix it
    ("http://localhost:8501/", "", None, None, "http://localhost:8501/", "GPT2VIZ_PUBLIC_URL"),
    # listening on this machine only: nobody else can open it, whatever the address
    ("http://localhost:8501/", "127.0.0.1", None, "10.0.0.5", "http://localhost:8501/", "listens only on"),
])
def test_the_link_names_an_address_students_can_reach(page, listen, public, network, address, hint):
    got, told = links.public_address(page, listen, public, network)
    assert got == address
    assert (told is None) if hint is None else (hint in told)
