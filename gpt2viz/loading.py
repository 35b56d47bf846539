"""Load GPT-2 weights from a preset, a Hugging Face repo id, a local folder or a .safetensors file.

Safetensors only: pickled checkpoints (.bin, .pt) are refused, never unpickled. Downloads go
through `huggingface_hub`, so they use its cache and progress bars. The Hub's files store the
Conv1D weights as [in, out]; our `nn.Linear` holds [out, in], so those four are transposed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .config import GPT2Config
from .errors import LoadError
from .model import GPT2
from .paths import ASSETS

PRESETS: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
# Models that ship inside assets/ and load with no network: name -> folder.
BUNDLED_NAME = "gpt2viz-mini"
BUNDLED: dict[str, Path] = {BUNDLED_NAME: ASSETS / BUNDLED_NAME}
MODEL_ENV = "GPT2VIZ_MODEL"  # overrides the default model source (a preset, repo id or path)

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")  # causal-mask buffers in older HF files
_HUB_FILES = ["config.json", "model.safetensors", "model-*.safetensors",
              "model.safetensors.index.json"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # org/name


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(
    source: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | Path | None = None,
) -> GPT2:
    """Load a GPT-2 for inference.

    `source`: a preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2, or a bundled model),
    a Hugging Face repo id, a folder with config.json and *.safetensors (sharded too), or one
    .safetensors file. `device` defaults to CUDA when available, `dtype` to float32.
    `cache_dir` overrides the Hugging Face cache folder.
    """
    files, raw_config, label = _resolve(source, cache_dir)
    state = _read_safetensors(files)
    config = GPT2Config.from_hf_dict(raw_config or infer_config(state, label), f"config of {label}")
    weights = convert_hf_state_dict(state, config, label)
    with torch.device("meta"):
        model = GPT2(config, name=label)
    model.load_state_dict(weights, strict=True, assign=True)
    model.to(device=torch.device(device) if device else default_device(),
             dtype=dtype or torch.float32)
    return model.eval()


def _resolve(source: str | Path, cache_dir: str | Path | None) -> tuple[list[Path], dict | None, str]:
    """Find the weight files and config for `source`: (safetensors files, config dict, label)."""
    name = str(source)
    if name in BUNDLED:
        folder = BUNDLED[name]
        if not folder.is_dir():
            raise LoadError(
                f"The bundled model {name!r} is missing from {folder}. Restore assets/ from the "
                "repository, or rebuild it with `python -m training.train --config "
                "training/config/gpt2viz_mini.json`."
            )
        files, config = _folder_files(folder)
        return files, config, name
    path = Path(source).expanduser()
    if path.is_dir():
        files, config = _folder_files(path)
        return files, config, str(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise _pickle_refusal(path)
        sibling = path.with_name("config.json")
        config = _read_json(sibling) if sibling.is_file() else _embedded_config(path)
        return [path], config, str(path)
    if name in PRESETS or _REPO_ID.match(name):
        folder = _from_hub(PRESETS.get(name, name), name, cache_dir)
        files, config = _folder_files(folder)
        return files, config, name
    if path.suffix or name.startswith(("/", ".", "~")):
        raise LoadError(f"File or folder not found: {path}.")
    raise LoadError(
        f"No model at {name!r}: it is not a file or folder, a preset "
        f"({', '.join([*PRESETS, *BUNDLED])}) or a Hugging Face repo id like 'org/name'."
    )


def _from_hub(repo_id: str, label: str, cache_dir: str | Path | None) -> Path:
    """The local snapshot of `repo_id`: from the cache if complete, else downloaded."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES,
                                        cache_dir=cache_dir, local_files_only=True))
        if any(folder.glob("*.safetensors")):
            return folder
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES, cache_dir=cache_dir))
    except LocalEntryNotFoundError as err:  # raised when the Hub cannot be reached
        raise LoadError(
            f"The model {label!r} ({repo_id}) is not in the Hugging Face cache and the Hub "
            f"could not be reached ({_first_line(err)}). To get it, on a machine with internet "
            f"run `hf download {repo_id} config.json model.safetensors` and copy "
            "~/.cache/huggingface to this machine, or pass load_model a folder holding "
            "config.json and model.safetensors."
        ) from None
    except HfHubHTTPError as err:
        raise LoadError(
            f"The Hugging Face Hub has no usable model {repo_id!r}: {_first_line(err)}"
        ) from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _folder_files(folder: Path) -> tuple[list[Path], dict | None]:
    config_path = folder / "config.json"
    config = _read_json(config_path) if config_path.is_file() else None
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        files = [folder / s for s in shards]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise LoadError(f"{index} lists shards that are missing: {', '.join(missing)}.")
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
        if pickled:
            raise _pickle_refusal(folder / pickled[0])
        raise LoadError(f"No *.safetensors weights in {folder}: expected model.safetensors "
                        "(or shards with model.safetensors.index.json) beside config.json.")
    if config is None and len(files) == 1:
        config = _embedded_config(files[0])
    return files, config


