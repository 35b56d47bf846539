"""Training of gpt2viz-mini, the small model bundled in assets/gpt2viz-mini/.

One concept per module, run in this order:

    python -m training.fetch_corpus                                  # data/corpus/
    python -m training.train --config training/config/gpt2viz_mini.json

- `fetch_corpus`: download and clean the text corpus (Brown Corpus + Python 3.11 docs).
- `prepare`: tokenize it and cut the training windows (text, repeated spans, synthetic).
- `objectives`: the losses a training step minimises.
- `train`: `TrainConfig`, the loop and the command line.
- `evaluate`: the figures of saved weights (losses, head scores, greedy continuations).
- `card`: the model card, rendered from `card_template.md` and training.json.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "data" / "corpus"  # written by fetch_corpus
TOKENS_DIR = ROOT / "data" / "tokens"  # token-id cache written by prepare
