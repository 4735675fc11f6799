"""The ``amlpipe`` CLI's registry commands as a user runs them (a subprocess) against the real app on
the local host: schedules (recurrence and datastore watch), datastores (upload/download round trips
on the default datastore and on an S3 bucket of moto's), datasets, compute targets, models and
service principals, with their --json output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amlpipe.core import Datastore
from amlpipe.core.model import Model
from amlpipe.pipeline.core import Pipeline, PipelineEndpoint, PipelineParameter, PublishedPipeline, Schedule
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import RealApp, real_app
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

NEXT_YEAR = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT00:00:00")


@dataclass
class Cli:
    """Runs ``python -m amlpipe.cli`` in a folder whose ``.amlpipe/config.json`` is the Owner's."""

    app: RealApp
    folder: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMLPIPE_")}
        return subprocess.run(
            [sys.executable, "-m", "amlpipe.cli", *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    with real_app(storage, tmp_path_factory.mktemp("cli-registry-app"), "cli-registry") as running:
        yield running


@pytest.fixture(scope="module")
def cli(app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    folder = tmp_path_factory.mktemp("cli-registry")
    (folder / ".amlpipe").mkdir()
    (folder / ".amlpipe" / "config.json").write_text(app.config_path.read_text())
    return Cli(app, folder)


@pytest.fixture(scope="module")
def pipeline_id(app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A published pipeline with a parameter ``n`` (published through the SDK: the CLI's publish is
    tested in test_cli_runs.py)."""
    source = tmp_path_factory.mktemp("cli-registry-src")
    (source / "train.py").write_text("print('train')\n")
    step = PythonScriptStep(
        "train.py", name="train", source_directory=str(source), arguments=["--n", PipelineParameter("n", 1)]
    )
    return str(Pipeline(app.owner(), steps=[step]).publish(name="cli-registry").id)


# -- schedules ---------------------------------------------------------------------------------------


def test_a_recurrence_schedule_is_created_listed_shown_disabled_and_enabled(cli: Cli, pipeline_id: str) -> None:
    created = cli.json(
        "schedule", "create", "nightly", pipeline_id, "-e", "cli-schedules", "--frequency", "day",
        "--time-of-day", "02:30", "--start-time", NEXT_YEAR, "--time-zone", "W. Europe Standard Time",
        "-p", "n=3", "--description", "every night",
    )  # fmt: skip
    assert (created["name"], created["type"], created["status"]) == ("nightly", "Recurrence", "Active")
    assert created["pipelineId"] == pipeline_id and created["experiment"] == "cli-schedules"
    assert created["parameters"] == {"n": "3"} and created["description"] == "every night"
    assert created["recurrence"] == {
        "frequency": "Day", "interval": 1, "startTime": NEXT_YEAR, "timeZone": "W. Europe Standard Time",
        "hours": [2], "minutes": [30], "weekDays": [],
    }  # fmt: skip
    assert created["nextDue"] is not None and created["lastFired"] is None and created["datastore"] is None
    sid = created["id"]

    shown = cli("schedule", "show", sid)
    assert shown.returncode == 0, shown.stderr
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in shown.stdout.splitlines())}
    assert fields["recurrence"] == f"every 1 Day at 02:30 from {NEXT_YEAR} (W. Europe Standard Time)"
    assert (fields["next due"], fields["last fired"], fields["parameters"]) == (created["nextDue"], "never", "n=3")

    disabled = cli.json("schedule", "disable", sid)
    assert disabled["status"] == "Disabled" and disabled["nextDue"] is None
    assert sid not in [s["id"] for s in cli.json("schedule", "list")]  # Active ones only
    assert [s["id"] for s in cli.json("schedule", "list", "--pipeline-id", pipeline_id)] == [sid]  # every one
    enabled = cli("schedule", "enable", sid)
    assert enabled.returncode == 0 and enabled.stdout.strip() == f"Schedule {sid} (nightly) is Active.", enabled.stderr
    assert Schedule.get(cli.app.owner(), sid).next_due == datetime.fromisoformat(created["nextDue"])


def test_a_datastore_watch_schedule_of_an_endpoint(cli: Cli, pipeline_id: str) -> None:
    endpoint = f"cli-watch-{uuid.uuid4().hex[:8]}"
    ws = cli.app.owner()
    made = PipelineEndpoint.publish(ws, endpoint, "", PublishedPipeline.get(ws, pipeline_id))
    created = cli.json(
        "schedule", "create", "on-data", endpoint, "-e", "cli-watch", "--datastore", "workspaceblobstore",
        "--path-on-datastore", "cli-landing", "--polling-interval", "10", "--recursive", "--debounce-seconds", "5",
    )  # fmt: skip
    assert created["type"] == "DataStore" and created["recurrence"] is None
    assert created["pipelineEndpointId"] == made.id and created["pipelineId"] is None
    assert created["datastore"] == {
        "name": "workspaceblobstore", "pathOnDatastore": "cli-landing", "pollingInterval": 10,
        "dataPathParameterName": None, "recursive": True, "debounceSeconds": 5,
    }  # fmt: skip
    assert [s["id"] for s in cli.json("schedule", "list", "--endpoint", endpoint)] == [created["id"]]
    shown = cli("schedule", "show", created["id"])
    assert "workspaceblobstore:cli-landing (poll every 10 min, recursive, debounce 5s)" in shown.stdout


def test_schedule_errors_exit_2_or_3_with_one_line(cli: Cli, pipeline_id: str) -> None:
    refused = cli("schedule", "create", "bad", pipeline_id, "-e", "x", "--frequency", "Hour", "--week-days", "Monday")
    assert refused.returncode == 2 and "Can only specify week days if frequency is Week." in _one_error_line(refused)
    undeclared = cli(
        "schedule", "create", "bad", pipeline_id, "-e", "x", "--frequency", "Hour", "--start-time", NEXT_YEAR,
        "-p", "nope=1",
    )  # fmt: skip
    assert undeclared.returncode == 2 and _one_error_line(undeclared).startswith("error: 400 ")
    missing = cli("schedule", "show", str(uuid.uuid4()))
    assert missing.returncode == 3 and _one_error_line(missing).startswith("error: 404 ")


# -- datastores --------------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _source(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "sub" / "b.csv").write_text("x,y\n3,4\n")
    return folder


def test_upload_then_download_round_trip_on_the_default_datastore(cli: Cli, tmp_path: Path) -> None:
    source = _source(tmp_path / "src")
    done = cli("datastore", "upload", "workspaceblobstore", str(source), "--target-path", "cli/up")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Uploaded 2 of 2 files from {source} to workspaceblobstore:/cli/up.\n"
    assert "Uploading" in done.stderr  # the SDK's progress, kept off stdout
    again = cli.json("datastore", "upload", "workspaceblobstore", str(source), "--target-path", "cli/up")
    assert again == {"datastore": "workspaceblobstore", "targetPath": "cli/up", "files": 2, "uploaded": 0, "skipped": 2}

    out = tmp_path / "out"
    fetched = cli.json("datastore", "download", "workspaceblobstore", str(out), "--prefix", "cli/up")
    assert fetched == {"datastore": "workspaceblobstore", "prefix": "cli/up", "targetDir": str(out), "downloaded": 2}
    assert _tree(out / "cli" / "up") == _tree(source)
    (out / "cli" / "up" / "a.csv").write_text("local change")
    replaced = cli("datastore", "download", "workspaceblobstore", str(out), "--prefix", "cli/up", "--overwrite")
    assert replaced.stdout == f"Downloaded 2 files from workspaceblobstore:/cli/up into {out}.\n", replaced.stderr
    assert _tree(out / "cli" / "up") == _tree(source)

    escape = cli("datastore", "upload", "workspaceblobstore", str(source), "--target-path", "../x")
    assert escape.returncode == 2 and "'..' may not be used" in _one_error_line(escape)


def test_upload_then_download_round_trip_on_an_s3_datastore(cli: Cli, moto_s3: MotoS3, tmp_path: Path) -> None:
    bucket = moto_s3.create_bucket("cli")
    Datastore.register_s3(
        cli.app.owner(), "cli_s3", bucket, endpoint_url=moto_s3.endpoint_url,
        access_key_id=TEST_KEY_ID, secret_access_key=TEST_SECRET,
    )  # fmt: skip
    listed = {d["name"]: d for d in cli.json("datastore", "list")}
    assert listed["workspaceblobstore"]["isDefault"] is True and listed["workspaceblobstore"]["type"] == "AzureBlob"
    assert listed["cli_s3"] == {
        "name": "cli_s3", "type": "AmazonS3", "isDefault": False, "credentialType": "AccessKey",
        "bucketName": bucket, "endpointUrl": moto_s3.endpoint_url, "region": None,
    }  # fmt: skip
    plain = cli("datastore", "list")
    assert any(line.split()[:3] == ["cli_s3", "AmazonS3", "AccessKey"] for line in plain.stdout.splitlines())
    assert TEST_SECRET not in plain.stdout + json.dumps(listed)

    source = _source(tmp_path / "src")
    uploaded = cli.json("datastore", "upload", "cli_s3", str(source), "--target-path", "raw")
    assert (uploaded["files"], uploaded["uploaded"]) == (2, 2)
    client = moto_s3.client()
    try:
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    finally:
        client.close()
    assert keys == ["raw/a.csv", "raw/sub/b.csv"]
    assert cli.json("datastore", "download", "cli_s3", str(tmp_path / "out"))["downloaded"] == 2
    assert _tree(tmp_path / "out" / "raw") == _tree(source)


# -- datasets, compute, models -------------------------------------------------------------------------


def test_dataset_register_new_versions_and_list(cli: Cli, tmp_path: Path) -> None:
    Datastore.get_default(cli.app.owner()).upload(_source(tmp_path / "src"), target_path="cli/ds", show_progress=False)
    args = ("dataset", "register", "--name", "cli_ds", "--datastore", "workspaceblobstore")
    first = cli.json(*args, "--path", "cli/ds/*.csv", "--kind", "Tabular", "--description", "rows")
    assert (first["name"], first["version"], first["kind"], first["description"]) == ("cli_ds", 1, "Tabular", "rows")
    assert first["paths"] == [{"datastore": "workspaceblobstore", "path": "cli/ds/*.csv"}]
    clash = cli(*args, "--path", "cli/ds/a.csv", "--path", "cli/ds/sub/b.csv")  # another definition: a new version
    assert clash.returncode == 2, clash.stderr
    _one_error_line(clash)
    second = cli.json(*args, "--path", "cli/ds/a.csv", "--path", "cli/ds/sub/b.csv", "--create-new-version")
    assert second["version"] == 2 and second["kind"] == "File" and len(second["paths"]) == 2
    plain = cli("dataset", "list")
    assert plain.stdout.splitlines()[0].split() == ["NAME", "VERSION", "KIND", "PATHS", "DESCRIPTION"]
    assert any(line.split()[:3] == ["cli_ds", "2", "File"] for line in plain.stdout.splitlines())


def test_compute_create_and_list(cli: Cli) -> None:
    created = cli.json("compute", "create", "cli-pool", "--max-nodes", "3")
    assert (created["name"], created["type"], created["minNodes"], created["maxNodes"]) == (
        "cli-pool",
        "AmlCompute",
        0,
        3,
    )
    again = cli("compute", "create", "cli-pool", "--max-nodes", "3")  # the same settings: no error
    assert again.returncode == 0 and "max nodes: 3" in again.stdout, again.stderr
    other = cli("compute", "create", "cli-pool", "--max-nodes", "5")
    assert other.returncode == 2 and "409 Conflict: Compute target 'cli-pool' already exists" in _one_error_line(other)
    assert {c["name"]: c["maxNodes"] for c in cli.json("compute", "list")}["cli-pool"] == 3


def test_model_list_and_download(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"weights v1")
    ws = cli.app.owner()
    Model.register(ws, str(tmp_path / "model.pkl"), "cli_model", tags={"stage": "dev"})
    (tmp_path / "model.pkl").write_bytes(b"weights v2")
    Model.register(ws, str(tmp_path / "model.pkl"), "cli_model", description="second")

    versions = cli.json("model", "list", "--name", "cli_model")
    assert [(m["id"], m["version"], m["tags"]) for m in versions] == [
        ("cli_model:2", 2, {}), ("cli_model:1", 1, {"stage": "dev"}),
    ]  # fmt: skip
    out = tmp_path / "out"
    latest = cli("model", "download", "cli_model", str(out))
    assert latest.returncode == 0, latest.stderr
    assert Path(latest.stdout.strip()).read_bytes() == b"weights v2"
    refused = cli("model", "download", "cli_model", str(out), "--version", "1")
    assert refused.returncode == 2 and "pass --exist-ok" in _one_error_line(refused)  # the option, not the keyword
    first = cli.json("model", "download", "cli_model", str(out), "--version", "1", "--exist-ok")
    assert first["id"] == "cli_model:1" and Path(first["path"]).read_bytes() == b"weights v1"
    missing = cli("model", "download", "no_such_model", str(out))
    assert missing.returncode == 3, missing.stderr


# -- service principals ------------------------------------------------------------------------------


def test_sp_create_list_delete_with_json_and_exit_codes(cli: Cli, tmp_path: Path) -> None:
    created = cli("sp", "create", "--role", "Reader", "--name", "cli-reader", "--json")
    assert created.returncode == 0 and "shown only now" in created.stderr, created.stderr
    body = json.loads(created.stdout)  # the secret is shown this once
    assert body["role"] == "Reader" and body["displayName"] == "cli-reader"
    assert cli.app.token(body["id"], body["secret"])
    written = tmp_path / "operator.json"
    made = cli.json("sp", "create", "--role", "Operator", "--write-config", str(written))
    assert "secret" not in made and made["config"] == str(written)
    assert json.loads(written.read_text())["service_principal_id"] == made["id"]

    listed = cli.json("sp", "list")
    assert {body["id"], made["id"]} <= {p["id"] for p in listed} and all("secret" not in p for p in listed)
    denied = cli("sp", "list", "--config", str(written))  # an Operator may not manage principals
    assert denied.returncode == 4 and "403" in _one_error_line(denied)
    bad_role = cli("sp", "create", "--role", "Admin")
    assert bad_role.returncode == 2 and "Admin" in _one_error_line(bad_role)
    assert cli.json("sp", "delete", body["id"]) == {"id": body["id"], "deleted": True}
    gone = cli("sp", "delete", body["id"])  # a mistyped or already deleted id is not a success
    assert gone.returncode == 3 and "404" in _one_error_line(gone)


def test_sp_create_never_writes_over_a_config_and_a_refusal_creates_no_principal(cli: Cli, tmp_path: Path) -> None:
    before = {p["id"] for p in cli.json("sp", "list")}
    existing = tmp_path / "existing.json"
    existing.write_text("{}")
    in_use = cli.folder / ".amlpipe" / "config.json"
    for target, expected in (
        (existing, "exists; pass --force to replace it"),
        (in_use, "is the config in use"),
        (tmp_path, "is a folder"),
    ):
        refused = cli("sp", "create", "--role", "Reader", "--write-config", str(target))
        assert refused.returncode == 2 and expected in _one_error_line(refused)
        assert refused.stdout == ""
    assert existing.read_text() == "{}" and {p["id"] for p in cli.json("sp", "list")} == before
    replaced = cli.json("sp", "create", "--role", "Reader", "--write-config", str(existing), "--force")
    assert json.loads(existing.read_text())["service_principal_id"] == replaced["id"]
    assert replaced["config"] == str(existing.resolve())
