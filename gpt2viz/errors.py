"""The errors gpt2viz raises on purpose, each with a message that says what to do."""

EMPTY_PROMPT = "The prompt is empty (or only whitespace). Type some text to continue."


class LoadError(RuntimeError):
    """A model or tokenizer could not be loaded: missing, corrupt, wrong shape, not GPT-2, offline."""


class PromptError(ValueError):
    """The prompt cannot be run: empty, or longer than the model's context."""
