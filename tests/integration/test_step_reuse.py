"""Step reuse on Azurite: the orchestrator reuses earlier executions, explains every miss, and stays
consistent under duplicate messages. The worker really runs the scripts."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.graph.model import PipelineDataInput
from shared.orchestration.files import (
    LOG_CONTAINER,
    MARKER,
    WRITER_METADATA,
    PipelineDataStore,
    log_blob_name,
    output_prefix,
)
from shared.orchestration.inputs import DataAccess, download_input, list_input
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue, step_queue_name
from shared.orchestration.reuse import TABLE as REUSE_TABLE
from shared.orchestration.reuse import Reuser, unknown_input_identity
from shared.orchestration.runner import Runner
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_CONTAINER, DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients, table_name
from tests.integration.conftest import upload_snapshot

pytestmark = pytest.mark.integration

PRODUCE = """\
import argparse, os, uuid
p = argparse.ArgumentParser()
p.add_argument("--out")
p.add_argument("--text", default="payload")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
text = uuid.uuid4().hex if a.text == "random" else a.text
open(os.path.join(a.out, "data.txt"), "w").write(text)
print("produced", text)
"""

CONSUME = """\
import argparse, os, sys
p = argparse.ArgumentParser()
p.add_argument("--in", dest="src")
p.add_argument("--tag", default="")
a = p.parse_args()
print("read:", open(os.path.join(a.src, "data.txt")).read(), a.tag)
"""


class Pipe:
    """A runner with reuse and a worker on this test's storage; ``drive`` runs a run to its end."""

    def __init__(self, stores: Stores, clients: StorageClients, root: Path, *, reuser: Reuser | None = None) -> None:
        self.stores = stores
        self.clients = clients
        self.root = root
        self.registry = WorkspaceRegistry(clients.tables, clients.blobs)
        self.reuser = reuser or Reuser.of(clients, registry=self.registry)
        self.runner = self.new_runner()
        self.worker = StepWorker(
            stores, clients.blobs, StepQueue.of(clients.queues), registry=self.registry, root=root / "worker"
        )
        self.executed: list[StepMessage] = []

    def new_runner(self) -> Runner:
        return Runner(
            self.stores, ComputeTargetStore(self.clients.tables), StepQueue.of(self.clients.queues), reuse=self.reuser
        )

    def snapshot(self, files: Mapping[str, str]) -> dict[str, Any]:
        return upload_snapshot(self.stores, files, self.root / f"src-{uuid.uuid4().hex[:8]}")

    def submit(self, graph: dict[str, Any], **body: Any) -> str:
        request = {"ExperimentName": "reuse-it", "Graph": graph, **body}
        return submit.submit_graph(self.stores, request, None).id

    def drive(self, run_id: str) -> PipelineRun:
        pending = [RunMessage(run_id)]
        while pending:
            for message in self.runner.advance(pending.pop(0)):
                self.executed.append(message)
                report = self.worker.execute(message)
                if report is not None:
                    pending.append(report)
        return self.stores.runs.get_run(run_id)

    def run(self, graph: dict[str, Any], **body: Any) -> tuple[str, dict[str, StepRun]]:
        run_id = self.submit(graph, **body)
        run = self.drive(run_id)
        assert run.status is RunStatus.FINISHED, (run.status_detail, self.steps(run_id))
        return run_id, self.steps(run_id)

    def steps(self, run_id: str) -> dict[str, StepRun]:
        return {s.name: s for s in self.stores.runs.list_steps(run_id)}

    def log(self, run_id: str, step: str, attempt: int = 1) -> str:
        blob = self.clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, step, attempt))
        return blob.download_blob().readall().decode("utf-8")


@pytest.fixture
def pipe(stores: Stores, clients: StorageClients, tmp_path: Path) -> Pipe:
    return Pipe(stores, clients, tmp_path)


