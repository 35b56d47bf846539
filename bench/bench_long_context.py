"""The app at 1,024 tokens on the big models: what each page records, and what each page sends.

1. Recorded bytes per page (`gpt2viz.budget.nbytes` of what the page's resources keep, as
   app/computations.py computes them) on random gpt2-medium weights (and any other `--models`) for a
   1,024-token sequence, against the default budget of GPT2VIZ_RECORDING_BUDGET_MB (1,024 MB):
   every page must fit it on its own.
2. The largest chart payload (Plotly JSON sent to the browser) per page, through AppTest on a
   random `--payload-model` with a 1,024-token context. Target: at most ~2 MB.

    .venv/bin/python bench/bench_long_context.py [--models gpt2-medium,gpt2-xl] [--payload-model gpt2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, like make bench

import torch  # noqa: E402

import gpt2viz  # noqa: E402
from gpt2viz.analysis import attention_overview  # noqa: E402
from gpt2viz.attribution import direct_logit_attribution, saliency  # noqa: E402
from gpt2viz.budget import DEFAULT_BUDGET_MB, MB, nbytes  # noqa: E402
from gpt2viz.cached_step import cached_step, record_sequence, step_over_cache  # noqa: E402
from gpt2viz.viz.attention import HALF_PATTERNS, attention_layer_names  # noqa: E402
from gpt2viz.viz.mlp import mlp_layer_names  # noqa: E402
from gpt2viz.viz.qkv import qkv_layer_names  # noqa: E402

N = 1024
SHAPES = {  # (n_layer, n_head, n_embd) of OpenAI's checkpoints
    "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280),
    "gpt2-xl": (48, 25, 1600),
}


def config_of(preset: str) -> gpt2viz.GPT2Config:
    n_layer, n_head, n_embd = SHAPES[preset]
    return gpt2viz.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd)
PAGE_FILES = {"Generate": "generate.py", "Attention": "attention.py", "Q·K·V": "qkv.py", "MLP": "mlp.py",
              "Inside a step": "inside_step.py", "Why this token?": "why.py"}


def page_recordings(model: gpt2viz.GPT2, ids: list[int]) -> dict[str, dict[str, object]]:
    """What each page keeps for one layer (layer 0) and the last step, as app/computations.py does."""
    layer, last = 0, len(ids) - 1
    sequence = record_sequence(model, ids)
    # The Why page reads a finished generation's keys and values, handed to the store (its cache
    # holds every position but the last token's); without them, the sequence above.
    generation = gpt2viz.Generation(model, gpt2viz.load_tokenizer(), ids[:-1], max_new_tokens=1, record=False,
                                    retain_cache=True)
    generation.advance()
    key_values = generation.release_key_values()
    explained = step_over_cache(model, key_values, last, ids[last])
    return {
        "Attention": {
            "one layer (q, k, float16 pattern)": model.run_with_capture(
                ids, names=attention_layer_names(layer), record_as=HALF_PATTERNS, with_logits=False),
            "every head pooled": attention_overview(model, ids),
        },
        "Q·K·V": {"one layer": model.run_with_capture(ids, names=qkv_layer_names(layer), with_logits=False)},
        "MLP": {"one layer": model.run_with_capture(ids, names=mlp_layer_names(layer), with_logits=False)},
        "Inside a step": {"sequence": sequence, "the step": cached_step(model, sequence, last)},
        "Why this token?": {"the generation's keys and values": key_values,
                            "the explained step": explained,
                            "attribution": direct_logit_attribution(model, explained, last, 0, 1),
                            "saliency": saliency(model, ids, last, 0, 1)},
    }


def recorded_bytes(preset: str) -> None:
    torch.manual_seed(0)
    config = config_of(preset)
    t = time.perf_counter()
    model = gpt2viz.GPT2(config, name=f"random {preset}").eval()
    ids = torch.randint(0, 50000, (N,), generator=torch.Generator().manual_seed(0)).tolist()
    pages = page_recordings(model, ids)
    print(f"{preset} (random weights, {N} tokens; built and recorded in {time.perf_counter() - t:.0f} s):")
    for page, parts in pages.items():
        sizes = {name: nbytes(value) for name, value in parts.items()}
        total = sum(sizes.values())
        fits = "fits" if total <= DEFAULT_BUDGET_MB * MB else "OVER"
        detail = ", ".join(f"{name} {size / MB:,.1f}" for name, size in sizes.items())
        print(f"  {page:16s} {total / MB:8,.1f} MB  ({detail})  [{fits} the {DEFAULT_BUDGET_MB} MB budget]")
    del model, pages


def payloads(preset: str) -> None:
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parent.parent
    torch.manual_seed(0)
    folder = gpt2viz.save_model(gpt2viz.GPT2(config_of(preset)).eval(), tempfile.mkdtemp())
    os.environ["GPT2VIZ_MODEL"] = str(folder)
    tok = gpt2viz.load_tokenizer()
    unit = "The cat sat on the mat and looked at the door. "
    prompt = tok.decode(tok.encode(unit * 120)[:N - 3])
    at = AppTest.from_file(str(root / "streamlit_app.py"), default_timeout=900)
    at.run()
    at.text_area(key="prompt").input(prompt)
    at.number_input(key="max_new_tokens").set_value(2)
    at.button[1].click().run()
    print(f"largest chart payload per page, random {preset}, {len(at.session_state['run'].ids)} tokens "
          f"(target ≤ 2 MB):")
    for page, file in PAGE_FILES.items():
        at.switch_page(f"app/pages/{file}").run()
        if at.exception:
            raise RuntimeError(f"{page}: {at.exception}")
        sizes = {e.proto.id.rsplit("-", 1)[-1]: len(e.proto.spec.encode()) for e in at.get("plotly_chart")}
        key, size = max(sizes.items(), key=lambda kv: kv[1])
        print(f"  {page:16s} {size / 1e6:5.2f} MB  ({key}; {len(sizes)} charts)  "
              f"[{'met' if size <= 2e6 else 'MISSED'}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2-medium", help="comma-separated presets")
    parser.add_argument("--payload-model", default="gpt2")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    for preset in args.models.split(","):
        recorded_bytes(preset)
    payloads(args.payload_model)


if __name__ == "__main__":
    main()
