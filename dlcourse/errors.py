"""Errors whose message is meant for the person who sent the input."""
import reprlib


class BadInput(ValueError):
    """The input cannot be used; the message says why, in words a visitor understands.

    The UI turns it into a `gr.Error`; the CLI prints it and exits non-zero.
    """


class EmptyDrawing(BadInput):
    """A sketch or image with no ink on it: there is nothing to classify."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 4


def shown(value: object) -> str:
    """`repr(value)` shortened for a message: a hostile megabyte of text is not echoed back."""
    return _SHORT.repr(value)
