"""The CLI's registry groups in process (typer's CliRunner): schedule, datastore, dataset, compute, model
and sp. Help texts, option parsing, and the usage errors found before any config is read (exit 2, one
line); the views of a schedule built from a hand-written entity. Nothing here reaches a service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from amlpipe.cli import app
from amlpipe.cli._common import ExitCode
from amlpipe.cli._model import _tag_filter
from amlpipe.cli._schedule import build_recurrence, describe_recurrence, schedule_json
from amlpipe.pipeline.core import Schedule, ScheduleRecurrence, TimeZone

runner = CliRunner()

NEW_COMMANDS = [
    ["schedule", "create"],
    ["schedule", "list"],
    ["schedule", "show"],
    ["schedule", "enable"],
    ["schedule", "disable"],
    ["datastore", "list"],
    ["datastore", "upload"],
    ["datastore", "download"],
    ["dataset", "register"],
    ["dataset", "list"],
    ["compute", "create"],
    ["compute", "list"],
    ["model", "list"],
    ["model", "download"],
    ["sp", "create"],
    ["sp", "list"],
    ["sp", "delete"],
]


@pytest.fixture(autouse=True)
def _no_config_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts in an empty folder, without a config or the CLI's environment variables."""
    monkeypatch.chdir(tmp_path)
    for name in ("AMLPIPE_CONFIG", "AMLPIPE_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def _one_error_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return str(lines[0])


def test_the_new_groups_are_in_the_command_tree() -> None:
    root = get_command(app)
    groups = getattr(root, "commands", {})
    for group, command in NEW_COMMANDS:
        assert command in getattr(groups[group], "commands", {}), f"{group} {command}"


@pytest.mark.parametrize("path", NEW_COMMANDS, ids=" ".join)
def test_every_new_command_has_help_with_the_shared_options(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert all(option in result.stdout for option in ("--json", "--config", "--debug"))


@pytest.mark.parametrize("group", ["schedule", "datastore", "dataset", "compute", "model"])
def test_a_group_without_a_command_shows_its_help(group: str) -> None:
    result = runner.invoke(app, [group])
    assert "Usage:" in result.stdout and "Commands" in result.stdout


CREATE = ["schedule", "create", "nightly", "target", "-e", "exp"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # what ScheduleRecurrence refuses, with azureml's messages
        ([*CREATE, "--frequency", "Hour", "--hours", "1"], "Can only specify hours if frequency is Week or Day."),
        ([*CREATE, "--frequency", "Day", "--week-days", "Monday"], "Can only specify week days if frequency is Week."),
        ([*CREATE, "--frequency", "Fortnight"], "Invalid value for frequency, only one of Minute, Hour, Day"),
        ([*CREATE, "--frequency", "Day", "--interval", "0"], "Interval must be an integer greater than 0."),
        ([*CREATE, "--frequency", "Day", "--time-of-day", "25:00"], "Time of day hour value must be between 0 and 23."),
        ([*CREATE, "--frequency", "Day", "--time-of-day", "2pm"], "time_of_day should be in the format hh:mm."),
        (
            [*CREATE, "--frequency", "Day", "--time-of-day", "02:30", "--hours", "1"],
            "Can not specify time_of_day and hours or minutes.",
        ),
        ([*CREATE, "--frequency", "Day", "--minutes", "0,60"], "Minutes must be between 0 and 59."),
        ([*CREATE, "--frequency", "Week", "--week-days", "Monday,Funday"], "Week days must be a list of str"),
        ([*CREATE, "--frequency", "Day", "--time-zone", "Mars/Olympus"], "Time zone is not a valid TimeZone enum."),
        ([*CREATE, "--frequency", "Day", "--start-time", "2024-02-30T00:00:00"], "StartTime must be a local date"),
        # the CLI's own parsing
        ([*CREATE, "--frequency", "Day", "--hours", "1,two"], "'1,two' is not a comma-separated list of numbers"),
        ([*CREATE, "--hours", "1"], "--hours needs --frequency"),
        ([*CREATE, "--datastore", "store", "--interval", "5"], "--interval needs --frequency"),  # never dropped
        ([*CREATE, "--frequency", "Hour", "--datastore", "store"], "not both"),
        ([*CREATE, "--frequency", "Hour", "--recursive"], "--recursive needs --datastore"),
        ([*CREATE, "--polling-interval", "10", "--path-on-datastore", "in"], "--path-on-datastore, --polling-interval"),
        (CREATE, "give recurrence options (--frequency ...) or a datastore watch (--datastore ...)."),
        ([*CREATE, "--datastore", "store", "--debounce-seconds", "-1"], "'--debounce-seconds'"),
        ([*CREATE, "--frequency", "Hour", "-p", "n"], "'n' is not NAME=VALUE"),
        (["schedule", "create", "nightly", "target", "--frequency", "Hour"], "Missing option '--experiment'"),
        (["schedule", "list", "--pipeline-id", "p", "--endpoint", "e"], "at most one of --pipeline-id and --endpoint"),
        (["datastore", "upload", "store", "missing", "--target-path", "x"], "missing is not a folder"),
        (["datastore", "upload", "store", "."], "Missing option '--target-path'"),
        (["dataset", "register", "--name", "n", "--datastore", "d"], "Missing option '--path'"),
        (["dataset", "register", "--name", "n", "--datastore", "d", "--path", "p", "--kind", "csv"], "'csv'"),
        (
            ["dataset", "register", "--name", "n", "--datastore", "d", "--path", "p", "--separator", ";"],
            "only a tabular dataset has a separator",
        ),
        (["compute", "create", "pool"], "Missing option '--max-nodes'"),
        (["compute", "create", "pool", "--max-nodes", "0"], "max_nodes must be at least 1"),
        (["compute", "create", "pool", "--max-nodes", "2", "--min-nodes", "3"], "min_nodes must be between 0"),
        (["model", "list", "--tag", "=x"], "'=x' names no tag"),
        (["model", "download", "m", "out", "--version", "0"], "'--version'"),
        (["sp", "create"], "Missing option '--role'"),
    ],
)
def test_usage_errors_exit_2_with_one_line_before_any_config_is_read(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in _one_error_line(result)


def test_valid_options_reach_the_config_and_its_absence_is_an_auth_error() -> None:
    """The same commands, well formed: they get as far as looking for a config (exit 4), which there is none of."""
    for args in (
        [*CREATE, "--frequency", "week", "--week-days", "monday,Friday", "--time-of-day", "18:30"],
        [*CREATE, "--datastore", "store", "--recursive", "--debounce-seconds", "30", "-p", "n=1"],
        ["datastore", "upload", "store", ".", "--target-path", "in"],
        ["dataset", "register", "--name", "n", "--datastore", "d", "--path", "a/*.csv", "--kind", "TABULAR"],
        ["compute", "create", "pool", "--max-nodes", "2"],
        ["model", "list", "--tag", "stage=dev"],
        ["sp", "list"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == ExitCode.AUTH, (args, result.output)
        assert "config" in _one_error_line(result)


def test_sp_uses_the_shared_exit_codes(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["sp", "list", "--config", str(tmp_path / "nope.json")])
    assert missing.exit_code == ExitCode.AUTH and "nope.json does not exist" in _one_error_line(missing)
    unreachable = tmp_path / "config.json"
    unreachable.write_text(
        json.dumps(
            {
                "endpoint": "http://127.0.0.1:9",
                "tenant_id": "t",
                "service_principal_id": "sp",
                "service_principal_password": "secret-value",
            }
        )
    )
    result = runner.invoke(app, ["sp", "delete", "some-id", "--config", str(unreachable)])
    assert result.exit_code == ExitCode.SERVICE and "secret-value" not in result.output
    _one_error_line(result)


def test_recurrence_options_build_the_sdk_recurrence_in_any_case() -> None:
    built = build_recurrence(
        frequency="week",
        interval=2,
        start_time="2030-01-06T00:00:00",
        time_zone="W. Europe Standard Time",
        hours=None,
        minutes=None,
        week_days="monday, FRIDAY",
        time_of_day="18:30",
    )
    assert built is not None
    assert built._to_wire() == {
        "Frequency": "Week",
        "Interval": 2,
        "StartTime": "2030-01-06T00:00:00",
        "TimeZone": "W. Europe Standard Time",
        "Schedule": {"Hours": [18], "Minutes": [30], "WeekDays": ["Monday", "Friday"]},
    }
    none = build_recurrence(
        frequency=None,
        interval=None,
        start_time=None,
        time_zone=None,
        hours=None,
        minutes=None,
        week_days=None,
        time_of_day=None,
    )
    assert none is None


def test_a_recurrence_reads_as_a_sentence() -> None:
    assert describe_recurrence(ScheduleRecurrence("Minute", 15)) == "every 15 Minute"
    assert (
        describe_recurrence(ScheduleRecurrence("Day", 1, hours=[1, 13], minutes=[0, 30]))
        == "every 1 Day at 01:00, 01:30, 13:00, 13:30"
    )
    assert describe_recurrence(ScheduleRecurrence("Day", 1, hours=[2])) == "every 1 Day at hours 2"
    assert (
        describe_recurrence(
            ScheduleRecurrence("Week", 2, start_time="2030-01-01T09:00:00", week_days=["Monday"], time_of_day="08:05")
        )
        == "every 2 Week on Monday at 08:05 from 2030-01-01T09:00:00 (UTC)"
    )


def _entity(**extra: Any) -> dict[str, Any]:
    return {
        "Id": "5d0c6a3e-0000-4000-8000-000000000001",
        "Name": "nightly",
        "Description": None,
        "ScheduleType": "Recurrence",
        "Status": "Active",
        "PipelineId": "7f4e2a10-0000-4000-8000-000000000002",
        "PipelineEndpointId": None,
        "ExperimentName": "retrain",
        "ParameterAssignments": {"n": "3", "rate": 0.5},
        "ContinueRunOnStepFailure": None,
        "NextDue": "2030-01-02T01:30:00Z",
        "WatchSince": None,
        "LastFired": "2030-01-01T01:30:00Z",
        "LastRunId": "run-1",
        "LastError": None,
        **extra,
    }


def test_a_schedule_as_json_with_its_recurrence_or_its_watch() -> None:
    recurrence = {"Frequency": "Day", "Interval": 1, "StartTime": None, "TimeZone": TimeZone.UTC.value}
    timed = Schedule(None, _entity(Recurrence={**recurrence, "Schedule": {"Hours": [1], "Minutes": [30]}}))  # type: ignore[arg-type]
    assert (timed.experiment_name, timed.pipeline_parameters) == ("retrain", {"n": "3", "rate": "0.5"})
    body = schedule_json(timed)
    assert body["type"] == "Recurrence" and body["datastore"] is None
    assert body["recurrence"] == {
        "frequency": "Day",
        "interval": 1,
        "startTime": None,
        "timeZone": "UTC",
        "hours": [1],
        "minutes": [30],
        "weekDays": [],
    }
    assert (body["nextDue"], body["lastFired"], body["lastRunId"]) == (
        "2030-01-02T01:30:00Z",
        "2030-01-01T01:30:00Z",
        "run-1",
    )
    trigger = {"DataStoreName": "landing_store", "PollingInterval": 5, "PathOnDataStore": "in", "Recursive": True}
    watch = schedule_json(Schedule(None, _entity(ScheduleType="DataStore", DataStoreTriggerInfo=trigger)))  # type: ignore[arg-type]
    assert watch["type"] == "DataStore" and watch["recurrence"] is None
    assert watch["datastore"] == {
        "name": "landing_store",
        "pathOnDatastore": "in",
        "pollingInterval": 5,
        "dataPathParameterName": None,
        "recursive": True,
        "debounceSeconds": 0,
    }
    assert json.loads(json.dumps(watch)) == watch


def test_tag_filters_are_keys_or_key_value_pairs() -> None:
    assert _tag_filter(None) is None
    assert _tag_filter(["stage", "team=ml", "expr=a=b", "empty="]) == [
        "stage",
        ["team", "ml"],
        ["expr", "a=b"],
        ["empty", ""],
    ]
