"""What whoever starts the server allows the students' browsers to do, from the environment:
which models they may pick (GPT2VIZ_MODELS), whether they may load a path on the server's disk
(GPT2VIZ_ALLOW_LOCAL) and how many tokens a generation may ask for (GPT2VIZ_MAX_NEW_TOKENS).
Unset, the app offers what it always did, except local paths, which must be allowed."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import gpt2viz

MODELS_ENV = "GPT2VIZ_MODELS"
ALLOW_LOCAL_ENV = "GPT2VIZ_ALLOW_LOCAL"
MAX_NEW_TOKENS_ENV = "GPT2VIZ_MAX_NEW_TOKENS"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # org/name on the Hugging Face Hub
_YES, _NO = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ClassSettings:
    models: tuple[str, ...] | None  # the models offered, the first the default; None: any
    allow_local: bool
    max_new_tokens: int | None  # None: up to the model's context

    def offers(self, name: str) -> bool:
        """Whether a browser may load the model `name` (a preset, the bundled model, a repo id)."""
        if self.models is None:
            return name in (gpt2viz.BUNDLED_NAME, *gpt2viz.PRESETS)
        return name in self.models

    def token_cap(self, context: int) -> int:
        """The most new tokens a generation may ask for, on a model with this context."""
        most = max(1, context - 1)
        return most if self.max_new_tokens is None else min(most, self.max_new_tokens)


def parse_class_settings(environ: Mapping[str, str]) -> ClassSettings:
    """The settings in `environ`; a ValueError that names the variable and a valid value."""
    raw = environ.get(MODELS_ENV, "").strip()
    models = None
    if raw:
        models = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
        known = (gpt2viz.BUNDLED_NAME, *gpt2viz.PRESETS)
        odd = [name for name in models if name not in known and not _REPO_ID.match(name)]
        if odd or not models:
            raise ValueError(f"{MODELS_ENV}={raw!r}: list presets ({', '.join(known)}) or Hugging Face repo "
                             f"ids (org/name), separated by commas, e.g. {MODELS_ENV}=gpt2viz-mini,gpt2.")
    flag = environ.get(ALLOW_LOCAL_ENV, "").strip().lower()
    if flag not in _YES | _NO:
        raise ValueError(f"{ALLOW_LOCAL_ENV}={flag!r}: set it to 1 to let browsers load local paths, or 0.")
    cap_text = environ.get(MAX_NEW_TOKENS_ENV, "").strip()
    cap = None
    if cap_text:
        if not cap_text.isdigit() or int(cap_text) < 1:
            raise ValueError(f"{MAX_NEW_TOKENS_ENV}={cap_text!r}: give a whole number above 0, e.g. "
                             f"{MAX_NEW_TOKENS_ENV}=50.")
        cap = int(cap_text)
    return ClassSettings(models, flag in _YES, cap)


@functools.cache
def _cached(models: str, allow_local: str, cap: str) -> ClassSettings:
    return parse_class_settings({MODELS_ENV: models, ALLOW_LOCAL_ENV: allow_local, MAX_NEW_TOKENS_ENV: cap})


def class_settings() -> ClassSettings:
    """This server's settings (read from the environment, parsed once per value)."""
    return _cached(*(os.environ.get(name, "") for name in (MODELS_ENV, ALLOW_LOCAL_ENV, MAX_NEW_TOKENS_ENV)))
