"""The one exit-code table of ``dcmups``, for every subcommand, and the CLI's errors.

=====  ==================================================================================
code   meaning
=====  ==================================================================================
0      success; a warning status too (its code and meaning are printed). ``-L`` and
       ``scp`` stopped by SIGINT/SIGTERM, their normal way to stop.
1      the peer answered with a failure status (or, for ``-L``, the output went away
       or the operation run with it failed).
2      usage or bad local input: options, files, addresses and AE titles, key stores
       and insecure TLS options, ``--users`` and ``--ae-config`` files.
3      network or association failure: unreachable, rejected, aborted, timed out, a
       refused TLS handshake, a port already in use.
130    interrupted (SIGINT during an operation).
=====  ==================================================================================

:func:`exit_code` is the one place that maps an exception onto this table; ``main``
prints the exception's one line and returns the code.
"""

from __future__ import annotations

from enum import IntEnum

from ups.errors import DicomError
from ups.net.errors import NetError, TLSConfigError
from ups.services.errors import ConfigError, UPSFailure

__all__ = ["CLIError", "Exit", "UsageError", "UserInputError", "exit_code"]


class Exit(IntEnum):
    """What a ``dcmups`` process returns (see the module docstring)."""

    OK = 0
    FAILURE_STATUS = 1
    USAGE = 2
    NETWORK = 3
    INTERRUPTED = 130


class CLIError(DicomError):
    """The root of the command line's own errors."""


class UsageError(CLIError):
    """A command line the tool cannot run; printed as one line, exit status 2."""


class UserInputError(CLIError):
    """A ``-f`` file, ``-q``/``-s`` key or value the tool cannot use; exit status 2."""


def exit_code(exc: BaseException) -> Exit:
    """The table's row for ``exc``: the one mapping from what went wrong to an exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return Exit.INTERRUPTED
    if isinstance(exc, UPSFailure):
        return Exit.FAILURE_STATUS
    # A local mistake: the command line, an input file, an address, a key store.
    if isinstance(exc, CLIError | ConfigError | TLSConfigError):
        return Exit.USAGE
    if isinstance(exc, NetError | DicomError | OSError):
        return Exit.NETWORK
    raise TypeError(f"no exit code for {type(exc).__name__}") from exc
