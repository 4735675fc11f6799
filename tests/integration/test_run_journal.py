"""The worker's run journal on Azurite: metrics drained idempotently, artifacts uploaded, models registered once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobClient

from shared.errors import NotFoundError
from shared.orchestration.journal import RunJournal, RunJournalError
from shared.pipelines._storage import utcnow
from shared.pipelines.artifacts import CONTAINER, artifact_prefix, artifact_urls, step_artifacts
from shared.pipelines.metrics import MetricRow, run_metrics, step_metrics
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.registry.model_spec import ModelMetadata
from shared.run_history import MetricRecord, ModelRegistration, encode
from shared.storage import StorageClients
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SCRIPT = """\
import os
from amlpipe.core import Run

run = Run.get_context(allow_offline=False)
run.log("acc", 0.5)
run.log("acc", 0.75)
run.log_row("Y over X", x=1, y=0.4)
run.parent.log("best", 0.75)
run.tag("stage", "dev")
run.upload_file("notes/readme.txt", "readme.txt")
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as f:
    f.write(b"pickled")
run.register_model("{model}", "outputs/model.pkl", tags={{"from": "script"}})
print(run.id, run.parent.id)
"""


@dataclass
class Execution:
    """The files of one delivery of a step execution, as the worker lays them out."""

    work: Path
    run_id: str
    step: str
    attempt: int

    @property
    def journal_path(self) -> Path:
        return self.work / ".amlpipe" / "journal.jsonl"

    @property
    def artifacts(self) -> Path:
        return self.work / ".amlpipe" / "artifacts"

    @property
    def src(self) -> Path:
        return self.work / "src"

    def write(self, *records: Any) -> None:
        with open(self.journal_path, "ab") as handle:
            for record in records:
                handle.write(encode(record))

    def journal(self, stores: Stores, *, resumed: bool = False) -> RunJournal:
        return RunJournal(
            stores,
            run_id=self.run_id,
            step=self.step,
            attempt=self.attempt,
            journal=self.journal_path,
            artifacts_dir=self.artifacts,
            resumed=resumed,
        )


def delivery(tmp_path: Path, run_id: str, step: str = "train", attempt: int = 1) -> Execution:
    work = tmp_path / uuid.uuid4().hex
    (work / ".amlpipe" / "artifacts").mkdir(parents=True)
    (work / ".amlpipe" / "journal.jsonl").touch()
    (work / "src").mkdir()
    return Execution(work, run_id, step, attempt)


def scalar(name: str, value: Any, target: str = "run", time: str = "2024-05-01T10:00:00.000Z") -> MetricRecord:
    return MetricRecord("scalar", name, value, target=target, time=time)


def new_run(stores: Stores, *steps: tuple[str, int]) -> str:
    run = PipelineRun(
        id=str(uuid.uuid4()), experiment_name="journal", graph_id="0" * 64, status=RunStatus.RUNNING,
        creation_time=utcnow(), parameters={}, data_paths={}, total_run_steps=len(steps),
        continue_on_step_failure=False,
    )  # fmt: skip
    rows = [StepRun(run.id, name, status=StepStatus.FINISHED, attempt=attempt) for name, attempt in steps]
    stores.runs.create_run(run, rows)
    return run.id


def read_blob(clients: StorageClients, name: str) -> bytes:
    return clients.blobs.get_blob_client(CONTAINER, name).download_blob().readall()


# -- metrics -----------------------------------------------------------------------------------


def test_what_a_script_records_reaches_the_stores(stores: Stores, tmp_path: Path) -> None:
    """The contract end to end: a context.json as the worker writes it, a real script using the SDK,
    then what the worker does with the journal."""
    run_id = new_run(stores, ("train", 1))
    execution = delivery(tmp_path, run_id)
    model = f"scripted{uuid.uuid4().hex[:8]}"
    (execution.src / "train.py").write_text(SCRIPT.format(model=model))
    (execution.src / "readme.txt").write_text("read me")
    context = execution.work / ".amlpipe" / "context.json"
    context.write_text(json.dumps({
        "schema": 1, "id": f"{run_id}:train:1", "pipeline_run_id": run_id, "step": "train", "attempt": 1,
        "experiment": "journal", "journal": str(execution.journal_path), "artifacts_dir": str(execution.artifacts),
        "inputs": {},
    }))  # fmt: skip
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "AMLPIPE_RUN_CONTEXT": str(context)}
    journal = RunJournal.from_context(stores, context)  # as the worker does: before the script starts
    done = subprocess.run([sys.executable, "train.py"], cwd=execution.src, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"{run_id}:train:1", run_id]
    assert (journal.run_id, journal.step, journal.attempt) == (run_id, "train", 1)
    result = journal.commit(execution.src)
    assert journal.skipped == 0 and journal.tags == {"stage": "dev"}
    body = step_metrics(stores.runs, stores.metrics, run_id, "train", None)
    assert body["metrics"] == {"acc": [0.5, 0.75], "Y over X": {"x": 1, "y": 0.4}}
    assert run_metrics(stores.runs, stores.metrics, run_id)["metrics"] == {"best": 0.75}
    assert result.artifacts == ("notes/readme.txt", "outputs/model.pkl")
    (registered,) = result.models
    assert (registered.name, registered.version, registered.metadata.run_id) == (model, 1, f"{run_id}:train:1")
    assert registered.metadata.tags == {"from": "script"}


def test_values_keep_their_types_and_read_back_per_step_and_per_run(stores: Stores, tmp_path: Path) -> None:
    run_id = new_run(stores, ("train", 1), ("score", 1))
    train = delivery(tmp_path, run_id)
    train.write(
        scalar("int", 3), scalar("float", 0.5), scalar("bool", True), scalar("str", "x"), scalar("int", 4),
        MetricRecord("list", "list", [1, "a", None]), MetricRecord("row", "row", {"x": 1, "y": 0.5}),
        MetricRecord("table", "table", {"a": [1, 2]}), scalar("best", 0.9, target="parent"),
    )  # fmt: skip
    train.journal(stores).finish()
    score = delivery(tmp_path, run_id, "score")
    # The pipeline run's own values are in the order they were logged, whichever step logged them.
    score.write(scalar("auc", 0.8), scalar("best", 0.95, target="parent", time="2024-05-01T11:00:00.000Z"))
    score.journal(stores).finish()
    rows = stores.metrics.list_metrics(run_id, step="train")
    assert [type(r.value) for r in rows[:4]] == [int, float, bool, str]
    body = step_metrics(stores.runs, stores.metrics, run_id, "train", None)
    assert body["runId"] == f"{run_id}:train:1" and body["attempt"] == 1
    assert body["metrics"] == {"int": [3, 4], "float": 0.5, "bool": True, "str": "x", "list": [1, "a", None],
                               "row": {"x": 1, "y": 0.5}, "table": {"a": [1, 2]}}  # fmt: skip
    whole = run_metrics(stores.runs, stores.metrics, run_id)
    assert whole["metrics"] == {"best": [0.9, 0.95]}
    assert [(s["name"], s["metrics"]) for s in whole["steps"]] == [("score", {"auc": 0.8}), ("train", body["metrics"])]


def test_draining_twice_and_a_second_delivery_write_the_same_rows(stores: Stores, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    first = delivery(tmp_path, run_id)
    first.write(scalar("acc", 0.5), scalar("acc", 0.6))
    journal = first.journal(stores)
    assert journal.drain() == 2 and journal.drain() == 0
    again = first.journal(stores)  # a redelivery reading the same journal from the start
    again.drain()
    rows = stores.metrics.list_metrics(run_id)
    assert [(r.seq, r.name, r.value) for r in rows] == [(0, "acc", 0.5), (1, "acc", 0.6)]


def test_a_takeover_overwrites_and_trims_what_the_lost_delivery_logged(stores: Stores, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    lost = delivery(tmp_path, run_id)
    lost.write(*(scalar("step", i) for i in range(5)))
    lost.journal(stores).drain()
    takeover = delivery(tmp_path, run_id)  # the script runs again from the start, in a new folder
    takeover.write(scalar("step", "a"), scalar("step", "b"))
    takeover.journal(stores, resumed=True).finish()
    assert [r.value for r in stores.metrics.list_metrics(run_id, step="train", attempt=1)] == ["a", "b"]


def test_the_current_attempt_wins_and_older_ones_can_be_asked_for(stores: Stores, tmp_path: Path) -> None:
    run_id = new_run(stores, ("train", 2))
    for attempt, value in ((1, "failed"), (2, "finished")):
        execution = delivery(tmp_path, run_id, attempt=attempt)
        execution.write(scalar("outcome", value))
        execution.journal(stores).finish()
    assert step_metrics(stores.runs, stores.metrics, run_id, "train", None)["metrics"] == {"outcome": "finished"}
    assert step_metrics(stores.runs, stores.metrics, run_id, "train", "1")["metrics"] == {"outcome": "failed"}
    with pytest.raises(NotFoundError) as caught:
        step_metrics(stores.runs, stores.metrics, run_id, "train", "3")
    assert caught.value.target == "attempt"
    with pytest.raises(NotFoundError):
        step_metrics(stores.runs, stores.metrics, run_id, "nope", None)
    with pytest.raises(NotFoundError):
        run_metrics(stores.runs, stores.metrics, str(uuid.uuid4()))


def test_a_reused_step_reports_the_execution_it_reused(stores: Stores, tmp_path: Path) -> None:
    original = new_run(stores, ("train", 2))
    execution = delivery(tmp_path, original, attempt=2)
    execution.write(scalar("acc", 0.9))
    (execution.src / "outputs").mkdir()
    (execution.src / "outputs" / "model.pkl").write_bytes(b"m")
    execution.journal(stores).commit(execution.src)
    run = PipelineRun(
        id=str(uuid.uuid4()), experiment_name="journal", graph_id="0" * 64, status=RunStatus.FINISHED,
        creation_time=utcnow(), parameters={}, data_paths={}, total_run_steps=1, continue_on_step_failure=False,
    )  # fmt: skip
    reused = StepRun(run.id, "train", status=StepStatus.FINISHED, is_reused=True,
                     reused_run_id=f"{original}:train:2", reused_pipeline_run_id=original)  # fmt: skip
    stores.runs.create_run(run, [reused])
    body = step_metrics(stores.runs, stores.metrics, run.id, "train", None)
    assert (body["runId"], body["isReused"], body["metrics"]) == (f"{original}:train:2", True, {"acc": 0.9})
    assert run_metrics(stores.runs, stores.metrics, run.id)["steps"][0]["metrics"] == {"acc": 0.9}
    listed = step_artifacts(stores.runs, stores.artifacts, run.id, "train", None)
    assert [a["name"] for a in listed["value"]] == ["outputs/model.pkl"]
    granted = artifact_urls(stores.runs, stores.artifacts, run.id, "train", None, {"names": ["outputs/model.pkl"]})
    assert granted["runId"] == f"{original}:train:2"


def test_many_values_go_in_several_transactions(stores: Stores, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    stores.metrics.upsert_metrics(run_id, [MetricRow("s", 1, i, "m", "scalar", i) for i in range(250)])
    big = "x" * 29_000
    stores.metrics.upsert_metrics(run_id, [MetricRow("t", 1, i, "big", "scalar", big) for i in range(120)])
    assert len(stores.metrics.list_metrics(run_id, step="s")) == 250
    assert len(stores.metrics.list_metrics(run_id, step="t", attempt=1)) == 120


# -- artifacts ---------------------------------------------------------------------------------


def test_commit_uploads_uploads_and_outputs_but_no_symlinks(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = new_run(stores, ("train", 1))
    execution = delivery(tmp_path, run_id)
    (execution.artifacts / "outputs").mkdir()
    (execution.artifacts / "outputs" / "plot.png").write_bytes(b"explicit")
    (execution.artifacts / "notes.txt").write_bytes(b"notes")
    outputs = execution.src / "outputs"
    (outputs / "sub").mkdir(parents=True)
    (outputs / "plot.png").write_bytes(b"from ./outputs")
    (outputs / "sub" / "data.csv").write_bytes(b"a,b\n")
    (tmp_path / "secret").write_bytes(b"host file")
    (outputs / "link").symlink_to(tmp_path / "secret")
    (outputs / "linkdir").symlink_to(tmp_path)
    result = execution.journal(stores).commit(execution.src)
    assert result.artifacts == ("notes.txt", "outputs/plot.png", "outputs/sub/data.csv") and result.models == ()
    prefix = artifact_prefix(run_id, "train", 1)
    assert read_blob(clients, prefix + "outputs/plot.png") == b"explicit"  # upload_file wins over ./outputs
    listed = step_artifacts(stores.runs, stores.artifacts, run_id, "train", None)
    assert [(a["name"], a["size"]) for a in listed["value"]] == [
        ("notes.txt", 5), ("outputs/plot.png", 8), ("outputs/sub/data.csv", 4)]  # fmt: skip
    granted = artifact_urls(stores.runs, stores.artifacts, run_id, "train", None, {"names": ["outputs/sub/data.csv"]})
    with BlobClient.from_blob_url(granted["value"][0]["url"]) as blob:
        assert blob.download_blob().readall() == b"a,b\n"
    with pytest.raises(NotFoundError) as caught:
        artifact_urls(stores.runs, stores.artifacts, run_id, "train", None, {"names": ["notes.txt", "missing"]})
    assert caught.value.target == "names[1]"


# -- models ------------------------------------------------------------------------------------


def test_a_redelivered_commit_registers_each_model_once(stores: Stores, tmp_path: Path) -> None:
    run_id = new_run(stores, ("train", 1))
    name = f"model{uuid.uuid4().hex[:8]}"
    deliveries = []
    for _ in range(2):
        execution = delivery(tmp_path, run_id)
        (execution.src / "outputs" / "model").mkdir(parents=True)
        (execution.src / "outputs" / "model.pkl").write_bytes(b"pickled")
        (execution.src / "outputs" / "model" / "weights.bin").write_bytes(b"w")
        execution.write(
            ModelRegistration(name, "outputs/model.pkl", {"Training context": "Pipeline"}, {"AUC": "0.9"}),
            ModelRegistration(name, "outputs/model", description="folder"),
        )
        deliveries.append(execution)
    first = deliveries[0].journal(stores).commit(deliveries[0].src)
    second = deliveries[1].journal(stores).commit(deliveries[1].src)
    assert [m.version for m in first.models] == [1, 2] and [m.version for m in second.models] == [1, 2]
    versions = stores.models.versions(name)
    assert [(m.version, m.path, m.file_count) for m in versions] == [(1, "model.pkl", 1), (2, "model", 1)]
    assert {m.metadata.run_id for m in versions} == {f"{run_id}:train:1"}
    assert versions[0].metadata.tags == {"Training context": "Pipeline"}
    assert versions[1].metadata.description == "folder"
    assert [f.path for f in stores.models.files(versions[1])] == ["model/weights.bin"]
    retry = delivery(tmp_path, run_id, attempt=2)  # a new attempt is a new execution: a new version
    (retry.src / "outputs").mkdir()
    (retry.src / "outputs" / "model.pkl").write_bytes(b"pickled")
    retry.write(ModelRegistration(name, "outputs/model.pkl"))
    assert [m.version for m in retry.journal(stores).commit(retry.src).models] == [3]


def test_concurrent_registrations_under_one_key_make_one_version(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"m")
    name = f"raced{uuid.uuid4().hex[:8]}"

    def register(_: int) -> int:
        record, _new = stores.models.register_files(
            name, [("model.pkl", tmp_path / "model.pkl")], ModelMetadata(), idempotency_key="run:step:1:0"
        )
        return record.version

    with ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(register, range(4)))
    assert made == [1, 1, 1, 1] and [m.version for m in stores.models.versions(name)] == [1]


def test_a_bad_model_path_fails_the_commit_before_anything_is_uploaded_or_registered(
    stores: Stores, tmp_path: Path
) -> None:
    run_id = new_run(stores, ("train", 1))
    name = f"bad{uuid.uuid4().hex[:8]}"
    execution = delivery(tmp_path, run_id)
    (execution.src / "outputs").mkdir()
    (execution.src / "outputs" / "model.pkl").write_bytes(b"m")
    execution.write(ModelRegistration(name, "outputs/model.pkl"), ModelRegistration(name, "outputs/missing.pkl"))
    with pytest.raises(RunJournalError, match="outputs/missing.pkl.*outputs/model.pkl") as caught:
        execution.journal(stores).commit(execution.src)
    assert caught.value.status == 400 and caught.value.target == "model_path"
    assert stores.models.versions(name) == []
    assert stores.artifacts.list_artifacts(run_id, "train", 1) == []


# -- what the script could put in the worker's way ---------------------------------------------


@pytest.mark.parametrize("replacement", ["symlink", "fifo", "device"])
def test_a_journal_replaced_by_a_link_fifo_or_device_is_not_read_through(
    stores: Stores, tmp_path: Path, replacement: str
) -> None:
    run_id = new_run(stores, ("train", 1))
    execution = delivery(tmp_path, run_id)
    execution.write(scalar("kept", 1))
    journal = execution.journal(stores)
    assert journal.poll() == 1
    execution.journal_path.unlink()
    if replacement == "symlink":
        (tmp_path / "elsewhere.jsonl").write_bytes(encode(scalar("smuggled", 2)))
        execution.journal_path.symlink_to(tmp_path / "elsewhere.jsonl")
    elif replacement == "fifo":
        os.mkfifo(execution.journal_path)  # opening it for reading would block the heartbeat
    else:
        execution.journal_path.symlink_to("/dev/zero")  # endless: finish() would never return
    assert journal.poll() == 0
    journal.finish()
    assert step_metrics(stores.runs, stores.metrics, run_id, "train", None)["metrics"] == {"kept": 1}


def test_an_artifacts_folder_replaced_by_a_link_uploads_nothing_through_it(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = new_run(stores, ("train", 1))
    execution = delivery(tmp_path, run_id)
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret.txt").write_bytes(b"host file")
    execution.artifacts.rmdir()
    execution.artifacts.symlink_to(tmp_path / "host", target_is_directory=True)
    assert execution.journal(stores).commit(execution.src).artifacts == ()
