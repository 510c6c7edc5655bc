"""The errors aigi raises on purpose, for input a person can fix.

Everything here derives from :class:`AigiError`. The command line turns exactly
these into one-line messages; any other exception is a bug in aigi and keeps its
traceback (``--debug`` shows it for these too). Each also derives from the
built-in it refines (``ValueError``, ``KeyError``…), so ``except ValueError`` in
user code keeps working.
"""
from __future__ import annotations


class AigiError(Exception):
    """Bad input: the message names the file, key or value and the cause."""


class InputError(AigiError, ValueError):
    """A value that cannot be used (a dataset row, a parameter, an option)."""


class ConfigError(InputError):
    """A recipe that cannot be used; the message names the file or the key."""


class DetectorNotFound(AigiError, FileNotFoundError):
    """A detector name or folder that resolves to nothing."""
