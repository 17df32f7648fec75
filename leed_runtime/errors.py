"""One error route for every command: a `LeedError` becomes one line on stderr and exit 2, and
so does a refused command line (`OneLineCommand`, `OneLineGroup`: an unknown option, a word where
a number goes, a missing value), instead of click's usage block."""

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


class OneLineUsage(click.ClickException):
    """A refused command line, shown as every other refusal: one `error:` line, exit 2."""

    exit_code = EXIT_USER_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {one_line(self.message)}", err=True)


def _one_line_context(make: Callable[..., click.Context], info_name: str | None, args: list[str], **kw: Any) -> Any:
    try:
        return make(info_name, args, **kw)
    except LeedError as exc:
        raise OneLineUsage(str(exc)) from None
    except click.UsageError as exc:
        parent = kw.get("parent")
        where = " ".join(p for p in (parent.command_path if parent else "", info_name or "") if p)
        raise OneLineUsage(f"{exc.format_message().rstrip('.')}; see {where or 'the command'} --help") from None


class OneLineCommand(click.Command):
    """A click command whose bad flags (a number out of range, an unknown option, a missing
    value) are one `error:` line naming the flag and exit 2, not click's usage block."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        return _one_line_context(super().make_context, info_name, args, parent=parent, **extra)


class OneLineGroup(click.Group):
    """`OneLineCommand` for a command with subcommands (theirs are one line too)."""

    command_class = OneLineCommand

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        return _one_line_context(super().make_context, info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise OneLineUsage(f"{exc.format_message().rstrip('.')}; see {ctx.command_path} --help") from None
