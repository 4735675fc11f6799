"""The CLI in process (typer's CliRunner): help texts, argument parsing, exit codes, one-line errors and
config discovery. No I/O beyond temporary files: nothing here reaches a service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import typer
from typer.main import get_command
from typer.testing import CliRunner

from amlpipe.cli import app
from amlpipe.cli._common import CliError, ExitCode, classify, cli_command, parse_pairs
from amlpipe.exceptions import AuthenticationException, ServiceException, UserErrorException

runner = CliRunner()

SECRET = "s3cret-password-value"


def _command_paths() -> Iterator[list[str]]:
    """Every command and group of the CLI, as argument lists (``["run", "submit"]``, ...)."""

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(get_command(app), [])


@pytest.fixture(autouse=True)
def _no_config_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts in an empty folder, without a config or the CLI's environment variables."""
    monkeypatch.chdir(tmp_path)
    for name in ("AMLPIPE_CONFIG", "AMLPIPE_DEBUG", "AMLPIPE_ENDPOINT", "AMLPIPE_SP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _one_error_line(result: object) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return str(lines[0])


def test_the_command_tree() -> None:
    paths = {" ".join(p) for p in _command_paths()}
    assert {
        "host",
        "bootstrap",
        "login",
        "config show",
        "pipeline publish",
        "pipeline list",
        "pipeline show",
        "pipeline enable",
        "pipeline disable",
        "pipeline endpoint list",
        "pipeline endpoint show",
        "pipeline endpoint create",
        "pipeline endpoint add-version",
        "pipeline endpoint set-default",
        "pipeline endpoint enable",
        "pipeline endpoint disable",
        "run submit",
        "run list",
        "run show",
        "run logs",
        "run cancel",
        "run metrics",
        "sp create",
        "sp list",
        "sp delete",
    } <= paths


@pytest.mark.parametrize("path", list(_command_paths()), ids=lambda p: " ".join(p) or "amlpipe")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["run", "list", "--json", "--help"],
        ["run", "submit", "--help"],
        ["pipeline", "publish", "--help"],
        ["run", "logs", "--help"],
    ],
)
def test_commands_for_scripts_offer_json_and_config(args: list[str]) -> None:
    text = runner.invoke(app, args).stdout
    assert "--json" in text and "--config" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "submit", "p", "-e", "x", "--param", "noequals"], "'noequals' is not NAME=VALUE"),
        (["run", "submit", "p", "-e", "x", "--param", "=1"], "'=1' is not NAME=VALUE"),
        (["run", "submit", "p", "-e", "x", "-p", "a=1", "-p", "a=2"], "'a' is given twice"),
        (["run", "submit", "p"], "Missing option '--experiment'"),
        (["run", "list"], "exactly one of --experiment and --pipeline-id"),
        (["run", "list", "-e", "x", "--pipeline-id", "y"], "exactly one of --experiment and --pipeline-id"),
        (["run", "list", "-e", "x", "--status", "Done"], "'Done' is not one of NotStarted, Running"),
        (["run", "logs", "r", "--attempt", "2"], "--attempt needs --step"),
        (["run", "logs", "r", "--step", "s", "--attempt", "0"], "'--attempt'"),
        (["pipeline", "endpoint", "set-default", "e"], "exactly one of --version and --pipeline-id"),
        (["nope"], "No such command 'nope'"),
        (["pipeline", "publish", "missing.py"], "missing.py is not a file"),
        (["login", "--endpoint", "ftp://x", "--tenant-id", "t", "--sp-id", "i", "--sp-password", "p"], "http(s) URL"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in _one_error_line(result)
    assert result.stdout == ""


def test_a_pipeline_file_of_an_unknown_kind_or_yaml_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("x")
    (tmp_path / "p.yml").write_text("steps: []\n")
    unknown = runner.invoke(app, ["pipeline", "publish", "p.txt"])
    assert unknown.exit_code == 2 and "unknown kind of pipeline file" in _one_error_line(unknown)
    # A YAML file is read (after the config is found); a bad one names its YAML path and line.
    (tmp_path / ".amlpipe").mkdir()
    _write_config(tmp_path / ".amlpipe" / "config.json")
    yaml = runner.invoke(app, ["pipeline", "publish", "p.yml"])
    assert yaml.exit_code == 2 and _one_error_line(yaml).endswith("p.yml:1: steps: must not be empty")


def test_parse_pairs_keeps_everything_after_the_first_equals() -> None:
    assert parse_pairs(["a=1", "b=x=y", "c="], option="--param") == {"a": "1", "b": "x=y", "c": ""}
    assert parse_pairs(None, option="--param") == {}
    with pytest.raises(typer.BadParameter, match="is given twice"):
        parse_pairs([" a=1", "a =2"], option="--param")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ServiceException("gone", status_code=404, error_code="NotFound"), ExitCode.NOT_FOUND),
        (ServiceException("bad", status_code=400, error_code="BadArgument"), ExitCode.USAGE),
        (ServiceException("taken", status_code=409, error_code="Conflict"), ExitCode.USAGE),
        (ServiceException("who", status_code=401, error_code="Unauthorized"), ExitCode.AUTH),
        (ServiceException("role", status_code=403, error_code="Forbidden"), ExitCode.AUTH),
        (ServiceException("boom", status_code=500, error_code="InternalError"), ExitCode.SERVICE),
        (ServiceException("Could not reach", status_code=0), ExitCode.SERVICE),
        (AuthenticationException("refused", status_code=401, error="invalid_client"), ExitCode.AUTH),
        (AuthenticationException("wrong tenant"), ExitCode.AUTH),
        (UserErrorException("bad name"), ExitCode.USAGE),
        (ValueError("PipelineEndpoint name x already exists"), ExitCode.USAGE),
        (CliError(ExitCode.NOT_FOUND, "no step"), ExitCode.NOT_FOUND),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (RuntimeError("a bug"), ExitCode.INTERNAL),
        (IsADirectoryError(21, "Is a directory", "/tmp/cfg"), ExitCode.USAGE),  # a file the user named
        (PermissionError(13, "Permission denied", "/etc/x"), ExitCode.USAGE),
        (json.JSONDecodeError("Expecting value", "<html>", 0), ExitCode.INTERNAL),  # a garbled answer: no usage error
        (UnicodeEncodeError("ascii", "é", 0, 1, "no"), ExitCode.INTERNAL),
    ],
)
def test_exceptions_map_to_exit_codes(exc: BaseException, code: ExitCode) -> None:
    assert classify(exc)[0] == code


