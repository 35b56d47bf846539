"""The errors gpt2viz raises on purpose, each with a message that says what to do."""

EMPTY_PROMPT = "The prompt is empty (or only whitespace). Type some text to continue."


def prompt_too_long(n_tokens: int, context: int) -> str:
    """The one message for a prompt the model cannot take, whichever page asked.

    Every page asks for the same cut, to `context - 1` tokens: that leaves the one free position
    generating needs, so a prompt shortened as told runs everywhere (pages that only read the
    prompt would take one token more)."""
    cut = n_tokens - context + 1
    return (f"The prompt is {n_tokens:,} tokens; this model's context holds {context:,}, and generating "
            f"keeps one of them free for the new token. Shorten it by {cut:,} token{'s' if cut != 1 else ''} "
            f"or more (to {context - 1:,} at most).")


class LoadError(RuntimeError):
    """A model or tokenizer could not be loaded: missing, corrupt, wrong shape, not GPT-2, offline."""


class PromptError(ValueError):
    """The prompt cannot be run: empty, or longer than the model's context."""
