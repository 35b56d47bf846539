"""Shared fixtures: Hugging Face checkpoints with random weights, written the ways real ones are,
and the model the app tests run on.

Nothing here downloads: transformers builds GPT2LMHeadModel from a config (the reference
oracle), and `save_pretrained` / a hand-written Hub-style file stand in for downloaded weights.
The app, viz and browser tests' helpers (not fixtures) are in tests/app_support.py.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import gpt2viz
from gpt2viz.loading import MODEL_ENV
from gpt2viz.paths import ASSETS


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a non-loopback connection fails the test: everything runs offline."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        inet = self.family in (socket.AF_INET, socket.AF_INET6)
        if inet and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def make_hf_model(seed: int = 0, **config: int):
    """A transformers GPT2LMHeadModel with random weights (eager attention, so it can output them)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(attn_implementation="eager", **config)
    model = GPT2LMHeadModel(cfg).eval()
    # GPT-2's init leaves biases and LayerNorm at 0/1; randomise them so a wrong mapping shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def write_hub_layout(hf_model, folder: Path) -> Path:
    """Write weights as the Hub's gpt2 file has them: no `transformer.` prefix, no lm_head,
    Conv1D [in, out], and the old `h.N.attn.bias` / `masked_bias` buffers present."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_model.config
    n = cfg.n_positions
    tensors = {}
    for key, value in hf_model.state_dict().items():
        if key.startswith("lm_head."):
            continue
        tensors[key.removeprefix("transformer.")] = value.contiguous()
    for i in range(cfg.n_layer):
        tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    return folder


SMALL = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128)


@pytest.fixture(scope="session")
def tok() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


@pytest.fixture(scope="session")
def small_hf():
    return make_hf_model(**SMALL)


@pytest.fixture(scope="session")
def small_dir(small_hf, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small checkpoint as `save_pretrained` writes it (with the `transformer.` prefix)."""
    folder = tmp_path_factory.mktemp("small_hf")
    small_hf.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def small_model(small_dir: Path) -> gpt2viz.GPT2:
    return gpt2viz.load_model(small_dir, device="cpu")


# --- the model the app tests run on ---------------------------------------------------------

TINY = gpt2viz.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256)


def tiny_model(seed: int = 0) -> gpt2viz.GPT2:
    """A GPT2 of the TINY shape with seeded random weights (our own init, no transformers)."""
    torch.manual_seed(seed)
    return gpt2viz.GPT2(TINY).eval()


@pytest.fixture(scope="session")
def app_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What $GPT2VIZ_MODEL should name for the app tests: its own value if set; if unset, the
    bundled model when assets/gpt2viz-mini exists, else a tiny random checkpoint in a temp folder."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return chosen
    if (ASSETS / gpt2viz.BUNDLED_NAME).is_dir():
        return gpt2viz.BUNDLED_NAME
    return str(gpt2viz.save_model(tiny_model(), tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="module")
def app_model(app_checkpoint: str) -> Iterator[str]:
    """Sets $GPT2VIZ_MODEL for one test module (restored afterwards) and yields its value.
    App test modules use it with `pytestmark = pytest.mark.usefixtures("app_model")`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODEL_ENV, app_checkpoint)
        yield app_checkpoint
