"""Datastore watches on the real app: uploads with the real ``azure-storage-blob`` client start runs.

The app's default datastore is its own container (``AMLPIPE_DEFAULT_CONTAINER``), watched by the
app's blob trigger (scanned every 0.5 s here); registered datastores are polled by its timer (every
second here, ``AMLPIPE_DATASTORE_POLLER``). To show that an upload started *nothing*, a test waits
until the host ran the blob trigger for that very blob version (its log names the blob) and
succeeded, and only then counts runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from amlpipe.core.datastore import Datastore
from amlpipe.core.workspace import Workspace
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import Pipeline, PipelineParameter, PublishedPipeline, Schedule
from amlpipe.pipeline.core._run import PipelineRun
from amlpipe.pipeline.steps import PythonScriptStep
from shared.schedules.firing import FIRES_TABLE
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONSUME = """\
import pathlib, sys
path = pathlib.Path(sys.argv[-1])
print("landed:", path.read_text() if path.is_file() else sorted(p.name for p in path.iterdir()))
"""


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    folder = tmp_path_factory.mktemp("watches")
    args = ("--shutdown-grace", "5", "--blob-scan-interval", "0.5")
    with real_app(storage, folder, "watches", args=args, AMLPIPE_DATASTORE_POLLER="* * * * * *") as running:
        yield running


@pytest.fixture(scope="module")
def published(app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> PublishedPipeline:
    source = tmp_path_factory.mktemp("consume")
    (source / "consume.py").write_text(CONSUME)
    ws = app.owner()
    landed = PipelineParameter("landed", DataPath(datastore="workspaceblobstore", path_on_datastore="seed"))
    binding = (landed, DataPathComputeBinding(mode="download"))
    step = PythonScriptStep(
        name="consume", script_name="consume.py", source_directory=str(source), arguments=[binding], inputs=[binding]
    )
    return Pipeline(ws, steps=[step]).publish(name="watched", description="watch e2e", version="1")


class Blobs:
    """The app's storage through the real client."""

    def __init__(self, app: RealApp) -> None:
        self.app = app
        self.service = BlobServiceClient.from_connection_string(app.env["AzureWebJobsStorage"])
        self.default = self.container(app.env["AMLPIPE_DEFAULT_CONTAINER"])

    def container(self, name: str) -> ContainerClient:
        client = self.service.get_container_client(name)
        if not client.exists():
            client.create_container()
        return client

    def put(self, name: str, data: bytes, container: ContainerClient | None = None) -> None:
        (container or self.default).upload_blob(name, data, overwrite=True)

    def processed(self, name: str, times: int = 1) -> None:
        """Wait until the host ran the blob trigger ``times`` for blob ``name`` of the default
        container, each to success."""
        where = f"{self.app.env['AMLPIPE_DEFAULT_CONTAINER']}/{name}"
        pattern = re.compile(
            r"Executing 'Functions\.watch_default_datastore' \(Reason='New blob detected\(LogsAndContainerScan\): "
            + re.escape(where)
            + r"', Id=([0-9a-f-]+)\)"
        )

        def done() -> bool:
            log = self.app.host.log
            ids = pattern.findall(log)
            finished = [i for i in ids if f"Executed 'Functions.watch_default_datastore' (Succeeded, Id={i}" in log]
            return len(finished) >= times

        wait_for(done, timeout=30, what=f"the blob trigger for {where} x{times}")


def _data_path(app: RealApp, run: PipelineRun) -> dict[str, str]:
    """The run's ``landed`` DataPath as the REST API shows it."""
    response = requests.get(f"{app.url}/api/PipelineRuns/{run.id}", headers=app.headers(), timeout=30)
    assert response.status_code == 200, response.text
    value: dict[str, str] = response.json()["DataPathAssignments"]["landed"]
    return value


def _runs(ws: Workspace, schedule: Schedule) -> list[PipelineRun]:
    return Schedule.get(ws, schedule.id).get_pipeline_runs()


