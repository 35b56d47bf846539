"""Loading weights: every source kind, the Hub cache, and a clear error for each bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import gpt2viz
from tests.conftest import write_hub_layout

IDS = [464, 3797, 3332, 319, 262, 2603]


def same_logits(model: gpt2viz.GPT2, reference: gpt2viz.GPT2) -> None:
    torch.testing.assert_close(model.run_with_capture(IDS).logits,
                               reference.run_with_capture(IDS).logits, atol=1e-5, rtol=0)


def test_single_safetensors_file_with_and_without_config(small_hf, small_model, tmp_path) -> None:
    folder = write_hub_layout(small_hf, tmp_path / "hub")
    same_logits(gpt2viz.load_model(folder / "model.safetensors"), small_model)  # config beside it
    lone = tmp_path / "lone.safetensors"
    shutil.copy(folder / "model.safetensors", lone)
    model = gpt2viz.load_model(lone)  # no config: inferred from shapes, 64-wide heads -> 1 head
    assert (model.config.n_layer, model.config.n_embd, model.config.n_head) == (2, 64, 1)
    assert (model.config.n_positions, model.config.vocab_size) == (128, 50257)
    want = dict(small_model.named_parameters())
    assert [name for name, _ in model.named_parameters()] == list(want)
    for name, param in model.named_parameters():  # the same weights, only split into fewer heads
        torch.testing.assert_close(param.detach().cpu(), want[name].detach(), atol=0, rtol=0, msg=name)
    saved = gpt2viz.save_model(small_model, tmp_path / "ours")  # config in the file's metadata
    (saved / "config.json").unlink()
    alone = gpt2viz.load_model(saved / "model.safetensors")
    assert alone.config == small_model.config
    same_logits(alone, small_model)


def test_sharded_folder(small_hf, small_model, tmp_path) -> None:
    small_hf.save_pretrained(tmp_path, max_shard_size="2MB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    same_logits(gpt2viz.load_model(tmp_path), small_model)


def test_lm_head_present_and_untied(small_model, small_dir, tmp_path) -> None:
    state = load_file(small_dir / "model.safetensors")
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    save_file(state, str(tmp_path / "model.safetensors"))
    shutil.copy(small_dir / "config.json", tmp_path / "config.json")
    same_logits(gpt2viz.load_model(tmp_path), small_model)
    config = json.loads((small_dir / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (tmp_path / "config.json").write_text(json.dumps(config))
    state["lm_head.weight"] = torch.randn_like(state["lm_head.weight"])
    save_file(state, str(tmp_path / "model.safetensors"))
    untied = gpt2viz.load_model(tmp_path)
    torch.testing.assert_close(untied.lm_head.weight, state["lm_head.weight"])


def test_save_and_load_round_trip_in_fp16(small_model, tmp_path) -> None:
    gpt2viz.save_model(small_model, tmp_path, dtype=torch.float16)
    loaded = gpt2viz.load_model(tmp_path, dtype=torch.float32)
    assert loaded.dtype == torch.float32
    torch.testing.assert_close(loaded.wte.weight, small_model.wte.weight.half().float())


def fake_hub_cache(cache: Path, repo_id: str, files: Path) -> None:
    """The folder layout huggingface_hub's cache uses for a downloaded snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(files / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_preset_and_repo_id_load_from_the_hub_cache(small_hf, small_model, tmp_path) -> None:
    write_hub_layout(small_hf, tmp_path / "files")
    fake_hub_cache(tmp_path / "cache", "openai-community/gpt2", tmp_path / "files")
    fake_hub_cache(tmp_path / "cache", "someone/tiny-gpt2", tmp_path / "files")
    for source in ("gpt2", "openai-community/gpt2", "someone/tiny-gpt2"):
        model = gpt2viz.load_model(source, cache_dir=tmp_path / "cache")
        assert model.name == source
        same_logits(model, small_model)


def test_hub_unreachable_says_not_cached_and_how_to_get_it(tmp_path) -> None:
    with pytest.raises(gpt2viz.LoadError) as err:
        gpt2viz.load_model("gpt2-medium", cache_dir=tmp_path)
    message = str(err.value)
    assert "'gpt2-medium' (openai-community/gpt2-medium) is not in the Hugging Face cache" in message
    assert "Hub could not be reached" in message
    assert "hf download openai-community/gpt2-medium config.json model.safetensors" in message


