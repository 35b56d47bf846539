"""`python -m gpt2viz`: see gpt2viz.cli."""

import sys

from .cli import main

sys.exit(main())
