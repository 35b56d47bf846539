"""gpt2viz: GPT-2 with named hook points, recordings of every stage, and figures of them."""

from . import cached_step, lens, patching
from .config import GPT2Config
from .errors import LoadError, PromptError
from .generation import (
    STOP_CONTEXT,
    STOP_ENDOFTEXT,
    STOP_MAX_TOKENS,
    Candidate,
    Generation,
    Step,
    advance_together,
    encode_prompt,
    generate,
)
from .hooks import act_name
from .kv_cache import kv_cache_bytes
from .loading import BUNDLED_NAME, PRESETS, load_default_model, load_model, save_model
from .model import GPT2
from .recording import Recorder
from .sampling import SamplingStages, sampling_stages
from .saved_trace import load_trace, save_trace
from .tokenizer import EOT_ID, EOT_TEXT, GPT2Tokenizer, load_tokenizer
from .trace import Trace

__all__ = [
    "BUNDLED_NAME", "Candidate", "EOT_ID", "EOT_TEXT", "GPT2", "GPT2Config", "GPT2Tokenizer", "Generation",
    "LoadError", "PRESETS", "PromptError", "Recorder", "STOP_CONTEXT", "STOP_ENDOFTEXT",
    "STOP_MAX_TOKENS", "SamplingStages", "Step", "Trace", "act_name", "advance_together", "cached_step",
    "encode_prompt", "generate", "kv_cache_bytes", "lens", "load_default_model", "load_model",
    "load_tokenizer", "load_trace", "patching", "sampling_stages", "save_model", "save_trace",
]