def _wait_runs(ws: Workspace, schedule: Schedule, count: int) -> list[PipelineRun]:
    def enough() -> list[PipelineRun] | None:
        runs = _runs(ws, schedule)
        return runs if len(runs) >= count else None

    found: list[PipelineRun] = wait_for(enough, timeout=30, interval=0.2, what=f"{count} run(s) of {schedule.name}")
    return found


def test_an_upload_starts_one_run_with_the_blob_as_its_datapath_and_only_new_bytes_start_another(
    app: RealApp, published: PublishedPipeline
) -> None:
    ws, blobs = app.owner(), Blobs(app)
    schedule = Schedule.create(
        ws, "on-training-data", published.id, "e2e-watch", datastore="workspaceblobstore",
        path_on_datastore="data/training", data_path_parameter_name="landed",
    )  # fmt: skip
    assert schedule.next_due is None and schedule.watch_since is not None  # reconciled from the next tick on

    blobs.put("data/training/day1.csv", b"a,b\n1,2\n")
    (run,) = _wait_runs(ws, schedule, 1)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert _data_path(app, run) == {
        "DataStoreName": "workspaceblobstore", "RelativePath": "data/training/day1.csv",
    }  # fmt: skip
    assert "landed: a,b" in app.step_log(run.id, "consume")

    blobs.put("data/training/day1.csv", b"a,b\n1,2\n")  # the same bytes again
    blobs.put("data/training/sub/ignored.csv", b"x")  # a sub-folder: azureml does not recurse
    blobs.put("data/elsewhere.csv", b"y")  # not watched
    blobs.processed("data/training/day1.csv", times=2)
    blobs.processed("data/training/sub/ignored.csv")
    blobs.processed("data/elsewhere.csv")
    assert len(_runs(ws, schedule)) == 1

    blobs.put("data/training/day1.csv", b"a,b\n3,4\n")  # changed bytes
    newest = _wait_runs(ws, schedule, 2)[0]
    seen = Schedule.get(ws, schedule.id)
    assert seen.last_run_id == newest.id and seen.last_fired is not None and seen.last_error is None
    assert seen.get_last_pipeline_run() is not None and seen.get_last_pipeline_run().id == newest.id  # type: ignore[union-attr]
    schedule.disable()


def test_a_disabled_watch_is_silent_and_enabling_it_does_not_replay_what_landed_meanwhile(
    app: RealApp, published: PublishedPipeline
) -> None:
    ws, blobs = app.owner(), Blobs(app)
    folder = f"quiet-{uuid.uuid4().hex[:8]}"
    schedule = Schedule.create(
        ws, "quiet", published.id, "e2e-watch", datastore="workspaceblobstore", path_on_datastore=folder,
        data_path_parameter_name="landed",
    )  # fmt: skip
    schedule.disable()
    assert Schedule.get(ws, schedule.id).watch_since is None
    blobs.put(f"{folder}/while-disabled.csv", b"1")
    blobs.processed(f"{folder}/while-disabled.csv")
    assert _runs(ws, schedule) == []
    # Blob times have whole seconds: a blob of the second the schedule is enabled in counts as after.
    landed = blobs.default.get_blob_client(f"{folder}/while-disabled.csv").get_blob_properties().last_modified
    wait_for(lambda: datetime.now(UTC).replace(microsecond=0) > landed, timeout=5)
    schedule.enable()
    blobs.put(f"{folder}/after.csv", b"2")
    (run,) = _wait_runs(ws, schedule, 1)
    assert _data_path(app, run)["RelativePath"] == (f"{folder}/after.csv")
    schedule.disable()


