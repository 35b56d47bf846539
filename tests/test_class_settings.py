"""Class settings: whoever starts the server decides which models students may load, whether a
path on the server's disk may be loaded from a browser, and how many tokens a generation may ask
for; links and widgets both keep to them."""

from __future__ import annotations

import pytest

import gpt2viz
from app.class_settings import (
    ALLOW_LOCAL_ENV,
    MAX_NEW_TOKENS_ENV,
    MODELS_ENV,
    ClassSettings,
    parse_class_settings,
)
from app.link_params import PUBLIC_URL_ENV
from tests.app_support import GENERATE, generate, new_app, session_generation, texts
from tests.test_app_links import HOST, NOTICE, notices, open_link

pytestmark = pytest.mark.usefixtures("app_model")


@pytest.fixture(autouse=True)
def public_url(monkeypatch):
    monkeypatch.setenv(PUBLIC_URL_ENV, HOST.rstrip("/"))


def test_unset_is_todays_app_without_local_paths():
    settings = parse_class_settings({})
    assert settings == ClassSettings(models=None, allow_local=False, max_new_tokens=None)
    assert settings.offers("gpt2") and settings.offers(gpt2viz.BUNDLED_NAME)
    assert not settings.offers("/etc/passwd") and not settings.offers("someone/else")
    assert settings.token_cap(1024) == 1023 and settings.token_cap(1) == 1


def test_the_settings_read():
    settings = parse_class_settings({MODELS_ENV: " gpt2viz-mini, gpt2 ,gpt2,openai-community/gpt2-medium",
                                     ALLOW_LOCAL_ENV: "1", MAX_NEW_TOKENS_ENV: "30"})
    assert settings.models == ("gpt2viz-mini", "gpt2", "openai-community/gpt2-medium")  # duplicates once
    assert settings.offers("openai-community/gpt2-medium") and not settings.offers("gpt2-xl")
    assert settings.allow_local and settings.token_cap(1024) == 30 and settings.token_cap(16) == 15


@pytest.mark.parametrize(("environ", "message"), [
    ({MODELS_ENV: "gpt2, /home/me/model"}, f"{MODELS_ENV}='gpt2, /home/me/model': list presets"),
    ({MODELS_ENV: " , "}, "list presets"),
    ({ALLOW_LOCAL_ENV: "sure"}, f"{ALLOW_LOCAL_ENV}='sure': set it to 1"),
    ({MAX_NEW_TOKENS_ENV: "0"}, f"{MAX_NEW_TOKENS_ENV}='0': give a whole number above 0"),
    ({MAX_NEW_TOKENS_ENV: "ten"}, "give a whole number above 0"),
])
def test_bad_settings_say_what_to_write(environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_class_settings(environ)


def test_the_picker_offers_only_the_class_models_and_a_link_to_another_loads_nothing(monkeypatch):
    monkeypatch.setenv(MODELS_ENV, gpt2viz.BUNDLED_NAME)
    loaded: list[str] = []
    real_load = gpt2viz.load_model

    def load_model(source, *args, **kwargs):
        loaded.append(str(source))
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(gpt2viz, "load_model", load_model)
    at = new_app()
    picker = at.selectbox(key="model_choice")
    assert picker.options == [f"{gpt2viz.BUNDLED_NAME} (default)"]
    assert f"This server offers {gpt2viz.BUNDLED_NAME}" in picker.help
    assert any(line.startswith("Models loaded on this server: ") for line in texts(at.sidebar, "caption"))
    other = open_link({"model": "gpt2", "layer": "1"})
    assert notices(other) == [f'{NOTICE}model "gpt2" (not offered on this server).']
    assert other.selectbox(key="model_choice").value == ""
    assert "gpt2" not in loaded and set(loaded) <= {gpt2viz.BUNDLED_NAME}  # gpt2 was never asked for


def test_no_local_paths_unless_the_server_allows_them(monkeypatch):
    monkeypatch.delenv(ALLOW_LOCAL_ENV, raising=False)
    at = new_app()
    picker = at.selectbox(key="model_choice")
    assert "local folder or file…" not in picker.options
    assert f"{ALLOW_LOCAL_ENV}=1" in picker.help
    at.session_state["model_choice.remembered"] = "local folder or file…"  # as an old session had it
    at.run()
    assert at.selectbox(key="model_choice").value == "" and not at.text_input
    linked = open_link({"model": "/srv/model"})
    assert notices(linked) == [f'{NOTICE}model "/srv/model" (not a model this app knows).']
    monkeypatch.setenv(ALLOW_LOCAL_ENV, "1")
    at.run()
    assert "local folder or file…" in at.selectbox(key="model_choice").options


def test_the_token_cap_holds_for_widgets_and_links(monkeypatch):
    monkeypatch.setenv(MAX_NEW_TOKENS_ENV, "3")
    at = new_app()
    box = at.number_input(key="max_new_tokens")
    assert box.max == 3 and box.value == 3  # the default 20 brought down to the cap
    generate(at, "The cat sat on the mat", max_new_tokens=3)
    assert len(session_generation(at).steps) <= 3
    other = open_link({"prompt": "The cat sat on the mat", "max_new_tokens": "30", "tokens": "30"}, GENERATE)
    assert notices(other) == [f"{NOTICE}max_new_tokens 30 and tokens 30 (this server allows at most 3)."]
    replayed = session_generation(other)
    assert replayed.settings["max_new_tokens"] == 3 and len(replayed.steps) <= 3
