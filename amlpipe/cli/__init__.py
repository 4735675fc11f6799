"""The ``amlpipe`` command line: a thin layer over the SDK (see docs/cli.md).

One module per command group: ``_host`` (``host``, ``bootstrap``), ``_sp`` (``sp``), ``_login``
(``login``, ``config show``), ``_pipeline`` (``pipeline``, ``pipeline endpoint``), ``_run`` (``run``),
``_schedule`` (``schedule``), ``_datastore`` (``datastore``), ``_dataset`` (``dataset``), ``_compute``
(``compute``), ``_model`` (``model``); ``_common`` holds the exit codes, error lines, options and
output helpers they share.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import TyperException
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click
from typer.core import TyperGroup

from amlpipe.cli._common import CONFIG_ENV, DEBUG_ENV, ExitCode, Globals, set_root_globals
from amlpipe.cli._compute import compute_app
from amlpipe.cli._dataset import dataset_app
from amlpipe.cli._datastore import datastore_app
from amlpipe.cli._host import bootstrap_command, host
from amlpipe.cli._login import config_app, login, token
from amlpipe.cli._model import model_app
from amlpipe.cli._pipeline import pipeline_app
from amlpipe.cli._run import run_app
from amlpipe.cli._schedule import schedule_app
from amlpipe.cli._sp import sp_app

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """The root group: usage errors become one ``error: ...`` line on stderr (exit 2), never a box."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # `amlpipe run`: the group's help
            exc.show()
            code = exc.exit_code
        except TyperException as exc:  # usage errors (exit 2) and other click-level errors
            hint = ""
            if isinstance(exc, UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = int(ExitCode.INTERRUPTED)
        else:
            code = result if isinstance(result, int) else 0
        finally:
            set_root_globals(None)  # the next invocation in this process (tests) starts afresh
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold connection strings
    help="amlpipe: Azure ML-style pipelines on Azure Functions.",
)


@app.callback()
def _root(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", envvar=CONFIG_ENV, help="Config file (or a folder to search from); default: the nearest."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", envvar=DEBUG_ENV, help="Show tracebacks of errors.")] = False,
) -> None:
    """amlpipe command line. Exit codes: 0 ok, 1 run Failed/Canceled, 2 usage, 3 not found, 4 auth, 5 service."""
    set_root_globals(Globals(json=json_output, config=config, debug=debug))


app.command("host")(host)
app.command("bootstrap")(bootstrap_command)
app.command("login")(login)
app.command("token")(token)
app.add_typer(config_app, name="config")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(run_app, name="run")
app.add_typer(schedule_app, name="schedule")
app.add_typer(datastore_app, name="datastore")
app.add_typer(dataset_app, name="dataset")
app.add_typer(compute_app, name="compute")
app.add_typer(model_app, name="model")
app.add_typer(sp_app, name="sp")


def main() -> None:
    """The ``amlpipe`` console script. Output piped into a reader that stops early (``| head``) ends
    the command quietly, as it does any Unix tool."""
    try:
        app()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports a command killed by the broken pipe