def _pickle_refusal(path: Path) -> LoadError:
    return LoadError(
        f"{path} is not a .safetensors file. gpt2viz loads safetensors only and never unpickles "
        "(.bin/.pt files can run code). Convert it where you trust it: "
        "GPT2LMHeadModel.from_pretrained(folder).save_pretrained(out, safe_serialization=True)."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LoadError(f"{path} is not readable JSON: {err}") from None


def _embedded_config(path: Path) -> dict | None:
    """A config.json stored in the safetensors header's metadata (as our bundled model does)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            text = (f.metadata() or {}).get("config")
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise _corrupt(path, err) from None
    return json.loads(text) if text else None


def _corrupt(path: Path, err: Exception) -> LoadError:
    return LoadError(f"{path} is not a valid safetensors file (corrupt or truncated?): {err}")


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in files:
        if not path.is_file():
            raise LoadError(f"Weight file {path} does not exist.")
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                    state[key] = f.get_tensor(key)
        except Exception as err:
            raise _corrupt(path, err) from None
    return state


def _strip(key: str) -> str:
    return key.removeprefix("transformer.")


def infer_config(state: dict[str, torch.Tensor], label: str) -> dict:
    """A config from tensor shapes, for a bare .safetensors file with no config.json.

    Shapes do not tell the number of heads; GPT-2 models all use 64-wide heads.
    """
    keys = {_strip(k): v for k, v in state.items()}
    if "wte.weight" not in keys or "wpe.weight" not in keys:
        raise LoadError(f"{label} has no wte.weight/wpe.weight: these are not GPT-2 weights.")
    layers = {int(m.group(1)) for k in keys if (m := re.match(r"h\.(\d+)\.", k))}
    vocab, n_embd = keys["wte.weight"].shape
    return {
        "model_type": "gpt2", "vocab_size": vocab, "n_embd": n_embd,
        "n_positions": keys["wpe.weight"].shape[0], "n_layer": len(layers),
        "n_head": max(1, n_embd // 64),
        "n_inner": keys["h.0.mlp.c_fc.weight"].shape[1] if "h.0.mlp.c_fc.weight" in keys else None,
        "tie_word_embeddings": "lm_head.weight" not in keys,
    }


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Every parameter our model needs, with its shape as stored in HF files (Conv1D [in, out])."""
    with torch.device("meta"):
        model = GPT2(config)
    return {
        k: tuple(reversed(v.shape)) if k.endswith(_CONV1D) else tuple(v.shape)
        for k, v in model.state_dict().items()
    }


def convert_hf_state_dict(
    state: dict[str, torch.Tensor], config: GPT2Config, label: str
) -> dict[str, torch.Tensor]:
    """Map a HF GPT-2 state dict (either key layout) onto our parameter names and orientation."""
    expected = expected_shapes(config)
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in state.items():
        name = _strip(key)
        if _BUFFER.fullmatch(name):
            continue
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied to wte.weight
        if name not in expected:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != expected[name]:
            raise LoadError(
                f"{label}: tensor {key} has shape {list(tensor.shape)}, but the config "
                f"(n_embd={config.n_embd}, n_layer={config.n_layer}, vocab={config.vocab_size}) "
                f"needs {list(expected[name])}."
            )
        out[name] = tensor.t().contiguous() if name.endswith(_CONV1D) else tensor
    missing = sorted(set(expected) - set(out))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"unknown tensors {', '.join(sorted(unexpected)[:4])}")
        raise LoadError(f"{label} does not match a GPT-2 of its config: {'; '.join(parts)}.")
    return out


def load_default_model(
    device: str | torch.device | None = None,
) -> tuple[GPT2, str | None]:
    """The model the app starts with, and why it fell back to the bundled model (None if not).

    `$GPT2VIZ_MODEL` if set; else the real gpt2 when it is cached or downloadable; else the
    bundled model, with the reason the real one could not be loaded. Never a silent switch.
    """
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return load_model(chosen, device=device), None
    try:
        return load_model("gpt2", device=device), None
    except LoadError as err:
        return load_model(BUNDLED_NAME, device=device), str(err)


def save_model(model: GPT2, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write `model` as Hugging Face would: folder/config.json + folder/model.safetensors.

    Keys use the Hub layout without the `transformer.` prefix, Conv1D weights [in, out], no
    lm_head when tied; the config is also stored in the file's metadata so the file alone loads.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_text = json.dumps(model.config.to_hf_dict(), indent=2)
    tensors = {
        k: (v.t() if k.endswith(_CONV1D) else v).detach().to("cpu", dtype or v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"config": config_text})
    (folder / "config.json").write_text(config_text + "\n")
    return folder
