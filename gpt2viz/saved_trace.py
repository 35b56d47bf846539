"""Traces on disk: one .safetensors file holding the tensors, logits and ids, with the start
position, the model's name and config as metadata. Never pickle: a trace file can be shared."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .config import GPT2Config
from .errors import LoadError
from .trace import Trace

FORMAT = "gpt2viz.trace/1"
_LOGITS, _IDS = "__logits__", "__ids__"  # cannot collide with hook names


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write `trace` to `path` (a .safetensors file); `load_trace` reads it back equal."""
    path = Path(path)
    path.write_bytes(trace_bytes(trace))
    return path


def trace_bytes(trace: Trace) -> bytes:
    """The .safetensors file `save_trace` writes, as bytes (for a download)."""
    tensors, seen = {}, set()
    for name, t in trace.items():
        # One block's resid_post is the next one's resid_pre: safetensors wants one copy each.
        ptr = t.untyped_storage().data_ptr()
        tensors[name] = t.contiguous() if ptr not in seen else t.clone()
        seen.add(ptr)
    if trace.logits is not None:
        tensors[_LOGITS] = trace.logits.contiguous()
    tensors[_IDS] = torch.tensor(trace.ids, dtype=torch.int64)
    metadata = {
        "format": FORMAT,
        "names": json.dumps(trace.names()),
        "start": str(trace.start),
        "model_name": trace.model_name,
        "config": json.dumps(trace.config.to_hf_dict()) if trace.config else "",
    }
    return save(tensors, metadata=metadata)


def load_trace(path: str | Path) -> Trace:
    """Read a trace written by `save_trace`; a LoadError says why another file is not one."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise LoadError(
                    f"{path} is a safetensors file but not a gpt2viz trace (it has no "
                    f"format={FORMAT!r} metadata). Write traces with gpt2viz.save_trace."
                )
            names = json.loads(meta["names"])
            tensors = {name: f.get_tensor(name) for name in names}
            logits = f.get_tensor(_LOGITS) if _LOGITS in f.keys() else None
            ids = f.get_tensor(_IDS).tolist()
    except FileNotFoundError:
        raise LoadError(f"No trace file at {path}.") from None
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise LoadError(f"{path} is not a gpt2viz trace file ({err}). "
                        "Write traces with gpt2viz.save_trace.") from None
    config = GPT2Config.from_hf_dict(json.loads(meta["config"]), str(path)) if meta["config"] else None
    return Trace(tensors, logits, ids, start=int(meta["start"]), config=config,
                 model_name=meta["model_name"], batch_index=None)