@pytest.fixture
def no_real_gpt2(monkeypatch: pytest.MonkeyPatch) -> None:
    """No $GPT2VIZ_MODEL, and 'gpt2' names a repo in no cache (the Hub is unreachable in tests),
    so the real GPT-2 is unavailable even on a machine whose Hugging Face cache holds it."""
    monkeypatch.delenv(gpt2viz.loading.MODEL_ENV, raising=False)
    monkeypatch.setitem(gpt2viz.loading.PRESETS, "gpt2", "gpt2viz-tests/not-cached")


def test_default_model_falls_back_to_the_bundled_one_and_says_why(no_real_gpt2) -> None:
    model, reason = gpt2viz.load_default_model(device="cpu")
    assert model.name == gpt2viz.BUNDLED_NAME
    bundled = gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")
    torch.testing.assert_close(model.run_with_capture(IDS).logits, bundled.run_with_capture(IDS).logits)
    assert "'gpt2' (gpt2viz-tests/not-cached) is not in the Hugging Face cache" in reason
    assert "hf download gpt2viz-tests/not-cached config.json model.safetensors" in reason


def test_default_model_without_the_bundled_one_says_so(no_real_gpt2, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(gpt2viz.loading.BUNDLED, gpt2viz.BUNDLED_NAME, tmp_path / "missing")
    with pytest.raises(gpt2viz.LoadError, match="bundled model 'gpt2viz-mini' is missing"):
        gpt2viz.load_default_model(device="cpu")


def test_default_model_honours_the_environment(monkeypatch, small_dir, small_model) -> None:
    monkeypatch.setenv(gpt2viz.loading.MODEL_ENV, str(small_dir))
    model, reason = gpt2viz.load_default_model(device="cpu")
    assert reason is None
    same_logits(model, small_model)


# --- bad sources -------------------------------------------------------------------------


def copy_small(small_dir: Path, dest: Path) -> Path:
    shutil.copytree(small_dir, dest)
    return dest


def test_missing_sources(tmp_path) -> None:
    with pytest.raises(gpt2viz.LoadError, match="File or folder not found: .*nothing.safetensors"):
        gpt2viz.load_model(tmp_path / "nothing.safetensors")
    with pytest.raises(gpt2viz.LoadError, match="not a file or folder, a preset"):
        gpt2viz.load_model("not-a-model")
    with pytest.raises(gpt2viz.LoadError, match=r"No \*.safetensors weights in"):
        gpt2viz.load_model(tmp_path)


def test_corrupt_and_truncated_files(small_dir, tmp_path) -> None:
    data = (small_dir / "model.safetensors").read_bytes()
    folder = copy_small(small_dir, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(gpt2viz.LoadError, match="not a valid safetensors file .corrupt or truncated"):
        gpt2viz.load_model(folder)
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(gpt2viz.LoadError, match="not a valid safetensors file"):
        gpt2viz.load_model(folder)


def test_wrong_shape_names_the_tensor_and_both_shapes(small_dir, tmp_path) -> None:
    folder = copy_small(small_dir, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(64, 200)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(gpt2viz.LoadError,
                       match=r"transformer.h.1.mlp.c_fc.weight has shape \[64, 200\].*needs \[64, 256\]"):
        gpt2viz.load_model(folder)


def test_missing_and_unknown_tensors(small_dir, tmp_path) -> None:
    folder = copy_small(small_dir, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    del state["transformer.h.0.ln_2.bias"]
    state["transformer.h.0.extra"] = torch.zeros(3)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(gpt2viz.LoadError, match="missing 1 tensors .*h.0.ln_2.bias.*unknown tensors"):
        gpt2viz.load_model(folder)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "llama"}, "model_type='llama', not 'gpt2'"),
    ({"activation_function": "relu"}, "not GPT-2's tanh GELU"),
    ({"n_head": 5}, "not divisible by n_head=5"),
    ({"n_layer": None}, "lacks the field 'n_layer'"),
])
def test_not_a_gpt2_config(small_dir, tmp_path, change, message) -> None:
    folder = copy_small(small_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(gpt2viz.LoadError, match=message):
        gpt2viz.load_model(folder)


def test_pickle_is_refused(tmp_path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even read")
    with pytest.raises(gpt2viz.LoadError, match="safetensors only and never unpickles"):
        gpt2viz.load_model(tmp_path)
    with pytest.raises(gpt2viz.LoadError, match="never unpickles"):
        gpt2viz.load_model(tmp_path / "pytorch_model.bin")
