"""gpt2viz: GPT-2 with named hook points, recordings of every stage, and figures of them."""

from .config import GPT2Config
from .errors import LoadError, PromptError
from .generation import STOP_CONTEXT, STOP_ENDOFTEXT, STOP_MAX_TOKENS, Step, encode_prompt, generate
from .loading import BUNDLED_NAME, PRESETS, load_default_model, load_model, save_model
from .model import GPT2
from .recording import Recorder
from .tokenizer import EOT_ID, GPT2Tokenizer, load_tokenizer
from .trace import Trace

__all__ = [
    "BUNDLED_NAME", "EOT_ID", "GPT2", "GPT2Config", "GPT2Tokenizer", "LoadError", "PRESETS",
    "PromptError", "Recorder", "STOP_CONTEXT", "STOP_ENDOFTEXT", "STOP_MAX_TOKENS", "Step", "Trace",
    "encode_prompt", "generate", "load_default_model", "load_model", "load_tokenizer", "save_model",
]
