"""The one error base class of firstspike.

Every error that a user's input can cause (a bad model file, an unsupported layer, a
model that does not fit the array, impossible parameters, unreadable data, an output
path that cannot be written) derives from :class:`FirstspikeError`. The command line
catches exactly this class and prints its message; anything else is a bug and shows
its traceback.
"""
from __future__ import annotations


class FirstspikeError(Exception):
    """A problem with what the user asked for, explained in the message."""


class InputError(FirstspikeError, ValueError):
    """A parameter value that cannot be used (out of range, NaN, wrong type)."""


class OutputError(FirstspikeError, OSError):
    """An output path that cannot be written (read-only folder, full disk, a directory where a file goes)."""
