"""Errors whose message is meant for the person who sent the input."""


class BadInput(ValueError):
    """The input cannot be used; the message says why, in words a visitor understands.

    The UI turns it into a `gr.Error`; the CLI prints it and exits non-zero.
    """


class EmptyDrawing(BadInput):
    """A sketch or image with no ink on it: there is nothing to classify."""
