"""Time the app as a user feels it, in-process with streamlit's AppTest (no browser):

- Generate → first heatmap: press Generate on a 20-token prompt (20 new tokens, greedy), then
  open the Attention page until its heatmaps are built;
- the rerun when only the layer/head selection changes (the recording is reused).

Models: the small test checkpoint (2 layers, d_model 64) and gpt2-small sized random weights,
both written with gpt2viz.save_model to a temp folder and loaded through $GPT2VIZ_MODEL.
Usage: .venv/bin/python bench/bench_app.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import gpt2viz  # noqa: E402
from gpt2viz.loading import MODEL_ENV  # noqa: E402
from tests.app_support import session_generation  # noqa: E402

TEXT = ("I love the color black, I hope someday to have a cat like that. It would sleep all day "
        "in the sun by the window.")
MODELS = {
    "test model (2 layers, 4 heads, d_model 64)": gpt2viz.GPT2Config(n_layer=2, n_head=4, n_embd=64,
                                                                     n_positions=256),
    "gpt2-small shape, random weights (12 layers, 12 heads, d_model 768)": gpt2viz.GPT2Config(),
}


def prompt_of(n_tokens: int) -> str:
    tok = gpt2viz.load_tokenizer()
    text = tok.decode(tok.encode(TEXT)[:n_tokens])
    assert len(tok.encode(text)) == n_tokens
    return text


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench(config: gpt2viz.GPT2Config, folder: Path, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    gpt2viz.save_model(gpt2viz.GPT2(config), folder)
    os.environ[MODEL_ENV] = str(folder)
    st.cache_resource.clear()
    prompt = prompt_of(20)
    out: dict[str, list[float]] = {"load": [], "generate": [], "attention": [], "head change": [],
                                   "layer change": []}
    for i in range(repeats):
        st.cache_resource.clear()  # every repeat records afresh, as for a new prompt
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=600)
        out["load"].append(timed(at.run))
        at.text_area(key="prompt").input(prompt)
        at.number_input(key="max_new_tokens").set_value(20)
        at.button[1].click()
        out["generate"].append(timed(at.run))
        assert len(session_generation(at).steps) == 20, at.exception
        at.switch_page("app/pages/attention.py")
        out["attention"].append(timed(at.run))
        assert not at.exception, at.exception
        at.selectbox(key="head").select((i % (config.n_head - 1)) + 1)
        out["head change"].append(timed(at.run))
        at.selectbox(key="layer").select(config.n_layer - 1)
        out["layer change"].append(timed(at.run))
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; median of {args.repeats} runs\n")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, config) in enumerate(MODELS.items()):
            r = bench(config, Path(tmp) / f"m{i}", args.repeats)
            first = r["generate"] + r["attention"]
            print(name)
            print(f"  Generate pressed → first heatmap   {first:7.3f} s "
                  f"(generate 20 tokens {r['generate']:.3f} s + Attention page {r['attention']:.3f} s)")
            print(f"  rerun, only the head changes        {r['head change']:7.3f} s")
            print(f"  rerun, only the layer changes       {r['layer change']:7.3f} s")
            print(f"  (first page view incl. model load   {r['load']:7.3f} s)\n")


if __name__ == "__main__":
    main()
