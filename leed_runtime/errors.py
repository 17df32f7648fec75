"""One error route for every command: a `LeedError` becomes one line on stderr and exit 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2


class LeedError(Exception):
    """A problem the user can fix: the message names the file or flag, what was expected,
    and the fix. Shown as one line, never as a traceback."""


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def handle_errors(func: F) -> F:
    """Decorate a click command body: LeedError -> `error: ...` on stderr, exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LeedError as exc:
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing half-written was kept", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