def _two_steps(pipe: Pipe, **consume: Any) -> dict[str, Any]:
    """produce (writes PipelineData ``handover``) -> consume (reads it); ``consume`` overrides fields."""
    produce_src = pipe.snapshot({"produce.py": PRODUCE})
    consume_src = pipe.snapshot({"consume.py": CONSUME})
    produce_args = consume.pop("produce_arguments", [])
    produce_fields = consume.pop("produce", {})
    return {
        "parameters": consume.pop("parameters", []),
        "steps": [
            {
                "name": "produce",
                "kind": "python_script",
                "script_name": "produce.py",
                "snapshot": produce_src,
                "outputs": [{"name": "handover"}],
                "arguments": [{"kind": "literal", "value": "--out"}, {"kind": "data", "name": "handover"}]
                + produce_args,
                **produce_fields,
            },
            {
                "name": "consume",
                "kind": "python_script",
                "script_name": "consume.py",
                "snapshot": consume_src,
                "inputs": [{"source": "pipeline_data", "name": "handover", "pipeline_data": "handover"}],
                "arguments": [{"kind": "literal", "value": "--in"}, {"kind": "data", "name": "handover"}],
                **consume,
            },
        ],
    }


def _queued_step_messages(clients: StorageClients) -> list[StepMessage]:
    """Step messages sent through the SDK (the test drives the rest by hand); none if never created."""
    try:
        peeked = clients.queues.get_queue_client(step_queue_name()).peek_messages(max_messages=32)
    except ResourceNotFoundError:
        return []
    return [StepMessage.parse(base64.b64decode(m.content)) for m in peeked]


def test_an_identical_resubmit_reuses_every_step_in_one_message_without_compute(pipe: Pipe) -> None:
    graph = _two_steps(pipe)
    first, ran = pipe.run(graph)
    assert {s.name: s.is_reused for s in ran.values()} == {"produce": False, "consume": False}
    assert ran["produce"].reuse_reason == "Not reused: no earlier successful run of step 'produce' to reuse."
    assert ran["produce"].reuse_key is not None and ran["produce"].reuse_parts is not None

    second = pipe.submit(graph)
    assert pipe.runner.advance(RunMessage(second)) == []  # one message resolves the whole run
    run = pipe.stores.runs.get_run(second)
    assert run.status is RunStatus.FINISHED and run.status_detail == "All 2 steps finished (2 reused)."
    steps = pipe.steps(second)
    for name in ("produce", "consume"):
        step = steps[name]
        assert step.status is StepStatus.FINISHED and step.is_reused and step.attempt == 0
        assert step.reused_pipeline_run_id == first and step.reused_run_id == f"{first}:{name}:1"
        assert step.reuse_reason == f"Reused step {name!r} of run {first} (attempt 1): its fingerprint is the same."
        assert step.reuse_key == ran[name].reuse_key
    assert _queued_step_messages(pipe.clients) == []
    # The reused output is a redirect to the first run's files.
    data = PipelineDataStore(pipe.clients.blobs)
    owner, marker = data.resolve(second, "handover")
    assert owner == first and marker.files == ("data.txt",)
    # Every blob names the run it was written for: the first run's file and marker, the redirect's own run.
    written = {
        name: pipe.clients.blobs.get_blob_client(DEFAULT_CONTAINER, name).get_blob_properties().metadata
        for name in (
            output_prefix(first, "handover") + "data.txt",
            output_prefix(first, "handover") + MARKER,
            output_prefix(second, "handover") + MARKER,
        )
    }
    assert list(written.values()) == [{WRITER_METADATA: first}, {WRITER_METADATA: first}, {WRITER_METADATA: second}]
    # ... which a consumer of the second run reads as its own input.
    item = PipelineDataInput(name="handover", pipeline_data="handover")
    with DataAccess(pipe.registry, pipe.clients.blobs) as access:
        listing = list_input(item, access=access, run_id=second, datapaths={})
        local = download_input(listing, pipe.root / "read-back", access=access)
    assert [p.read_text() for p in local.files] == ["payload"]


