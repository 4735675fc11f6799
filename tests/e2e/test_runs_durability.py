"""Runs survive crashes: each test starts its own host of the real app with short leases and limits.

* A host SIGKILLed mid-step: after the queue lease expires a fresh host receives the step message
  again, sees the step's heartbeat is stale, takes the execution over and runs it again — the run
  ends Finished with the step recorded once (one row, attempt 1, its output committed once).
* A step message no worker takes (the worker function disabled): the watchdog timer declares the
  execution lost and, with no retries configured, fails the step and the run with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.host.testing import HostProcess, wait_for
from shared.auth.bootstrap import bootstrap
from shared.orchestration.files import LOG_CONTAINER, MARKER, log_blob_name, output_prefix
from shared.pipelines.runs import RunStatus, StepStatus
from shared.pipelines.stores import Stores
from shared.storage import StorageClients
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SLOW_PRODUCER = """\
import os, sys, time
print("started", flush=True)
time.sleep(5)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write("done")
print("finished", flush=True)
"""


def _env(storage: str, **extra: str) -> dict[str, str]:
    unique = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": storage,
        "AzureFunctionsWebHost__hostid": f"e2e-durable-{unique}",
        "AMLPIPE_TABLE_PREFIX": f"c{unique}",
        "AMLPIPE_RUN_QUEUE": f"runs-{unique}",
        "AMLPIPE_STEP_QUEUE": f"steps-{unique}",
        "AMLPIPE_SCHEDULE_QUEUE": f"fires-{unique}",
        "AMLPIPE_DEFAULT_CONTAINER": f"blobs-{unique}",
        "AMLPIPE_TOKEN_SIGNING_KEY": uuid.uuid4().hex * 2,
        "AMLPIPE_HOST_QUEUE_LEASE_SECONDS": "3",
        "AMLPIPE_HEARTBEAT_SECONDS": "0.5",
        "AMLPIPE_WATCHDOG_SCHEDULE": "*/1 * * * * *",
        **extra,
    }


@contextmanager
def _host(env: dict[str, str]) -> Iterator[HostProcess]:
    host = HostProcess(ROOT, env=env, args=["--shutdown-grace", "2"]).start()
    try:
        yield host
    finally:
        host.stop(timeout=20)


def _submit(url: str, env: dict[str, str], config_path: Path, source: Path, script: str, outputs: bool) -> str:
    """Submit a one-step pipeline (optionally writing PipelineData ``result``) through the REST API."""
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core import Pipeline, PipelineData
    from amlpipe.pipeline.steps import PythonScriptStep

    bootstrap(config_path, endpoint=url, settings=env)
    ws = Workspace.from_config(config_path)
    (source / "step.py").write_text(script)
    data = PipelineData("result", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        name="work",
        script_name="step.py",
        source_directory=str(source),
        outputs=[data] if outputs else [],
        arguments=[data] if outputs else [],
    )
    run = Pipeline(ws, steps=[step]).submit("e2e-durability")
    return str(run.id)


@contextmanager
def _stores(env: dict[str, str]) -> Iterator[tuple[StorageClients, Stores]]:
    with StorageClients.from_settings(env) as clients:
        yield clients, Stores.from_clients(clients)


def test_a_host_killed_mid_step_is_recovered_by_redelivery_and_the_step_recorded_once(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watchdog's lease is long: recovery must come from the step message's redelivery.
    env = _env(storage, AMLPIPE_WATCHDOG_LEASE_SECONDS="120", AMLPIPE_WATCHDOG_QUEUED_SECONDS="120")
    for name in ("AMLPIPE_TABLE_PREFIX", "AMLPIPE_RUN_QUEUE", "AMLPIPE_STEP_QUEUE"):
        monkeypatch.setenv(name, env[name])
    source = tmp_path / "src"
    source.mkdir()
    first = HostProcess(ROOT, env=env, args=["--shutdown-grace", "2"]).start()
    try:
        run_id = _submit(first.url, env, tmp_path / ".amlpipe" / "config.json", source, SLOW_PRODUCER, True)
        with _stores(env) as (clients, stores):
            log_blob = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, "work", 1))

            def started() -> bool:
                step = stores.runs.get_step(run_id, "work")
                # The row turns Running before the worker creates the log; the log is never deleted.
                running = step.status is StepStatus.RUNNING and log_blob.exists()
                return running and b"started" in log_blob.download_blob().readall()

            wait_for(started, timeout=60, interval=0.1, what="the step to run")
    finally:
        first.kill()  # SIGKILL of the host and its step process: nothing cleaned up

    with _host({**env, "AzureFunctionsWebHost__hostid": f"{env['AzureFunctionsWebHost__hostid']}-2"}):
        with _stores(env) as (clients, stores):

            def ended() -> bool:
                return stores.runs.get_run(run_id).status.is_terminal

            wait_for(ended, timeout=60, interval=0.2, what="the run to end after the crash")
            run = stores.runs.get_run(run_id)
            assert run.status is RunStatus.FINISHED, (run.status, run.status_detail)
            (step,) = stores.runs.list_steps(run_id)
            assert step.status is StepStatus.FINISHED and step.attempt == 1 and step.reason is None
            text = log_blob_text(clients, run_id)
            assert text.count("started") == 2 and text.count("finished") == 1
            assert "the worker of this execution was lost" in text
            # PipelineData lands in the app's own default container (AMLPIPE_DEFAULT_CONTAINER).
            container = clients.blobs.get_container_client(env["AMLPIPE_DEFAULT_CONTAINER"])
            prefix = output_prefix(run_id, "result")
            assert sorted(b.name[len(prefix) :] for b in container.list_blobs(name_starts_with=prefix)) == [
                MARKER,
                "result.txt",
            ]
            marker: dict[str, Any] = json.loads(container.get_blob_client(prefix + MARKER).download_blob().readall())
            assert {k: marker[k] for k in ("attempt", "files")} == {"attempt": 1, "files": ["result.txt"]}
            assert set(marker["content"]) == {"result.txt"}  # each file's sha256, ETag and size (reuse)


def log_blob_text(clients: StorageClients, run_id: str) -> str:
    blob = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, "work", 1))
    return blob.download_blob().readall().decode("utf-8")


def test_the_watchdog_timer_fails_a_step_no_worker_takes_with_a_reason(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(
        storage,
        AMLPIPE_WATCHDOG_QUEUED_SECONDS="2",
        AMLPIPE_WATCHDOG_LEASE_SECONDS="2",
        **{"AzureWebJobs.execute_step.Disabled": "true"},
    )
    for name in ("AMLPIPE_TABLE_PREFIX", "AMLPIPE_RUN_QUEUE", "AMLPIPE_STEP_QUEUE"):
        monkeypatch.setenv(name, env[name])
    source = tmp_path / "src"
    source.mkdir()
    with _host(env) as host:
        run_id = _submit(host.url, env, tmp_path / ".amlpipe" / "config.json", source, "print('never')\n", False)
        response: dict[str, Any] = {}

        def ended() -> bool:
            got = requests.get(
                f"{host.url}/api/PipelineRuns/{run_id}", headers=_headers(host.url, tmp_path), timeout=30
            )
            assert got.status_code == 200, got.text
            response.update(got.json())
            return bool(response["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled"))

        wait_for(ended, timeout=60, interval=0.5, what="the watchdog to fail the lost step")
    assert response["Status"]["StatusCode"] == "Failed"
    assert response["Status"]["StatusDetail"].startswith("Step 'work' failed")
    with _stores(env) as (_, stores):
        (step,) = stores.runs.list_steps(run_id)
        assert step.status is StepStatus.FAILED and step.attempt == 1
        assert step.reason is not None and step.reason.startswith("Lost: queued since")


def _headers(url: str, tmp_path: Path) -> dict[str, str]:
    config = json.loads((tmp_path / ".amlpipe" / "config.json").read_text())
    token = requests.post(
        f"{url}/api/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config["service_principal_id"],
            "client_secret": config["service_principal_password"],
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