def test_an_unreachable_token_endpoint_is_a_service_error() -> None:
    try:
        try:
            raise requests.ConnectionError("refused")
        except requests.ConnectionError as cause:
            raise AuthenticationException("Could not reach the token endpoint") from cause
    except AuthenticationException as exc:
        assert classify(exc)[0] == ExitCode.SERVICE


def test_a_service_error_rewrapped_by_the_sdk_keeps_its_status() -> None:
    try:
        try:
            raise ServiceException("Step 'x' of run r has no attempt 3.", status_code=404, error_code="NotFound")
        except ServiceException as cause:
            raise UserErrorException(cause.message) from cause
    except UserErrorException as exc:
        assert classify(exc) == (ExitCode.NOT_FOUND, "404 NotFound: Step 'x' of run r has no attempt 3.")


def test_error_messages_are_one_line_with_the_details_of_a_rejected_graph() -> None:
    exc = ServiceException(
        "The pipeline graph is invalid.\nSee details.",
        status_code=400,
        error_code="GraphValidation",
        details=[{"Code": "Cycle", "Message": "a -> b -> a"}, {"Code": "Input", "Message": "c: unconnected"}],
    )
    assert classify(exc) == (
        ExitCode.USAGE,
        "400 GraphValidation: The pipeline graph is invalid. See details. (a -> b -> a; c: unconnected)",
    )


