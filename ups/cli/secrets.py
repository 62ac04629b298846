"""Passwords and tokens given on the command line: ``env:NAME``, ``file:PATH``, ``-`` or as is.

``-keystorepw``, ``-keypw``, ``-truststorepw``, ``-passcode`` and ``--jwt``
(:data:`SECRET_OPTIONS`) may name where the secret is instead of holding it, so that it
appears neither in ``ps`` output nor in shell history; a literal value still works.
A resolved secret is a :class:`Secret`, whose ``repr`` hides it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from ups.cli.exits import UsageError

__all__ = ["SECRET_FORMS", "SECRET_OPTIONS", "Secret", "read_secret", "resolve_secrets"]

SECRET_OPTIONS = ("keystorepw", "keypw", "truststorepw", "passcode", "jwt")
"""Options whose value is a secret: each also takes env:NAME, file:PATH or - (prompt)."""
SECRET_FORMS = "env:NAME, file:PATH, - to prompt"
_MAX_SECRET_FILE = 64 * 1024


class Secret(str):
    """A password or token from the command line; ``repr`` (argparse, logs) hides it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def read_secret(option: str, value: str) -> Secret:
    """The secret ``value`` stands for: ``env:NAME``, ``file:PATH``, ``-`` or itself.

    ``file:`` takes the file's first line (without its line break); ``-`` prompts with
    ``getpass`` and is refused when standard input is not a terminal. Errors name the
    option and where the secret was to come from, never a secret.
    """
    flag = _flag(option)
    if value.startswith("env:"):
        name = value[4:]
        found = os.environ.get(name)
        if not name or found is None:
            raise UsageError(f"{flag} {value}: environment variable {name!r} is not set")
        return Secret(found)
    if value.startswith("file:"):
        return Secret(_first_line(flag, value[5:]))
    if value == "-":
        if not sys.stdin.isatty():
            raise UsageError(
                f"{flag} -: cannot prompt, standard input is not a terminal; "
                "give env:NAME or file:PATH"
            )
        return Secret(getpass.getpass(f"dcmups: {flag}: "))
    return Secret(value)


def _flag(option: str) -> str:
    """The option as typed: the seed's single dash, two for our additions (``--jwt``)."""
    return f"--{option}" if option == "jwt" else f"-{option}"


def _first_line(flag: str, path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SECRET_FILE)
    except OSError as exc:
        raise UsageError(f"{flag} file:{path}: {exc.strerror or exc}") from None
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{flag} file:{path}: not UTF-8 text") from None


def resolve_secrets(args: argparse.Namespace) -> None:
    """Replace each given secret option's value by the secret itself, once, up front.

    Once, because ``subscribe -L`` opens a second association on the way out, and a
    prompt must not come twice; up front, so that a bad one is a usage error (exit 2)
    before anything starts.
    """
    for option in SECRET_OPTIONS:
        value = getattr(args, option, None)
        if value is not None and not isinstance(value, Secret):
            setattr(args, option, read_secret(option, value))
