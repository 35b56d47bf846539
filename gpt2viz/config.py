"""GPT-2 hyper-parameters, read from Hugging Face's config.json or inferred from weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import LoadError

# Activation names that all mean GPT-2's tanh-approximate GELU.
_TANH_GELU = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}


@dataclass(frozen=True)
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024  # context length
    n_embd: int = 768  # d_model
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    layer_norm_epsilon: float = 1e-5
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise LoadError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                "a GPT-2 config needs whole-sized heads."
            )

    @property
    def d_head(self) -> int:
        return self.n_embd // self.n_head

    @property
    def d_mlp(self) -> int:
        return self.n_inner or 4 * self.n_embd

    def to_hf_dict(self) -> dict[str, Any]:
        """The fields as Hugging Face's GPT2Config spells them (for config.json)."""
        return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                "activation_function": "gelu_new", **asdict(self)}

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any], where: str = "config.json") -> GPT2Config:
        """Build from a Hugging Face config.json dict; refuse anything that is not GPT-2."""
        model_type = raw.get("model_type")
        if model_type != "gpt2":
            raise LoadError(
                f"{where} describes model_type={model_type!r}, not 'gpt2'. gpt2viz loads only "
                "GPT-2-architecture models (gpt2, gpt2-medium/large/xl, distilgpt2, fine-tunes)."
            )
        act = raw.get("activation_function", "gelu_new")
        if act not in _TANH_GELU:
            raise LoadError(f"{where}: activation_function={act!r} is not GPT-2's tanh GELU.")
        unsupported = {
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "scale_attn_weights": True,
            "add_cross_attention": False,
        }
        for key, expected in unsupported.items():
            if raw.get(key, expected) != expected:
                raise LoadError(f"{where}: {key}={raw[key]!r} is not supported (expected {expected}).")
        try:
            return cls(
                vocab_size=int(raw["vocab_size"]),
                n_positions=int(raw.get("n_positions", raw.get("n_ctx", 1024))),
                n_embd=int(raw["n_embd"]),
                n_layer=int(raw["n_layer"]),
                n_head=int(raw["n_head"]),
                n_inner=raw.get("n_inner"),
                layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-5)),
                tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
            )
        except KeyError as err:
            raise LoadError(f"{where} lacks the field {err.args[0]!r} that a GPT-2 config has.") from None