def _failing_app(exc: BaseException) -> typer.Typer:
    test_app = typer.Typer()

    @test_app.command()
    @cli_command
    def fail(debug: bool = False) -> None:
        raise exc

    @test_app.command()
    def other() -> None:
        """A second command, so `fail` is a subcommand."""

    return test_app


def test_a_failing_command_prints_one_line_and_no_traceback_unless_debug() -> None:
    error = ServiceException("Pipeline run 'x' does not exist.", status_code=404, error_code="NotFound")
    quiet = runner.invoke(_failing_app(error), ["fail"])
    assert quiet.exit_code == 3
    assert _one_error_line(quiet) == "error: 404 NotFound: Pipeline run 'x' does not exist."
    loud = runner.invoke(_failing_app(error), ["fail", "--debug"])
    assert loud.exit_code == 3 and "Traceback" in loud.stderr and loud.stderr.rstrip().endswith("does not exist.")


def test_an_unexpected_error_says_it_is_one_and_exits_70() -> None:
    result = runner.invoke(_failing_app(RuntimeError("kaput")), ["fail"])
    assert result.exit_code == ExitCode.INTERNAL
    assert _one_error_line(result) == "error: unexpected RuntimeError: kaput (rerun with --debug for the traceback)"


def _write_config(path: Path, endpoint: str = "http://127.0.0.1:9") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "endpoint": endpoint,
                "tenant_id": "t",
                "service_principal_id": "sp",
                "service_principal_password": SECRET,
            }
        )
    )


def test_config_is_found_in_the_current_folder_or_a_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path / ".amlpipe" / "config.json")
    child = tmp_path / "a" / "b"
    child.mkdir(parents=True)
    monkeypatch.chdir(child)
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown == {
        "config": str(tmp_path / ".amlpipe" / "config.json"),
        "endpoint": "http://127.0.0.1:9",
        "tenant_id": "t",
        "service_principal_id": "sp",
        "has_password": True,
        "token_command": None,
    }
    assert SECRET not in result.output

    _write_config(child / "config.json", endpoint="http://nearer")  # the nearest wins, config.json included
    assert json.loads(runner.invoke(app, ["--json", "config", "show"]).stdout)["endpoint"] == "http://nearer"


def test_config_option_and_environment_override_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path / ".amlpipe" / "config.json")
    other = tmp_path / "elsewhere" / "staging.json"
    _write_config(other, endpoint="http://staging")
    by_option = runner.invoke(app, ["config", "show", "--config", str(other)])
    assert by_option.exit_code == 0 and "http://staging" in by_option.stdout and SECRET not in by_option.stdout
    by_root_option = runner.invoke(app, ["--config", str(other), "config", "show", "--json"])
    assert json.loads(by_root_option.stdout)["endpoint"] == "http://staging"
    monkeypatch.setenv("AMLPIPE_CONFIG", str(other))
    assert json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)["config"] == str(other)


def test_no_config_is_an_auth_error_with_one_line(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["config", "show"])
    assert shown.exit_code == ExitCode.AUTH and "amlpipe login" in _one_error_line(shown)
    listed = runner.invoke(app, ["run", "list", "-e", "x"])
    assert listed.exit_code == ExitCode.AUTH and "could not find .amlpipe/config.json" in _one_error_line(listed)
    missing = runner.invoke(app, ["pipeline", "list", "--config", str(tmp_path / "nope.json")])
    assert missing.exit_code == ExitCode.AUTH and "nope.json does not exist" in _one_error_line(missing)


def test_a_config_without_credentials_is_an_auth_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"endpoint": "http://x"}))
    result = runner.invoke(app, ["pipeline", "list"])
    assert result.exit_code == ExitCode.AUTH and "lacks tenant_id" in _one_error_line(result)