def test_a_reused_producer_feeds_a_consumer_that_runs_against_its_earlier_output(pipe: Pipe) -> None:
    first, _ = pipe.run(_two_steps(pipe))
    changed = _two_steps(
        pipe,
        arguments=[
            {"kind": "literal", "value": "--in"},
            {"kind": "data", "name": "handover"},
            {"kind": "literal", "value": "--tag"},
            {"kind": "literal", "value": "v2"},
        ],
    )
    second, steps = pipe.run(changed)
    assert steps["produce"].is_reused and steps["produce"].reused_pipeline_run_id == first
    assert not steps["consume"].is_reused
    assert steps["consume"].reuse_reason == f"Not reused: the arguments changed since run {first}."
    assert "read: payload v2" in pipe.log(second, "consume")


def _variant(name: str, pipe: Pipe) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(baseline graph, changed graph, submit body of the changed run) for one kind of change."""
    greeting = {"name": "greeting", "type": "string", "default_value": "hello"}
    args = [{"kind": "literal", "value": "--in"}, {"kind": "data", "name": "handover"}]
    if name == "snapshot":
        base = _two_steps(pipe)
        changed = _two_steps(pipe)
        changed["steps"][1]["snapshot"] = pipe.snapshot({"consume.py": CONSUME + "# edited\n"})
        return base, changed, {}
    if name == "arguments":
        return (
            _two_steps(pipe),
            _two_steps(
                pipe, arguments=[*args, {"kind": "literal", "value": "--tag"}, {"kind": "literal", "value": "x"}]
            ),
            {},
        )
    if name == "parameter":
        tagged = [*args, {"kind": "literal", "value": "--tag"}, {"kind": "parameter", "name": "greeting"}]
        graph = _two_steps(pipe, parameters=[greeting], arguments=tagged)
        return graph, graph, {"ParameterAssignments": {"greeting": "bonjour"}}
    if name == "params":
        graph = _two_steps(pipe, parameters=[greeting], params={"mode": {"kind": "parameter", "name": "greeting"}})
        return graph, graph, {"ParameterAssignments": {"greeting": "bonjour"}}
    if name == "compute_target":
        return _two_steps(pipe), _two_steps(pipe, compute_target="cpu-cluster"), {}
    assert name == "runconfig"
    return _two_steps(pipe), _two_steps(pipe, runconfig={"environment_variables": {"MODE": "fast"}}), {}


@pytest.mark.parametrize(
    ("change", "because"),
    [
        ("snapshot", "the source directory (snapshot)"),
        ("arguments", "the arguments"),
        ("parameter", "the arguments"),
        ("params", "the parameter values"),
        ("compute_target", "the compute target"),
        ("runconfig", "the run configuration (environment)"),
    ],
)
def test_a_changed_part_of_the_fingerprint_reruns_the_step_and_says_which(
    pipe: Pipe, change: str, because: str
) -> None:
    base, changed, body = _variant(change, pipe)
    first, _ = pipe.run(base)
    second, steps = pipe.run(changed, **body)
    # Only the consumer changed: the producer (which does not read the parameter) is still reused.
    assert steps["produce"].is_reused and steps["produce"].reused_pipeline_run_id == first
    assert not steps["consume"].is_reused and steps["consume"].attempt == 1
    assert steps["consume"].reuse_reason == f"Not reused: {because} changed since run {first}."
    assert "read: payload" in pipe.log(second, "consume")


def test_changed_upstream_content_is_never_reused_and_identical_content_is(pipe: Pipe) -> None:
    random = _two_steps(
        pipe,
        produce={"allow_reuse": False},
        produce_arguments=[{"kind": "literal", "value": "--text"}, {"kind": "literal", "value": "random"}],
    )
    first, _ = pipe.run(random)
    second, steps = pipe.run(random)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == "Not reused: the step has allow_reuse=False."
    assert steps["produce"].reuse_key is None  # never indexed
    assert not steps["consume"].is_reused
    assert steps["consume"].reuse_reason == f"Not reused: the data of input 'handover' changed since run {first}."

    fixed = _two_steps(pipe, produce={"allow_reuse": False})
    third, _ = pipe.run(fixed)
    fourth, steps = pipe.run(fixed)
    assert not steps["produce"].is_reused  # it ran again, and wrote the same bytes ...
    assert steps["consume"].is_reused and steps["consume"].reused_pipeline_run_id == third  # ... so no need
    assert second != fourth


def test_regenerate_outputs_runs_every_step_and_a_later_run_reuses_that_run(pipe: Pipe) -> None:
    graph = _two_steps(pipe)
    pipe.run(graph)
    regenerated, steps = pipe.run(graph, RegenerateOutputs=True)
    for step in steps.values():
        assert not step.is_reused and step.attempt == 1
        assert step.reuse_reason == (
            "Not reused: the run was submitted with regenerate_outputs=True (later runs may reuse this one)."
        )
    _, steps = pipe.run(graph)
    assert all(s.is_reused and s.reused_pipeline_run_id == regenerated for s in steps.values())


def test_a_failed_step_is_never_reused(pipe: Pipe) -> None:
    graph = {
        "steps": [
            {
                "name": "boom",
                "kind": "python_script",
                "script_name": "boom.py",
                "snapshot": pipe.snapshot({"boom.py": "import sys\nsys.exit('no')\n"}),
            }
        ]
    }
    for _ in range(2):
        run_id = pipe.submit(graph)
        (message,) = pipe.runner.advance(RunMessage(run_id))  # queued again: nothing to reuse
        step = pipe.stores.runs.get_step(run_id, "boom")
        assert step.status is StepStatus.QUEUED and not step.is_reused
        assert step.reuse_reason == "Not reused: no earlier successful run of step 'boom' to reuse."
        report = pipe.worker.execute(message)
        assert report is not None
        pipe.runner.advance(report)
        assert pipe.stores.runs.get_run(run_id).status is RunStatus.FAILED
    rows = list(pipe.clients.tables.get_table_client(table_name(REUSE_TABLE)).list_entities())
    assert rows == []


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
def test_outputs_that_are_gone_or_modified_are_not_reused(pipe: Pipe, how: str) -> None:
    graph = _two_steps(pipe)
    first, _ = pipe.run(graph)
    blob = pipe.clients.blobs.get_blob_client(DEFAULT_CONTAINER, output_prefix(first, "handover") + "data.txt")
    if how == "deleted":
        blob.delete_blob()
    else:
        blob.upload_blob(b"tampered", overwrite=True)
    second, steps = pipe.run(graph)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == f"Not reused: the outputs of run {first} are no longer available."
    # The consumer reads the new output, whose bytes equal the first run's: it is reused.
    assert steps["consume"].is_reused and steps["consume"].reused_pipeline_run_id == first
    _, steps = pipe.run(graph)  # the stale candidate was dropped; the second run is reused
    assert steps["produce"].is_reused and steps["produce"].reused_pipeline_run_id == second


def test_duplicate_and_concurrent_run_messages_during_reuse_leave_one_consistent_state(pipe: Pipe) -> None:
    graph = _two_steps(pipe)
    first, _ = pipe.run(graph)

    second = pipe.submit(graph)
    rival = pipe.new_runner()
    rival_sent: list[StepMessage] = []

    def clock_with_a_rival() -> Any:
        # Runs after the first load: the rival resolves the whole run in between (every write of the
        # first runner then loses its ETag, and it must end up agreeing).
        if not rival_sent:
            rival_sent.extend(rival.advance(RunMessage(second)))
            rival_sent.append(StepMessage(second, "-", 0))  # marks "ran"
        return utcnow()

    late = Runner(
        pipe.stores,
        ComputeTargetStore(pipe.clients.tables),
        StepQueue.of(pipe.clients.queues),
        reuse=pipe.reuser,
        clock=clock_with_a_rival,
    )
    assert late.advance(RunMessage(second)) == []
    assert rival_sent == [StepMessage(second, "-", 0)]
    run = pipe.stores.runs.get_run(second)
    steps = pipe.steps(second)
    assert run.status is RunStatus.FINISHED
    assert all(s.is_reused and s.reused_pipeline_run_id == first for s in steps.values())

    # Later duplicates change nothing, and several at once neither.
    threads = [threading.Thread(target=pipe.new_runner().advance, args=(RunMessage(second),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pipe.stores.runs.get_run(second).etag == run.etag
    assert [s.etag for s in pipe.steps(second).values()] == [s.etag for s in steps.values()]
    assert _queued_step_messages(pipe.clients) == []
    assert PipelineDataStore(pipe.clients.blobs).resolve(second, "handover")[0] == first


def test_concurrent_first_messages_reuse_each_step_exactly_once(pipe: Pipe) -> None:
    graph = _two_steps(pipe)
    first, _ = pipe.run(graph)
    second = pipe.submit(graph)
    sent: list[list[StepMessage]] = []
    errors: list[BaseException] = []

    def advance() -> None:
        try:
            sent.append(pipe.new_runner().advance(RunMessage(second)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=advance) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sent == [[], [], [], []]
    assert pipe.stores.runs.get_run(second).status is RunStatus.FINISHED
    assert all(s.is_reused and s.reused_run_id == f"{first}:{s.name}:1" for s in pipe.steps(second).values())


def test_a_lost_redirect_is_written_again_before_a_consumer_runs(pipe: Pipe, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = pipe.run(_two_steps(pipe))
    second = pipe.submit(
        _two_steps(
            pipe,
            arguments=[
                {"kind": "literal", "value": "--in"},
                {"kind": "data", "name": "handover"},
                {"kind": "literal", "value": "--tag"},
                {"kind": "literal", "value": "v3"},
            ],
        )
    )
    monkeypatch.setattr(pipe.reuser, "redirect", lambda run_id, decision: None)  # "crashes" after the row
    (message,) = pipe.runner.advance(RunMessage(second))
    monkeypatch.undo()
    assert pipe.stores.runs.get_step(second, "produce").is_reused
    # The consumer was queued only after its input's redirect was repaired from the producer's row.
    assert PipelineDataStore(pipe.clients.blobs).resolve(second, "handover")[0] == first
    assert message == StepMessage(second, "consume", 1)


def test_a_data_reference_input_is_reused_until_its_blobs_change(pipe: Pipe) -> None:
    path = f"raw/{uuid.uuid4().hex}/data.csv"
    container = pipe.clients.blobs.get_container_client(DEFAULT_CONTAINER)
    if not container.exists():
        container.create_container()
    container.upload_blob(path, b"a,b\n1,2\n", overwrite=True)
    graph = {
        "steps": [
            {
                "name": "read",
                "kind": "python_script",
                "script_name": "read.py",
                "snapshot": pipe.snapshot({"read.py": "import sys\nprint(open(sys.argv[1]).read())\n"}),
                "inputs": [
                    {
                        "source": "data_reference",
                        "name": "raw",
                        "datastore": DEFAULT_DATASTORE,
                        "path_on_datastore": path,
                    }
                ],
                "arguments": [{"kind": "input", "name": "raw"}],
            }
        ]
    }
    first, _ = pipe.run(graph)
    _, steps = pipe.run(graph)
    assert steps["read"].is_reused and steps["read"].reused_pipeline_run_id == first

    container.upload_blob(path, b"a,b\n3,4\n", overwrite=True)
    third, steps = pipe.run(graph)
    assert not steps["read"].is_reused
    assert steps["read"].reuse_reason == f"Not reused: the data of input 'raw' changed since run {first}."
    assert "3,4" in pipe.log(third, "read")

    # Without a way to identify such an input, the step is never reused.
    blind = Pipe(
        pipe.stores,
        pipe.clients,
        pipe.root / "blind",
        reuser=Reuser.of(pipe.clients, input_identity=unknown_input_identity),
    )
    _, steps = blind.run(graph)
    assert not steps["read"].is_reused
    assert steps["read"].reuse_reason == (
        "Not reused: the content of input 'raw' (a data reference) cannot be identified, and a step is never "
        "reused on unknown content."
    )


def test_data_changed_between_queueing_and_running_is_never_indexed_under_the_old_fingerprint(pipe: Pipe) -> None:
    path = f"raw/{uuid.uuid4().hex}/data.csv"
    container = pipe.clients.blobs.get_container_client(DEFAULT_CONTAINER)
    if not container.exists():
        container.create_container()
    container.upload_blob(path, b"old\n", overwrite=True)
    step = {
        "name": "read",
        "kind": "python_script",
        "script_name": "read.py",
        "snapshot": pipe.snapshot({"read.py": "import sys\nprint(open(sys.argv[1]).read())\n"}),
        "inputs": [
            {"source": "data_reference", "name": "raw", "datastore": DEFAULT_DATASTORE, "path_on_datastore": path}
        ],
        "arguments": [{"kind": "input", "name": "raw"}],
    }
    first = pipe.submit({"steps": [step]})
    (message,) = pipe.runner.advance(RunMessage(first))  # fingerprinted with "old"
    container.upload_blob(path, b"new\n", overwrite=True)  # ... and then the data changes
    report = pipe.worker.execute(message)
    assert report is not None
    ran = pipe.stores.runs.get_step(first, "read")
    assert ran.status is StepStatus.FINISHED and ran.reuse_key is None
    assert ran.reuse_reason is not None and "Not indexed for reuse: input 'raw' changed" in ran.reuse_reason
    pipe.runner.advance(report)  # the report that would index the execution
    index = pipe.clients.tables.get_table_client(table_name(REUSE_TABLE))
    entries = [e for e in index.query_entities("RunId eq @r", parameters={"r": first}) if "Key" not in e]
    assert entries == []  # not offered for reuse under the fingerprint of data it did not read


def test_a_fully_reused_chain_of_twenty_steps_finishes_in_one_message(pipe: Pipe) -> None:
    source = pipe.snapshot({"noop.py": "print('ok')\n"})
    steps = [
        {
            "name": f"s{i:02d}",
            "kind": "python_script",
            "script_name": "noop.py",
            "snapshot": source,
            "run_after": [f"s{i - 1:02d}"] if i else [],
        }
        for i in range(20)
    ]
    first, _ = pipe.run({"steps": steps})
    second = pipe.submit({"steps": steps})
    started = time.perf_counter()
    assert pipe.runner.advance(RunMessage(second)) == []
    elapsed = time.perf_counter() - started
    run = pipe.stores.runs.get_run(second)
    assert run.status is RunStatus.FINISHED and run.status_detail == "All 20 steps finished (20 reused)."
    assert all(s.is_reused and s.reused_pipeline_run_id == first for s in pipe.steps(second).values())
    assert elapsed < 5, elapsed  # ~0.2 s on an idle machine; generous for a loaded CI box


def test_a_reused_fan_out_is_looked_up_in_parallel_and_finishes_in_one_message(pipe: Pipe) -> None:
    source = pipe.snapshot({"noop.py": "print('ok')\n"})
    wide = {
        "steps": [
            {"name": f"f{i}", "kind": "python_script", "script_name": "noop.py", "snapshot": source} for i in range(6)
        ]
    }
    first, ran = pipe.run(wide)
    assert len({s.reuse_reason for s in ran.values()}) == 6  # each names its own step
    second = pipe.submit(wide)
    assert pipe.runner.advance(RunMessage(second)) == []
    steps = pipe.steps(second)
    assert sorted(steps) == [f"f{i}" for i in range(6)]
    assert all(s.is_reused and s.reused_run_id == f"{first}:{s.name}:1" for s in steps.values())
