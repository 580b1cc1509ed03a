"""Errors that reach the operator as a message and an exit code, never as a traceback."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class ForgeError(Exception):
    """A failure the operator can act on; `exit_code` is what the CLI returns."""

    exit_code = EXIT_FAILURE


class BadInput(ForgeError):
    """Input (a file, a flag, a config) that cannot be used; nothing was modified."""

    exit_code = EXIT_BAD_INPUT
