"""host.json and local.settings.json rules, connection names and %Setting% tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.settings import (
    AppSettings,
    apply_local_settings,
    load_host_json,
    load_local_settings,
    parse_timespan,
)
from shared.orchestration.settings import step_time_limit


def write(folder: Path, name: str, data: object) -> None:
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


def test_timespans() -> None:
    assert parse_timespan("00:00:02", what="x") == timedelta(seconds=2)
    assert parse_timespan("1.02:03:04", what="x") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert parse_timespan("00:00:00.5", what="x") == timedelta(milliseconds=500)
    with pytest.raises(HostConfigError, match="not a TimeSpan"):
        parse_timespan("5 minutes", what="x")


def test_host_json_defaults(tmp_path: Path) -> None:
    write(tmp_path, "host.json", {"version": "2.0"})
    config = load_host_json(tmp_path)
    assert config.route_prefix == "api"
    assert config.function_timeout == timedelta(minutes=30)
    assert config.queues.batch_size == 16 and config.queues.max_dequeue_count == 5
    assert config.queues.visibility_timeout == timedelta(0)
    assert config.queues.message_encoding == "base64"


def test_host_json_sections_are_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        "host.json",
        {
            "version": "2.0",
            "functionTimeout": "-1",
            "extensions": {
                "http": {"routePrefix": ""},
                "queues": {"batchSize": 4, "maxPollingInterval": 250, "messageEncoding": "none", "maxDequeueCount": 2},
            },
            "functions": ["a"],
        },
    )
    config = load_host_json(tmp_path)
    assert config.route_prefix == ""
    assert config.function_timeout is None
    assert config.queues.batch_size == 4 and config.queues.max_dequeue_count == 2
    assert config.queues.max_polling_interval == timedelta(milliseconds=250)
    assert config.queues.message_encoding == "none"
    assert config.functions_allow_list == ("a",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"version": "1.0"}, '"version" must be the string "2.0"'),
        ({"version": "2.0", "functionTimeout": "00:00:00"}, "at least 00:00:01"),
        ({"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}, "batchSize must be 1..32"),
        ({"version": "2.0", "extensions": {"queues": {"maxPollingInterval": 10}}}, "at least 100 ms"),
        ({"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}}, "'base64' or 'none'"),
        ({"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 0}}}, "at least 1"),
    ],
)
def test_bad_host_json_is_refused_with_the_key_named(tmp_path: Path, content: object, message: str) -> None:
    write(tmp_path, "host.json", content)
    with pytest.raises(HostConfigError, match=message):
        load_host_json(tmp_path)


def test_missing_host_json(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match="needs host.json"):
        load_host_json(tmp_path)


def test_local_settings_environment_wins_nulls_skipped_empty_set(tmp_path: Path) -> None:
    write(
        tmp_path,
        "local.settings.json",
        {
            "IsEncrypted": False,
            "Values": {"A": "from-file", "B": "from-file", "EMPTY": "", "NULLED": None},
            "Host": {"LocalHttpPort": 7123, "CORS": "http://a, http://b", "CORSCredentials": True},
            "ConnectionStrings": {"Db": "Server=x"},
        },
    )
    settings = load_local_settings(tmp_path)
    environ = {"A": "from-env"}
    apply_local_settings(settings, environ)
    assert environ == {"A": "from-env", "B": "from-file", "EMPTY": ""}
    assert settings.port == 7123
    assert settings.cors == ("http://a", "http://b") and settings.cors_credentials
    assert AppSettings(environ, settings.connection_strings).get("ConnectionStrings:Db") == "Server=x"


def test_local_settings_found_in_a_parent_folder(tmp_path: Path) -> None:
    write(tmp_path, "local.settings.json", {"Values": {"X": "1"}})
    app = tmp_path / "app"
    app.mkdir()
    assert load_local_settings(app).values == {"X": "1"}


def test_encrypted_local_settings_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "local.settings.json", {"IsEncrypted": True, "Values": {}})
    with pytest.raises(HostConfigError, match="encrypted"):
        load_local_settings(tmp_path)


def test_connection_names_resolve_prefixed_first_then_plain() -> None:
    settings = AppSettings(
        {"AzureWebJobsStorage": "main", "AzureWebJobsOther": "prefixed", "Other": "plain", "Third": "t"}
    )
    assert settings.connection_string(None) == "main"
    assert settings.connection_string("") == "main"
    assert settings.connection_string("AzureWebJobsStorage") == "main"
    assert settings.connection_string("Other") == "prefixed"
    assert settings.connection_string("Third") == "t"
    with_cs = AppSettings({"Third": "t"}, {"AzureWebJobsThird": "from-connection-strings"})
    assert with_cs.connection_string("Third") == "from-connection-strings"
    with pytest.raises(HostConfigError, match="'AzureWebJobsMissing' does not exist"):
        settings.connection_string("Missing")


def test_percent_tokens_resolve_from_app_settings() -> None:
    settings = AppSettings({"Q": "jobs", "ENV": "dev"})
    assert settings.resolve_tokens("%Q%-%ENV%", what="queue") == "jobs-dev"
    with pytest.raises(HostConfigError, match="app setting 'NOPE'"):
        settings.resolve_tokens("%NOPE%", what="queue")


def test_disabled_setting_with_dots_or_underscores() -> None:
    assert AppSettings({"AzureWebJobs.f.Disabled": "true"}).is_disabled("f")
    assert AppSettings({"AzureWebJobs_f_Disabled": "1"}).is_disabled("f")
    assert not AppSettings({"AzureWebJobs.f.Disabled": "false"}).is_disabled("f")


def test_numeric_settings_have_defaults_and_bounds() -> None:
    settings = AppSettings({"A": "2.5", "BAD": "soon", "LOW": "0"})
    assert settings.number("A", 1, minimum=1) == 2.5
    assert settings.number("UNSET", 7, minimum=1) == 7
    with pytest.raises(HostConfigError, match="App setting BAD must be a number of seconds"):
        settings.number("BAD", 1, minimum=1)
    with pytest.raises(HostConfigError, match="between 1 and 600 seconds"):
        settings.number("LOW", 1, minimum=1, maximum=600)


@pytest.mark.parametrize(
    ("timeout", "limit"),
    [("00:10:00", timedelta(minutes=9, seconds=30)), ("-1", None), ("01:00:00", timedelta(minutes=59, seconds=30))],
)
def test_a_step_may_run_the_apps_function_timeout_less_the_commit_margin(
    tmp_path: Path, timeout: str, limit: timedelta | None
) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0", "functionTimeout": timeout}))
    assert step_time_limit(host_json) == limit


def test_the_step_limit_is_unknown_without_host_json_and_refused_when_malformed(tmp_path: Path) -> None:
    assert step_time_limit(tmp_path / "host.json") is None
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "functionTimeout": "ten minutes"}))
    with pytest.raises(ValueError, match="not a TimeSpan"):
        step_time_limit(tmp_path / "host.json")
    assert step_time_limit() == timedelta(minutes=9, seconds=30)  # the app's own host.json
