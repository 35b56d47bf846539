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
}


def test_no_parameters_is_the_default_view():
    link = parse_params({})
    assert link.values == {} and link.notices == []
    assert to_params(links.DEFAULTS) == {}


def test_every_parameter_read():
    params = to_params(ALL)
    assert list(params) == list(links.KEYS)  # a fixed order, the one the module lists
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
    assert links.DEFAULTS["step"] is None  # no generation


@pytest.mark.parametrize(("param", "raw", "why"), [
    ("layer", "abc", 'layer "abc" (not a whole number)'),
    ("layer", "-1", "layer -1 (must be at least 0)"),
    ("layer", "1.5", "layer 1.5 (not a whole number)"),
    ("layer", "9" * 40, "(must be at least 0)"),  # too many digits: out of range, not a crash
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
    assert link.notices == ["step 30 (the link asks for 8 new tokens; showing the last)"]
    assert parse_params({"step": "25"}).values == {"step": 20}  # the default max_new_tokens
    assert parse_params({"step": "20"}).notices == []


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
    link = parse_params({"prompt": "a " * 600, "step": "3", "layer": "1"})
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
