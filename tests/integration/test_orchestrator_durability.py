"""Durability on Azurite: retry back-off as message visibility, heartbeats, cancel of a running
process, the watchdog's repairs and the takeover of a lost execution by its redelivered message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

import amlpipe
from amlpipe.host.testing import wait_for
from shared.errors import BadRequestError
from shared.graph.snapshot import build_snapshot
from shared.orchestration.actions import Event
from shared.orchestration.files import LOG_CONTAINER, MARKER, StepFiles, log_blob_name, output_prefix
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue, step_queue_name
from shared.orchestration.runner import Runner
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.state import Limits, RetryPolicy
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines._storage import utcnow
from shared.pipelines.graphs import CONTAINER as GRAPH_CONTAINER
from shared.pipelines.runs import RunStatus, StepStatus
from shared.pipelines.stores import Stores, run_queue_name
from shared.registry.compute import ComputeTargetStore
from shared.registry.datastores import DEFAULT_CONTAINER
from shared.storage import StorageClients

pytestmark = pytest.mark.integration

SLEEP = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
# Records its own pid and a grandchild's (which inherits its output pipes), then sleeps.
SPAWNS = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open({path!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
    "print('sleeping', flush=True)\n"
    "time.sleep(60)\n"
)
QUICK = "import os\nos.makedirs('out', exist_ok=True)\nprint('quick run')\n"
FAST = OrchestrationSettings(heartbeat=timedelta(seconds=0.2), kill_grace=timedelta(seconds=2))


def _runner(
    stores: Stores,
    clients: StorageClients,
    settings: OrchestrationSettings = FAST,
    clock: Callable[[], datetime] = utcnow,
) -> Runner:
    steps = StepQueue.of(clients.queues)
    return Runner(stores, ComputeTargetStore(clients.tables), steps, settings=settings, clock=clock)


def _worker(stores: Stores, clients: StorageClients, root: Path) -> StepWorker:
    return StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), settings=FAST, root=root)


def _submit(stores: Stores, tmp_path: Path, script: str) -> str:
    source = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    source.mkdir()
    (source / "step.py").write_text(script)
    snap = build_snapshot(source)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        assert put.status_code == 201
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    ref = {"sha256": snap.sha256, "size_bytes": snap.size_bytes}
    graph = {"steps": [{"name": "only", "kind": "python_script", "script_name": "step.py", "snapshot": ref}]}
    return submit.submit_graph(stores, {"ExperimentName": "durability-it", "Graph": graph}, None).id


def _visible_and_total(clients: StorageClients, queue: str) -> tuple[int, int]:
    client = clients.queues.get_queue_client(queue)
    return len(client.peek_messages(max_messages=32)), client.get_queue_properties().approximate_message_count


def test_a_retry_is_sent_invisible_for_its_backoff(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    settings = replace(FAST, retry=RetryPolicy(max_retries=1, backoff=timedelta(seconds=30)))
    runner = _runner(stores, clients, settings)
    run_id = _submit(stores, tmp_path, QUICK)
    assert runner.advance(RunMessage(run_id)) == [StepMessage(run_id, "only", 1)]
    step = stores.runs.get_step(run_id, "only")
    stores.runs.replace_step(replace(step, status=StepStatus.FAILED, retryable=True, reason="worker lost"))

    before = utcnow()
    assert runner.advance(RunMessage(run_id)) == []  # not through the output binding: it must wait
    retried = stores.runs.get_step(run_id, "only")
    assert retried.status is StepStatus.QUEUED and retried.attempt == 2
    assert retried.queued_at is not None and retried.queued_at >= before + timedelta(seconds=29)
    assert _visible_and_total(clients, step_queue_name()) == (0, 1)


def test_cancel_of_a_running_run_wakes_the_orchestrator(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    _runner(stores, clients).advance(RunMessage(run_id))
    queue = clients.queues.get_queue_client(run_queue_name())
    queue.clear_messages()
    assert stores.runs.cancel_run(run_id).cancel_requested
    (message,) = queue.peek_messages()
    assert RunMessage.parse(__import__("base64").b64decode(message.content)).run_id == run_id


def test_a_canceled_running_step_is_killed_and_recorded_canceled(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    runner = _runner(stores, clients)
    pids = tmp_path / "pids"
    run_id = _submit(stores, tmp_path, SPAWNS.format(path=str(pids)))
    (message,) = runner.advance(RunMessage(run_id))
    reports: list[RunMessage | None] = []
    thread = threading.Thread(target=lambda: reports.append(_worker(stores, clients, tmp_path).execute(message)))
    thread.start()
    first = wait_for(
        lambda: (s := stores.runs.get_step(run_id, "only")).status is StepStatus.RUNNING and s, what="Running"
    )
    wait_for(lambda: stores.runs.get_step(run_id, "only").heartbeat_at != first.heartbeat_at, what="a heartbeat")

    stores.runs.cancel_run(run_id)
    assert runner.advance(RunMessage(run_id)) == []  # CancelStep: cancel_requested_at on the Running step
    thread.join(timeout=20)
    assert not thread.is_alive() and reports and reports[0] is not None
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.CANCELED and step.reason == "The run was canceled by request."
    script, grandchild = (int(pid) for pid in pids.read_text().split())
    wait_for(lambda: _gone(script) and _gone(grandchild), timeout=5, what="the script and its grandchild gone")
    wait_for(lambda: _group_gone(script), timeout=5, what="its process group gone (reaped)")
    runner.advance(reports[0])
    assert stores.runs.get_run(run_id).status is RunStatus.CANCELED


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Killed, and its parent gone: a zombie until init reaps it, no longer running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _lost_limits(retries: int) -> OrchestrationSettings:
    limits = Limits(queued_timeout=timedelta(seconds=5), lease=timedelta(seconds=5))
    return replace(FAST, limits=limits, retry=RetryPolicy(max_retries=retries, backoff=timedelta(0)))


def test_the_watchdog_fails_a_step_that_no_worker_started(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    queued = utcnow()
    settings = _lost_limits(0)
    _runner(stores, clients, settings, clock=lambda: queued).advance(RunMessage(run_id))
    just_in_time = queued + settings.limits.queued_timeout - timedelta(seconds=1)
    assert _runner(stores, clients, settings, clock=lambda: just_in_time).patrol() == []  # nothing is late yet
    assert stores.runs.get_step(run_id, "only").status is StepStatus.QUEUED

    too_late = queued + settings.limits.queued_timeout + timedelta(seconds=1)
    later = _runner(stores, clients, settings, clock=lambda: too_late)
    assert later.patrol() == []
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.FAILED and step.reason is not None
    assert step.reason.startswith("Lost: queued since") and "no worker started it" in step.reason
    run = stores.runs.get_run(run_id)
    assert run.status is RunStatus.FAILED and (run.status_detail or "").startswith("Step 'only' failed")
    assert later.patrol() == []  # terminal runs are not looked at again


def test_the_watchdog_retries_a_silent_running_step_when_retries_are_allowed(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    _runner(stores, clients, _lost_limits(1)).advance(RunMessage(run_id))
    step = stores.runs.get_step(run_id, "only")
    now = utcnow()
    stores.runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=now, heartbeat_at=now))

    later = _runner(stores, clients, _lost_limits(1), clock=lambda: utcnow() + timedelta(minutes=1))
    assert later.patrol() == [StepMessage(run_id, "only", 2)]
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.QUEUED and step.attempt == 2
    assert step.reason is not None and step.reason.startswith("Attempt 1 was lost (no heartbeat since")


def test_a_redelivered_message_defers_while_the_heartbeat_is_fresh_and_takes_over_once_stale(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    step = stores.runs.get_step(run_id, "only")
    now = utcnow()
    step = stores.runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=now, heartbeat_at=now))
    worker = _worker(stores, clients, tmp_path)

    assert worker.execute(message) is None  # its worker may be alive: come back later
    assert _visible_and_total(clients, step_queue_name()) == (0, 1)
    assert stores.runs.get_step(run_id, "only").etag == step.etag

    stale = now - FAST.stale_after - timedelta(seconds=1)
    stores.runs.replace_step(replace(step, start_time=stale, heartbeat_at=stale))
    report = worker.execute(message)
    assert report == RunMessage(run_id, Event.STEP_FINISHED, "only", 1)
    done = stores.runs.get_step(run_id, "only")
    assert done.status is StepStatus.FINISHED and done.attempt == 1
    assert worker.execute(message) is None  # a further redelivery after it finished


@pytest.mark.parametrize("committed", [True, False])
def test_a_takeover_records_a_committed_execution_done_and_runs_an_uncommitted_one_again(
    stores: Stores, clients: StorageClients, tmp_path: Path, committed: bool
) -> None:
    # The script fails if it runs: a committed execution must be recognised, not run again.
    run_id = _submit(stores, tmp_path, "import sys\nsys.exit('ran again')\n")
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    stale = utcnow() - FAST.stale_after - timedelta(seconds=1)
    step = stores.runs.get_step(run_id, "only")
    stores.runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=stale, heartbeat_at=stale))
    files = StepFiles(clients.blobs, tmp_path / "cache")
    if committed:  # the lost worker had committed everything and died before recording Finished
        files.commit_execution(run_id, "only", 1)
    assert files.execution_committed(run_id, "only", 1) is committed
    assert not files.execution_committed(run_id, "only", 2)

    report = _worker(stores, clients, tmp_path).execute(message)
    done = stores.runs.get_step(run_id, "only")
    if committed:
        assert report == RunMessage(run_id, Event.STEP_FINISHED, "only", 1)
        assert done.status is StepStatus.FINISHED and done.attempt == 1
    else:
        assert report == RunMessage(run_id, Event.STEP_FAILED, "only", 1)
        assert done.status is StepStatus.FAILED and done.reason is not None and "ran again" in done.reason


@pytest.mark.parametrize("writes_artifacts", [True, False])
def test_a_finished_execution_that_committed_something_is_marked_committed(
    stores: Stores, clients: StorageClients, tmp_path: Path, writes_artifacts: bool
) -> None:
    # ./outputs is uploaded as artifacts; a script that leaves nothing has nothing to mark.
    script = "import os\nos.makedirs('outputs')\nopen('outputs/a.txt', 'w').write('a')\n" if writes_artifacts else QUICK
    run_id = _submit(stores, tmp_path, script)
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    assert _worker(stores, clients, tmp_path).execute(message) == RunMessage(run_id, Event.STEP_FINISHED, "only", 1)
    marked = StepFiles(clients.blobs, tmp_path / "cache").execution_committed(run_id, "only", 1)
    assert marked is writes_artifacts


def test_a_failed_execution_is_not_marked_committed(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    run_id = _submit(stores, tmp_path, "raise SystemExit(3)\n")
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    assert _worker(stores, clients, tmp_path).execute(message) == RunMessage(run_id, Event.STEP_FAILED, "only", 1)
    assert not StepFiles(clients.blobs, tmp_path / "cache").execution_committed(run_id, "only", 1)


def test_a_script_inherits_only_allow_listed_host_variables(
    stores: Stores, clients: StorageClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountKey=s3cret",
        "AMLPIPE_SECRET_SETTING": "s3cret",
        "IDENTITY_ENDPOINT": "http://localhost:42356/msi/token",
        "IDENTITY_HEADER": "s3cret",
        "AZURE_CLIENT_SECRET": "s3cret",
        "PYTHONPATH": str(tmp_path),
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    script = (
        "import os\nfor name in sorted(os.environ):\n    print('ENV', name)\nprint('PP', os.environ['PYTHONPATH'])\n"
    )
    run_id = _submit(stores, tmp_path, script)
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    assert _worker(stores, clients, tmp_path).execute(message) == RunMessage(run_id, Event.STEP_FINISHED, "only", 1)

    blob = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, "only", 1))
    names = {line[4:] for line in blob.download_blob().readall().decode().splitlines() if line.startswith("ENV ")}
    assert {"PATH", "LC_ALL", "AZUREML_RUN_ID", "AZUREML_PIPELINE_RUN_ID", "AMLPIPE_RUN_CONTEXT"} <= names
    assert not names & (set(secrets) - {"PYTHONPATH"})
    leaked = ("AzureWebJobs", "AMLPIPE_", "IDENTITY_", "AZURE_", "MSI_")
    assert not [n for n in names if n.startswith(leaked) and n != "AMLPIPE_RUN_CONTEXT"]
    # PYTHONPATH is amlpipe's own folder (for Run.get_context()), never the host's value.
    (pythonpath,) = [
        line[3:] for line in blob.download_blob().readall().decode().splitlines() if line.startswith("PP ")
    ]
    assert pythonpath == str(Path(amlpipe.__file__).resolve().parent.parent)


def test_a_malformed_graph_fails_the_step_without_a_retry(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, f"# {uuid.uuid4().hex}: a graph of its own\n{QUICK}")
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    graph_id = stores.runs.get_run(run_id).graph_id
    clients.blobs.get_blob_client(GRAPH_CONTAINER, f"{graph_id}.json").upload_blob(b"{not json", overwrite=True)

    assert _worker(stores, clients, tmp_path).execute(message) == RunMessage(run_id, Event.STEP_FAILED, "only", 1)
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.FAILED and not step.retryable


def test_an_output_upload_skips_symlinks(clients: StorageClients, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host file")
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "real.txt").write_text("output")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "linkdir").symlink_to(outside, target_is_directory=True)
    files = StepFiles(clients.blobs, tmp_path / "cache")
    run_id = f"run-{uuid.uuid4().hex}"

    assert files.upload_output(run_id, "data", folder, attempt=1) == ["sub/real.txt"]
    owner, marker = files.data.resolve(run_id, "data")
    assert owner == run_id and marker.files == ("sub/real.txt",)
    listed = clients.blobs.get_container_client(DEFAULT_CONTAINER).list_blobs(name_starts_with=f"dataset/{run_id}/")
    assert sorted(b.name for b in listed) == [output_prefix(run_id, "data") + n for n in (MARKER, "sub/real.txt")]


@pytest.mark.parametrize(
    "marker",
    [
        {"attempt": 1, "files": ["../escape.txt"]},
        {"attempt": 1, "files": ["/etc/passwd"]},
        {"attempt": 1, "files": ["a/../../b"]},
        {"attempt": 1, "files": ["C:\\\\x"]},
        {"attempt": 1, "files": "a.txt"},
        {"attempt": 1, "files": [1]},
        {"attempt": 1},
        ["a.txt"],
    ],
)
def test_a_malformed_completion_marker_is_refused(clients: StorageClients, tmp_path: Path, marker: object) -> None:
    run_id = f"run-{uuid.uuid4().hex}"
    container = clients.blobs.get_container_client(DEFAULT_CONTAINER)
    if not container.exists():
        container.create_container()
    container.upload_blob(output_prefix(run_id, "data") + MARKER, json.dumps(marker).encode(), overwrite=True)
    with pytest.raises(BadRequestError):
        StepFiles(clients.blobs, tmp_path / "cache").data.resolve(run_id, "data")


def test_the_worker_sweeps_work_folders_of_dead_processes(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    work = tmp_path / "root" / "work"
    stale = work / f"{int(dead.stdout)}.{uuid.uuid4().hex}"
    mine = work / f"{os.getpid()}.{uuid.uuid4().hex}"
    for folder in (stale, mine):
        (folder / "src").mkdir(parents=True)
    _worker(stores, clients, tmp_path / "root")
    assert not stale.exists() and mine.exists()


def test_a_worker_whose_execution_was_taken_over_stops_its_process_and_records_nothing(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    # The first delivery's script sleeps; the one that takes over finishes once the first is gone
    # (it fails if the first is still running after 20 s: two processes of one execution).
    runs = tmp_path / "runs"
    script = (
        "import os, sys, time\n"
        f"with open({str(runs)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        f"pids = open({str(runs)!r}).read().split()\n"
        "if len(pids) == 1:\n"
        "    time.sleep(60)\n"
        "deadline = time.time() + 20\n"
        "while time.time() < deadline:\n"
        "    try:\n"
        "        os.kill(int(pids[0]), 0)\n"
        "    except ProcessLookupError:\n"
        "        sys.exit(0)\n"
        "    time.sleep(0.05)\n"
        "sys.exit('the first delivery is still running')\n"
    )
    run_id = _submit(stores, tmp_path, script)
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    first_reports: list[RunMessage | None] = []
    first = threading.Thread(
        target=lambda: first_reports.append(_worker(stores, clients, tmp_path / "a").execute(message))
    )
    first.start()
    wait_for(lambda: runs.exists() and runs.read_text().strip(), what="the first script running")
    first_pid = int(runs.read_text().split()[0])

    # A redelivery that finds the heartbeat stale (its clock is a minute ahead) takes the execution over.
    ahead = StepWorker(
        stores,
        clients.blobs,
        StepQueue.of(clients.queues),
        settings=FAST,
        root=tmp_path / "b",
        clock=lambda: utcnow() + timedelta(minutes=1),
    )
    # Its takeover write may lose to a heartbeat of the first worker (then it drops): deliver again.
    report = wait_for(lambda: ahead.execute(message), what="the takeover")
    assert report == RunMessage(run_id, Event.STEP_FINISHED, "only", 1)

    first.join(timeout=20)
    assert not first.is_alive() and first_reports == [None]  # the loser records nothing
    wait_for(lambda: _gone(first_pid), timeout=5, what="the first delivery's script stopped")
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.FINISHED and step.attempt == 1


FLAKY = (
    "import os, sys\n"
    "marker = os.path.join({folder!r}, os.environ['AZUREML_PIPELINE_RUN_ID'])\n"
    "if not os.path.exists(marker):\n"
    "    open(marker, 'w').close()\n"
    "    sys.exit('flaky: first attempt fails')\n"
    "print('second attempt works')\n"
)


def test_a_step_with_retry_settings_runs_again_after_its_script_fails(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    source = tmp_path / "flaky-src"
    source.mkdir()
    (source / "step.py").write_text(FLAKY.format(folder=str(tmp_path)))
    snap = build_snapshot(source)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    step = {
        "name": "only",
        "kind": "python_script",
        "script_name": "step.py",
        "snapshot": {"sha256": snap.sha256, "size_bytes": snap.size_bytes},
        "retry_settings": {"max_retries": 2, "backoff_seconds": 0},
    }
    run_id = submit.submit_graph(stores, {"ExperimentName": "retry-it", "Graph": {"steps": [step]}}, None).id
    runner, worker = _runner(stores, clients), _worker(stores, clients, tmp_path)
    pending = [RunMessage(run_id)]
    executed = []
    while pending:
        for message in runner.advance(pending.pop(0)):
            executed.append(message.attempt)
            report = worker.execute(message)
            if report is not None:
                pending.append(report)
    assert executed == [1, 2]
    assert stores.runs.get_run(run_id).status is RunStatus.FINISHED
    done = stores.runs.get_step(run_id, "only")
    assert done.status is StepStatus.FINISHED and done.attempt == 2
    first_log = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, "only", 1))
    assert "flaky: first attempt fails" in first_log.download_blob().readall().decode()  # each attempt keeps its log


def test_a_redelivered_execution_of_a_canceled_step_is_recorded_canceled_not_run_again(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, "import sys\nsys.exit('must not run again')\n")
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    stale = utcnow() - FAST.stale_after - timedelta(seconds=1)
    step = stores.runs.get_step(run_id, "only")
    # Its worker died after the cancel request reached the row.
    stores.runs.replace_step(
        replace(step, status=StepStatus.RUNNING, start_time=stale, heartbeat_at=stale, cancel_requested_at=stale)
    )
    report = _worker(stores, clients, tmp_path).execute(message)
    assert report == RunMessage(run_id, Event.STEP_FAILED, "only", 1)
    done = stores.runs.get_step(run_id, "only")
    assert done.status is StepStatus.CANCELED and "must not run again" not in (done.reason or "")
