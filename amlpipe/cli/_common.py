"""What every ``amlpipe`` command shares: exit codes, error lines, options, the workspace, output.

Exit codes (``ExitCode``, documented in docs/cli.md) are decided in one place, :func:`classify`,
from the SDK's exception tree::

    CliError                       carries its own code (config missing: 4, bad argument: 2, ...)
    AuthenticationException        4; 5 when the token endpoint could not be reached
    ServiceException               by status: 0 (no answer) and 5xx → 5, 401/403 → 4, 404 → 3, other 4xx → 2
    UserErrorException, ValueError 2, unless caused by a ServiceException (then as that one); not a
                                   JSONDecodeError or UnicodeError (70)
    OSError on a named file        2 (a missing file, a folder, permission denied)
    KeyboardInterrupt              130
    anything else                  70: a bug in amlpipe (--debug shows the traceback)

A command decorated with :func:`cli_command` never shows a traceback unless ``--debug`` is given: it
prints one line, ``error: ...``, on stderr and exits with the code.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from enum import IntEnum
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, Protocol, TypeVar

import requests
import typer
from typer import TyperException

from amlpipe.exceptions import AuthenticationException, ServiceException, UserErrorException

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace

P = ParamSpec("P")
T = TypeVar("T", bound="Toggleable")

DEBUG_ENV = "AMLPIPE_DEBUG"
CONFIG_ENV = "AMLPIPE_CONFIG"


class ExitCode(IntEnum):
    """What an ``amlpipe`` exit status means."""

    OK = 0
    RUN_FAILED = 1  # the run ended Failed or Canceled (run submit --wait, run show --watch)
    USAGE = 2  # bad arguments, or the service answered 400/409 (a client error)
    NOT_FOUND = 3  # the run, pipeline, endpoint or step does not exist (404)
    AUTH = 4  # no usable config, credentials refused (401), or the role may not do this (403)
    SERVICE = 5  # the service could not be reached, or failed (5xx)
    INTERNAL = 70  # an unexpected error in amlpipe itself (sysexits EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """An error the CLI reports as one line with its own exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for ``exc``."""
    if isinstance(exc, CliError):
        return exc.code, one_line(exc.message)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted"
    if isinstance(exc, AuthenticationException):
        unreachable = isinstance(exc.__cause__, requests.RequestException) or (exc.status_code or 0) >= 500
        return (ExitCode.SERVICE if unreachable else ExitCode.AUTH), one_line(exc.message)
    service = _service_cause(exc)
    if service is not None:
        return _service_code(service.status_code), service_message(service)
    if isinstance(exc, UserErrorException) or (
        # the SDK's argument checks raise ValueError, as azureml's do; a garbled answer or terminal is no usage error
        isinstance(exc, ValueError) and not isinstance(exc, json.JSONDecodeError | UnicodeError)
    ):
        return ExitCode.USAGE, one_line(str(exc))
    if isinstance(exc, OSError) and exc.filename is not None:  # a file the user named: missing, a folder, denied
        return ExitCode.USAGE, one_line(f"{exc.filename}: {exc.strerror or type(exc).__name__}")
    return ExitCode.INTERNAL, one_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")


def _service_cause(exc: BaseException) -> ServiceException | None:
    """``exc`` if it is a ServiceException, else the one it was raised from (the SDK rewraps some 4xx)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ServiceException):
            return seen
        seen = seen.__cause__
    return None


def _service_code(status: int) -> ExitCode:
    if status == 0 or status >= 500:
        return ExitCode.SERVICE
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    return ExitCode.USAGE


def service_message(exc: ServiceException) -> str:
    """``404 NotFound: Pipeline run 'x' does not exist.`` (and the details of a rejected graph)."""
    prefix = "" if exc.status_code == 0 else f"{exc.status_code} {exc.error_code or 'Error'}: "
    details = [str(d.get("Message") or d) for d in exc.details if isinstance(d, dict)]
    extra = f" ({'; '.join(details)})" if details and details != [exc.message] else ""
    return one_line(f"{prefix}{exc.message}{extra}")


def one_line(text: str) -> str:
    """``text`` on one line (newlines and runs of spaces become one space)."""
    return " ".join(str(text).split())


# -- options every command takes -----------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar=CONFIG_ENV,
        help="Config file (or a folder to search from). Default: .amlpipe/config.json or config.json in the "
        "current folder or its parents.",
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]