def test_a_burst_of_uploads_within_the_debounce_window_starts_one_run(
    app: RealApp, published: PublishedPipeline
) -> None:
    ws, blobs = app.owner(), Blobs(app)
    folder = f"burst-{uuid.uuid4().hex[:8]}"
    schedule = Schedule.create(
        ws, "burst", published.id, "e2e-watch", datastore="workspaceblobstore", path_on_datastore=folder,
        data_path_parameter_name="landed", debounce_seconds=2,
    )  # fmt: skip
    names = [f"{folder}/part-{i}.csv" for i in range(5)]
    for name in names:
        blobs.put(name, name.encode())
    for name in names:
        blobs.processed(name)
    (run,) = _wait_runs(ws, schedule, 1)
    # Every upload was seen before the run started, and the window that started it is closed.
    tables = TableServiceClient.from_connection_string(app.env["AzureWebJobsStorage"])
    window = tables.get_table_client(app.env["AMLPIPE_TABLE_PREFIX"] + FIRES_TABLE).get_entity(schedule.id, "window")
    assert window["Status"] == "Closed"
    assert _data_path(app, run)["RelativePath"] == folder
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert "landed: ['part-0.csv', 'part-1.csv', 'part-2.csv', 'part-3.csv', 'part-4.csv']" in (
        app.step_log(run.id, "consume")
    )
    assert len(_runs(ws, schedule)) == 1
    schedule.disable()


def test_an_upload_to_a_registered_datastore_is_found_by_the_poller(app: RealApp, published: PublishedPipeline) -> None:
    ws, blobs = app.owner(), Blobs(app)
    container = blobs.container(f"landing-{uuid.uuid4().hex[:8]}")
    store = Datastore.register_azure_blob_container(
        ws, "landing", container.container_name, "devstoreaccount1", account_key=AZURITE_KEY,
        endpoint=blobs.service.url.rstrip("/"),
    )  # fmt: skip
    schedule = Schedule.create(
        ws, "polled", published.id, "e2e-watch", datastore=store, path_on_datastore="in",
        data_path_parameter_name="landed", polling_interval=0,
    )  # fmt: skip
    blobs.put("in/new.csv", b"polled,1\n", container)
    (run,) = _wait_runs(ws, schedule, 1)
    assert _data_path(app, run) == {
        "DataStoreName": "landing", "RelativePath": "in/new.csv",
    }  # fmt: skip
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert "landed: polled,1" in app.step_log(run.id, "consume")
    polled = Schedule.get(ws, schedule.id)
    assert polled.next_due is not None and polled.last_run_id == run.id  # the next poll shows
    schedule.disable()


WRITE_BACK = """\
import pathlib, sys
from amlpipe.core.datastore import Datastore
from amlpipe.core.workspace import Workspace
ws = Workspace.from_config(sys.argv[1])
out = pathlib.Path("out")
out.mkdir()
(out / "from-run.csv").write_text("written by the run")
Datastore(ws, "workspaceblobstore").upload(str(out), target_path=sys.argv[2], overwrite=True)
"""


def test_a_run_that_writes_into_the_folder_its_schedule_watches_does_not_start_itself_again(
    app: RealApp, tmp_path: Path
) -> None:
    ws, blobs = app.owner(), Blobs(app)
    folder = f"loop-{uuid.uuid4().hex[:8]}"
    (tmp_path / "write_back.py").write_text(WRITE_BACK)
    step = PythonScriptStep(
        name="write_back", script_name="write_back.py", source_directory=str(tmp_path),
        arguments=[str(app.config_path), folder],
    )  # fmt: skip
    looping = Pipeline(ws, steps=[step]).publish(name="write-back", description="writes where it is watched")
    schedule = Schedule.create(
        ws, "loop", looping.id, "e2e-watch", datastore="workspaceblobstore", path_on_datastore=folder
    )
    blobs.put(f"{folder}/seed.csv", b"seed")
    (run,) = _wait_runs(ws, schedule, 1)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    written = blobs.default.get_blob_client(f"{folder}/from-run.csv").get_blob_properties()
    assert written.metadata == {"amlpipe_run_id": run.id}  # the SDK named the run that wrote it
    blobs.processed(f"{folder}/from-run.csv")
    assert len(_runs(ws, schedule)) == 1  # the run's own write started nothing
    schedule.disable()