@dataclass(frozen=True)
class Globals:
    """The root options (``amlpipe --json --config PATH --debug COMMAND``)."""

    json: bool = False
    config: Path | None = None
    debug: bool = False


@dataclass(frozen=True)
class Options:
    """A command's effective options: its own, else the root's."""

    json: bool
    config: Path | None
    debug: bool


_globals: Globals | None = None


def set_root_globals(value: Globals | None) -> None:
    """Record the root options: the root callback does before a command runs, the root group clears them after."""
    global _globals
    _globals = value


def root_globals() -> Globals:
    """The root options of the command being run (outside one: none, ``AMLPIPE_DEBUG`` aside)."""
    if _globals is not None:
        return _globals
    return Globals(debug=os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes"))


def options(json_output: bool, config: Path | None, debug: bool) -> Options:
    """Merge a command's ``--json``/``--config``/``--debug`` with the root's."""
    root = root_globals()
    return Options(json=json_output or root.json, config=config or root.config, debug=debug or root.debug)


def cli_command(fn: Callable[P, None]) -> Callable[P, None]:
    """Run a command, turning every error into one line on stderr and an exit code (``classify``).

    With ``--debug`` (the command's, the root's, or ``AMLPIPE_DEBUG=1``) the traceback comes first.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException, BrokenPipeError):
            raise  # exits, usage errors (BadParameter...): the root group reports them; a closed pipe: main
        except (Exception, KeyboardInterrupt) as exc:
            code, message = classify(exc)
            if kwargs.get("debug") or root_globals().debug:
                traceback.print_exception(exc, file=sys.stderr)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(int(code)) from exc

    return run


# -- the workspace ---------------------------------------------------------------------------------


def load_workspace(config: Path | None) -> Workspace:
    """The workspace of ``config`` (a file, or a folder to search from), else of the nearest config.

    Raises:
        CliError: (AUTH) no config, or one without an endpoint or credentials.
    """
    from amlpipe.core.workspace import Workspace

    if config is not None and not config.exists():
        raise CliError(ExitCode.AUTH, f"Config {config} does not exist.")
    try:
        return Workspace.from_config(config)
    except UserErrorException as exc:
        raise CliError(ExitCode.AUTH, exc.message) from exc


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Keep what SDK calls print (``Submitted PipelineRun ...``) out of the command's output."""
    with redirect_stdout(StringIO()):
        yield


# -- output ----------------------------------------------------------------------------------------


def emit_json(value: Any) -> None:
    """``value`` as indented JSON on stdout."""
    typer.echo(json.dumps(value, indent=2, default=str))


def emit_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines, the values aligned; None values are left out."""
    shown = [(k, v) for k, v in fields if v is not None]
    width = max((len(k) for k, _ in shown), default=0) + 1
    for key, value in shown:
        typer.echo(f"{key + ':':<{width}} {value}")


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows as plain columns separated by two spaces (no colours, no borders: easy to grep and cut)."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        typer.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


class Toggleable(Protocol):
    """A published pipeline, a pipeline endpoint or a schedule: it can be enabled and disabled."""

    @property
    def status(self) -> str: ...

    def enable(self) -> None: ...

    def disable(self) -> None: ...


def set_active(found: T, *, active: bool, as_json: bool, to_json: Callable[[T], dict[str, Any]], label: str) -> None:
    """Enable (``active``) or disable ``found`` and say what it is now: its JSON, or ``<label> is <status>.``"""
    if active:
        found.enable()
    else:
        found.disable()
    if as_json:
        emit_json(to_json(found))
        return
    typer.echo(f"{label} is {found.status}.")


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (live drawing happens only then, and never with --json)."""
    return sys.stdout.isatty()


def parse_pairs(values: Sequence[str] | None, *, option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` as ``{"a": "1", "b": "x=y"}`` (the value is everything after the first ``=``).

    Raises:
        typer.BadParameter: an entry without ``=``, with an empty name, or a name given twice.
    """
    found: dict[str, str] = {}
    for raw in values or ():
        name, sep, value = raw.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"{raw!r} is not NAME=VALUE.", param_hint=f"'{option}'")
        if name in found:
            raise typer.BadParameter(f"{name!r} is given twice.", param_hint=f"'{option}'")
        found[name] = value
    return found
