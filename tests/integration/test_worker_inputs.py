"""Step inputs on Azurite: datasets, data references and datapath parameters downloaded into the step's
work folder, step kinds (command, estimator), the run-context file, and what is refused."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceModifiedError

import amlpipe
from shared.graph.model import (
    DataPathParameterInput,
    DataPathValue,
    DataReferenceInput,
    DatasetInput,
    PipelineDataInput,
)
from shared.graph.snapshot import build_snapshot
from shared.orchestration.files import LOG_CONTAINER, MARKER, StepFiles, log_blob_name, output_prefix
from shared.orchestration.inputs import DataAccess, InputError, download_input, input_blobs, list_input
from shared.orchestration.messages import RunMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.reuse import Reuser
from shared.orchestration.runner import Runner
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines.runs import StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_CONTAINER, DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.compute import ComputeTargetStore
from shared.registry.datasets import parse_definition
from shared.registry.datastores import parse_blob_spec, parse_datastore_spec
from shared.storage import StorageClients
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Prints what the step saw: its arguments, amlpipe's variables, the run context, and every input's files.
SHOW = """\
import json, os, sys
context = json.load(open(os.environ["AMLPIPE_RUN_CONTEXT"]))

def tree(path):
    if os.path.isfile(path):
        return {"<file>": open(path).read()}
    found = {}
    for top, _, names in os.walk(path):
        for name in names:
            full = os.path.join(top, name)
            found[os.path.relpath(full, path).replace(os.sep, "/")] = open(full).read()
    return found

print("REPORT " + json.dumps({
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("AZUREML_", "AML_", "AMLPIPE_", "PYTHONPATH"))},
    "context": context,
    "trees": {name: tree(entry["path"]) for name, entry in context["inputs"].items()},
    "journal": [os.path.isfile(context["journal"]), os.path.getsize(context["journal"])],
    "artifacts": os.path.isdir(context["artifacts_dir"]),
}))
"""


@dataclass
class Ran:
    """One executed step: its row and what its script reported (None when it printed no report)."""

    step: StepRun
    log: str
    report: dict[str, Any] | None


class Harness:
    """Submit a one-step graph with ``show.py`` in its snapshot, queue it and execute it once."""

    def __init__(self, stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, root: Path) -> None:
        self.stores = stores
        self.clients = clients
        self.registry = registry
        self.root = root
        self.unique = uuid.uuid4().hex[:8]
        source = root / "source"
        source.mkdir()
        (source / "show.py").write_text(SHOW)
        (source / "run.sh").write_text("echo from-a-script\n")
        snap = build_snapshot(source)
        ticket = stores.snapshots.begin_upload(snap.sha256)
        if not ticket.exists:
            assert ticket.upload_url is not None
            put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
            assert put.status_code == 201
            stores.snapshots.commit(snap.sha256, ticket.staging_id)
        self.snapshot = {"sha256": snap.sha256, "size_bytes": snap.size_bytes}

    def upload(self, files: Mapping[str, str], *, container: str = DEFAULT_CONTAINER) -> None:
        client = self.clients.blobs.get_container_client(container)
        if not client.exists():
            client.create_container()
        for name, text in files.items():
            client.upload_blob(name, text.encode(), overwrite=True)

    def register_dataset(self, name: str, kind: str, paths: list[str], **options: Any) -> None:
        body = {"kind": kind, "paths": [{"datastore": DEFAULT_DATASTORE, "path": p} for p in paths], "options": options}
        self.registry.datasets.register(name, parse_definition(body), create_new_version=True)

    def register_datastore(self) -> tuple[str, str]:
        """A datastore of its own container (account key), as users register one: (name, container)."""
        name, container = f"ds{self.unique}", f"in-{self.unique}"
        body = {
            "containerName": container,
            "accountName": self.clients.blobs.account_name,
            "accountKey": AZURITE_KEY,
            "endpoint": self.clients.blobs.url.rstrip("/"),
            "createIfNotExists": True,
        }
        self.registry.datastores.register(name, parse_blob_spec(body))
        return name, container

    def run(
        self,
        step: dict[str, Any],
        *,
        parameters: list[dict[str, Any]] | None = None,
        reuse: bool = False,
        **body: Any,
    ) -> Ran:
        graph = {"parameters": parameters or [], "steps": [{"snapshot": self.snapshot, **step}]}
        # Submitted without the registry: the worker, not submit-time validation, must catch what is missing.
        run_id = submit.submit_graph(self.stores, {"ExperimentName": "inputs-it", "Graph": graph, **body}, None).id
        # With reuse, the orchestrator first identifies the inputs' content (and must survive what it cannot read).
        reuser = Reuser.of(self.clients, registry=self.registry) if reuse else None
        runner = Runner(
            self.stores, ComputeTargetStore(self.clients.tables), StepQueue.of(self.clients.queues), reuse=reuser
        )
        (message,) = runner.advance(RunMessage(run_id))
        worker = StepWorker(
            self.stores, self.clients.blobs, StepQueue.of(self.clients.queues), registry=self.registry, root=self.root
        )
        assert worker.execute(message) is not None
        row = self.stores.runs.get_step(run_id, step["name"])
        blob = self.clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, step["name"], 1))
        log = blob.download_blob().readall().decode() if blob.exists() else ""
        reports = [json.loads(line[7:]) for line in log.splitlines() if line.startswith("REPORT ")]
        return Ran(row, log, reports[0] if reports else None)


@pytest.fixture
def harness(stores: Stores, clients: StorageClients, tmp_path: Path) -> Iterator[Harness]:
    yield Harness(stores, clients, WorkspaceRegistry(clients.tables, clients.blobs), tmp_path)


def _finished(ran: Ran) -> dict[str, Any]:
    assert ran.step.status is StepStatus.FINISHED, (ran.step.reason, ran.log)
    assert ran.report is not None, ran.log
    return ran.report


def _script(name: str, inputs: list[dict[str, Any]], arguments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "python_script",
        "script_name": "show.py",
        "inputs": inputs,
        "arguments": arguments or [],
    }


# -- datasets --------------------------------------------------------------------------------------


def test_a_file_dataset_folder_and_glob_are_downloaded_keeping_their_structure(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/data/a.txt": "A", f"{u}/data/sub/b.txt": "B", f"{u}/data/skip.csv": "C"})
    harness.register_dataset(f"files_{u}", "File", [f"{u}/data"])  # version 1: a folder
    harness.register_dataset(f"files_{u}", "File", [f"{u}/data/**/*.txt"])  # version 2: a glob
    ran = harness.run(
        _script(
            "files",
            [
                {
                    "source": "dataset",
                    "name": "folder",
                    "dataset_name": f"files_{u}",
                    "dataset_version": 1,
                    "mode": "download",
                },
                {"source": "dataset", "name": "latest", "dataset_name": f"files_{u}", "mode": "mount"},
            ],
            [{"kind": "input", "name": "latest"}],
        )
    )
    report = _finished(ran)
    assert report["trees"]["folder"] == {"a.txt": "A", "sub/b.txt": "B", "skip.csv": "C"}
    assert report["trees"]["latest"] == {"a.txt": "A", "sub/b.txt": "B"}
    inputs = report["context"]["inputs"]
    assert inputs["folder"]["type"] == "File" and inputs["folder"]["dataset_version"] == 1
    assert inputs["latest"]["dataset_name"] == f"files_{u}" and inputs["latest"]["dataset_version"] == 2
    assert inputs["latest"]["tabular"] is None
    assert report["argv"] == [inputs["latest"]["path"]]
    assert report["env"]["AZUREML_DATAREFERENCE_latest"] == inputs["latest"]["path"]
    work = Path(report["cwd"]).parent  # private to the execution, outside src
    assert Path(inputs["folder"]["path"]) == work / "inputs" / "folder"


def test_a_tabular_dataset_lists_its_files_in_order_and_its_options_in_the_context(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/csv/b.csv": "x;y\n3;4\n", f"{u}/csv/a.csv": "x;y\n1;2\n", f"{u}/csv/notes.txt": "-"})
    harness.register_dataset(f"table_{u}", "Tabular", [f"{u}/csv/*.csv"], separator=";", header=True)
    ran = harness.run(_script("tabular", [{"source": "dataset", "name": "table", "dataset_name": f"table_{u}"}]))
    report = _finished(ran)
    entry = report["context"]["inputs"]["table"]
    assert entry["type"] == "Tabular" and entry["dataset_version"] == 1
    folder = Path(entry["path"])
    assert entry["tabular"]["files"] == [str(folder / "a.csv"), str(folder / "b.csv")]
    assert entry["tabular"]["options"] == {
        "separator": ";",
        "header": "all_files_same_headers",
        "encoding": "utf8",
        "infer_column_types": True,
        "support_multi_line": False,
        "empty_as_string": False,
        "include_path": False,
    }
    assert report["trees"]["table"] == {"a.csv": "x;y\n1;2\n", "b.csv": "x;y\n3;4\n"}


def test_the_run_context_names_the_execution_and_the_step_can_import_amlpipe(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "host-only"))  # the host's own is not passed on
    ran = harness.run({"name": "ctx", "kind": "python_script", "script_name": "show.py"})
    report = _finished(ran)
    context = report["context"]
    work = Path(report["cwd"]).parent
    assert context == {
        "schema": 1,
        "id": f"{ran.step.run_id}:ctx:1",
        "pipeline_run_id": ran.step.run_id,
        "step": "ctx",
        "attempt": 1,
        "experiment": "inputs-it",
        "journal": str(work / ".amlpipe" / "journal.jsonl"),
        "artifacts_dir": str(work / ".amlpipe" / "artifacts"),
        "inputs": {},
    }
    assert report["journal"] == [True, 0] and report["artifacts"] is True
    assert report["env"]["AMLPIPE_RUN_CONTEXT"] == str(work / ".amlpipe" / "context.json")
    assert report["env"]["PYTHONPATH"] == str(Path(amlpipe.__file__).resolve().parent.parent)


# -- data references and datapath parameters ------------------------------------------------------


def test_a_data_reference_reads_a_file_or_a_folder_of_a_registered_datastore(harness: Harness) -> None:
    store, container = harness.register_datastore()
    harness.upload({"ref/x.csv": "one", "ref/deep/y.csv": "two", "other/z.csv": "three"}, container=container)
    ran = harness.run(
        _script(
            "refs",
            [
                {"source": "data_reference", "name": "one_file", "datastore": store, "path_on_datastore": "ref/x.csv"},
                {"source": "data_reference", "name": "folder", "datastore": store, "path_on_datastore": "ref"},
                {
                    "source": "data_reference",
                    "name": "placed",
                    "datastore": store,
                    "path_on_datastore": "other",
                    "mode": "download",
                    "path_on_compute": "mydata/other",
                },
            ],
            [{"kind": "input", "name": "one_file"}, {"kind": "input", "name": "folder"}],
        )
    )
    report = _finished(ran)
    inputs = report["context"]["inputs"]
    assert inputs["one_file"]["type"] == "DataReference" and inputs["one_file"]["path"].endswith("/x.csv")
    assert report["trees"]["one_file"] == {"<file>": "one"}
    assert report["trees"]["folder"] == {"x.csv": "one", "deep/y.csv": "two"}
    assert report["trees"]["placed"] == {"z.csv": "three"}
    work = Path(report["cwd"]).parent
    assert Path(inputs["placed"]["path"]) == work / "mydata" / "other"
    assert report["argv"] == [inputs["one_file"]["path"], inputs["folder"]["path"]]
    assert report["env"]["AZUREML_DATAREFERENCE_one_file"] == inputs["one_file"]["path"]
    assert report["env"]["AZUREML_DATAREFERENCE_placed"] == inputs["placed"]["path"]


def test_a_datapath_parameter_reads_its_default_or_the_run_s_assignment(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/v1/data.txt": "default data", f"{u}/v2/data.txt": "assigned data"})
    parameters = [
        {
            "name": "source",
            "type": "datapath",
            "default_value": {"datastore": DEFAULT_DATASTORE, "path_on_datastore": f"{u}/v1"},
        }
    ]
    step = _script(
        "datapath",
        [{"source": "datapath_parameter", "name": "source", "parameter": "source"}],
        [{"kind": "input", "name": "source"}],
    )
    by_default = _finished(harness.run(step, parameters=parameters))
    assert by_default["trees"]["source"] == {"data.txt": "default data"}
    assert by_default["context"]["inputs"]["source"]["type"] == "DataPath"
    assert by_default["argv"] == [by_default["context"]["inputs"]["source"]["path"]]
    assigned = _finished(
        harness.run(
            step,
            parameters=parameters,
            DataPathAssignments={"source": {"DataStoreName": DEFAULT_DATASTORE, "RelativePath": f"{u}/v2"}},
        )
    )
    assert assigned["trees"]["source"] == {"data.txt": "assigned data"}


# -- what is refused -------------------------------------------------------------------------------


def test_a_missing_dataset_fails_the_step_naming_it_without_retry(harness: Harness) -> None:
    ran = harness.run(
        _script("nodata", [{"source": "dataset", "name": "raw", "dataset_name": f"nope_{harness.unique}"}])
    )
    assert ran.step.status is StepStatus.FAILED and not ran.step.retryable
    assert ran.step.reason is not None and "'raw'" in ran.step.reason and f"nope_{harness.unique}" in ran.step.reason
    assert ran.log == ""  # nothing ran


def test_a_missing_path_or_datastore_fails_the_step_naming_input_datastore_and_path(harness: Harness) -> None:
    u = harness.unique
    missing_path = harness.run(
        _script(
            "nopath",
            [
                {
                    "source": "data_reference",
                    "name": "ref",
                    "datastore": DEFAULT_DATASTORE,
                    "path_on_datastore": f"{u}/gone",
                }
            ],
        )
    )
    assert missing_path.step.status is StepStatus.FAILED and not missing_path.step.retryable
    reason = missing_path.step.reason or ""
    assert "'ref'" in reason and f"'{u}/gone'" in reason and "'workspaceblobstore'" in reason
    harness.upload({f"{u}/some/file.txt": "-"})
    no_match = harness.run(
        _script(
            "noglob",
            [
                {
                    "source": "data_reference",
                    "name": "g",
                    "datastore": DEFAULT_DATASTORE,
                    "path_on_datastore": f"{u}/some/*.csv",
                }
            ],
        )
    )
    assert no_match.step.status is StepStatus.FAILED and "no blob matches" in (no_match.step.reason or "")
    bad_glob = harness.run(
        _script(
            "badglob",
            [{"source": "data_reference", "name": "g", "datastore": DEFAULT_DATASTORE, "path_on_datastore": "d/[z-a]"}],
        ),
        reuse=True,
    )
    assert bad_glob.step.status is StepStatus.FAILED and not bad_glob.step.retryable
    assert "not a valid glob" in (bad_glob.step.reason or "")
    missing_store = harness.run(
        _script(
            "nostore",
            [{"source": "data_reference", "name": "ref", "datastore": f"nostore{u}", "path_on_datastore": "x"}],
        )
    )
    assert missing_store.step.status is StepStatus.FAILED and not missing_store.step.retryable
    assert f"nostore{u}" in (missing_store.step.reason or "") and "'ref'" in (missing_store.step.reason or "")


def test_blob_names_that_would_escape_the_input_folder_fail_the_step(harness: Harness) -> None:
    store, container = harness.register_datastore()
    harness.upload({"/rooted.txt": "absolute"}, container=container)  # a blob name with a leading '/'
    rooted = harness.run(_script("rooted", [{"source": "data_reference", "name": "all", "datastore": store}]))
    assert rooted.step.status is StepStatus.FAILED and not rooted.step.retryable
    assert "'/rooted.txt'" in (rooted.step.reason or "") and "it is absolute" in (rooted.step.reason or "")
    harness.upload({"d//doubled.txt": "empty segment"}, container=container)
    doubled = harness.run(
        _script("doubled", [{"source": "data_reference", "name": "d", "datastore": store, "path_on_datastore": "d"}])
    )
    assert doubled.step.status is StepStatus.FAILED and "'d//doubled.txt'" in (doubled.step.reason or "")


def test_a_completion_marker_listing_a_path_outside_its_folder_is_refused(harness: Harness) -> None:
    run_id = str(uuid.uuid4())
    prefix = output_prefix(run_id, "handover")
    harness.upload({prefix + "ok.txt": "fine", prefix + MARKER: json.dumps({"attempt": 1, "files": ["../../x"]})})
    item = PipelineDataInput(name="handover", pipeline_data="handover")
    with DataAccess(harness.registry, harness.clients.blobs) as access, pytest.raises(InputError, match="'../../x'"):
        input_blobs(item, access=access, run_id=run_id, datapaths={})


def test_a_pipeline_data_file_changed_after_its_producer_committed_it_is_refused(
    harness: Harness, tmp_path: Path
) -> None:
    run_id = str(uuid.uuid4())
    folder = tmp_path / "produced"
    folder.mkdir()
    (folder / "a.txt").write_text("committed")
    StepFiles(harness.clients.blobs, tmp_path / "cache").upload_output(run_id, "handover", folder, attempt=1)
    item = PipelineDataInput(name="prepped", pipeline_data="handover")
    with DataAccess(harness.registry, harness.clients.blobs) as access:
        (ref,) = input_blobs(item, access=access, run_id=run_id, datapaths={})  # as committed: readable
        harness.upload({output_prefix(run_id, "handover") + "a.txt": "written later"})
        with pytest.raises(InputError, match="'a.txt' changed after its producer committed it"):
            input_blobs(item, access=access, run_id=run_id, datapaths={})
    assert ref.relative == "a.txt"


def test_a_pipeline_data_input_of_a_reused_producer_lists_the_earlier_run_s_files(harness: Harness) -> None:
    earlier, later = str(uuid.uuid4()), str(uuid.uuid4())
    owned = output_prefix(earlier, "handover")
    redirect = {"attempt": 0, "files": ["a.txt"], "source": {"run_id": earlier, "data_name": "handover"}}
    harness.upload(
        {
            owned + "a.txt": "from the earlier run",
            owned + MARKER: json.dumps({"attempt": 1, "files": ["a.txt"]}),
            output_prefix(later, "handover") + MARKER: json.dumps(redirect),
        }
    )
    item = PipelineDataInput(name="prepped", pipeline_data="handover")
    with DataAccess(harness.registry, harness.clients.blobs) as access:
        (ref,) = input_blobs(item, access=access, run_id=later, datapaths={})
    assert (ref.datastore, ref.name, ref.relative, ref.size) == (DEFAULT_DATASTORE, owned + "a.txt", "a.txt", 20)


def test_s3_data_references_and_datapaths_are_downloaded_like_blob_ones(harness: Harness, moto_s3: MotoS3) -> None:
    u = harness.unique
    bucket = moto_s3.create_bucket("inputs")
    s3 = moto_s3.client()
    try:
        for key, body in {f"{u}/d/a.txt": b"A", f"{u}/d/sub/b.txt": b"B", f"{u}/one.csv": b"x,y"}.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        s3.close()
    spec = parse_datastore_spec(
        {
            "datastoreType": "AmazonS3",
            "bucketName": bucket,
            "endpointUrl": moto_s3.endpoint_url,
            "accessKeyId": TEST_KEY_ID,
            "secretAccessKey": TEST_SECRET,
        }
    )
    harness.registry.datastores.register(f"s3{u}", spec)
    ran = harness.run(
        _script(
            "s3",
            [
                {"source": "data_reference", "name": "folder", "datastore": f"s3{u}", "path_on_datastore": f"{u}/d"},
                {"source": "datapath_parameter", "name": "file", "parameter": "p"},
            ],
            [{"kind": "input", "name": "file"}],
        ),
        parameters=[
            {
                "name": "p",
                "type": "datapath",
                "default_value": {"datastore": f"s3{u}", "path_on_datastore": f"{u}/one.csv"},
            }
        ],
    )
    report = _finished(ran)
    assert report["trees"]["folder"] == {"a.txt": "A", "sub/b.txt": "B"}
    assert report["trees"]["file"] == {"<file>": "x,y"}
    assert report["argv"][0].endswith("one.csv")
    missing = harness.run(
        _script(
            "s3-missing",
            [{"source": "data_reference", "name": "gone", "datastore": f"s3{u}", "path_on_datastore": f"{u}/no"}],
        )
    )
    assert missing.step.status is StepStatus.FAILED and not missing.step.retryable
    assert missing.step.reason == (
        f"Input 'gone': nothing found at path '{u}/no' on datastore 's3{u}' (bucket '{bucket}')."
    )


# -- step kinds ------------------------------------------------------------------------------------


def test_a_command_string_runs_through_the_shell_with_the_step_s_variables(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/cmd/in.txt": "shell input"})
    ran = harness.run(
        {
            "name": "shell",
            "kind": "command",
            "command": 'python show.py "$AZUREML_DATAREFERENCE_data" "$AML_PARAMETER_greeting" && sh run.sh',
            "inputs": [
                {
                    "source": "data_reference",
                    "name": "data",
                    "datastore": DEFAULT_DATASTORE,
                    "path_on_datastore": f"{u}/cmd",
                }
            ],
        },
        parameters=[{"name": "greeting", "type": "string", "default_value": "hi there"}],
    )
    report = _finished(ran)
    assert report["argv"] == [report["context"]["inputs"]["data"]["path"], "hi there"]
    assert report["trees"]["data"] == {"in.txt": "shell input"}
    assert "from-a-script" in ran.log  # after &&: a shell ran the line


def test_a_command_list_is_substituted_and_run_without_a_shell(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/list/in.txt": "list input"})
    ran = harness.run(
        {
            "name": "argv",
            "kind": "command",
            "command": [
                {"kind": "literal", "value": "python"},
                {"kind": "literal", "value": "show.py"},
                {"kind": "input", "name": "data"},
                {"kind": "parameter", "name": "greeting"},
                {"kind": "literal", "value": "$HOME && not a shell"},
            ],
            "inputs": [
                {
                    "source": "data_reference",
                    "name": "data",
                    "datastore": DEFAULT_DATASTORE,
                    "path_on_datastore": f"{u}/list",
                }
            ],
        },
        parameters=[{"name": "greeting", "type": "string", "default_value": "hello"}],
    )
    report = _finished(ran)
    assert report["argv"] == [report["context"]["inputs"]["data"]["path"], "hello", "$HOME && not a shell"]


def test_a_command_whose_program_does_not_exist_fails_without_retry(harness: Harness) -> None:
    ran = harness.run(
        {"name": "typo", "kind": "command", "command": [{"kind": "literal", "value": f"pyhton{harness.unique}"}]}
    )
    assert ran.step.status is StepStatus.FAILED and not ran.step.retryable
    assert f"'pyhton{harness.unique}' was not found" in (ran.step.reason or "")


def test_an_estimator_step_runs_its_entry_script_with_its_arguments(harness: Harness) -> None:
    ran = harness.run(
        {
            "name": "train",
            "kind": "estimator",
            "script_name": "show.py",
            "arguments": [{"kind": "literal", "value": "--reg"}, {"kind": "parameter", "name": "reg"}],
            "params": {"mode": "fast", "rate": {"kind": "parameter", "name": "reg"}},
            "runconfig": {"environment_variables": {"PYTHONPATH": "vendor"}},
        },
        parameters=[{"name": "reg", "type": "float", "default_value": 0.5}],
        ParameterAssignments={"reg": "0.25"},
    )
    report = _finished(ran)
    assert report["argv"] == ["--reg", "0.25"]
    assert report["env"]["AML_PARAMETER_reg"] == "0.25"
    assert report["env"]["AML_PARAMETER_mode"] == "fast" and report["env"]["AML_PARAMETER_rate"] == "0.25"
    # The runconfig's PYTHONPATH comes first; amlpipe's client is still importable.
    assert report["env"]["PYTHONPATH"] == os.pathsep.join(
        ["vendor", str(Path(amlpipe.__file__).resolve().parent.parent)]
    )


# -- listing with content identity -----------------------------------------------------------------


def test_input_blobs_lists_etags_without_downloading_and_a_changed_blob_is_a_retryable_error(
    harness: Harness, tmp_path: Path
) -> None:
    u = harness.unique
    harness.upload({f"{u}/fp/a.txt": "a", f"{u}/fp/b/c.txt": "c"})
    harness.register_dataset(f"fp_{u}", "File", [f"{u}/fp"])
    item = DatasetInput(name="fp", dataset_name=f"fp_{u}")
    container = harness.clients.blobs.get_container_client(DEFAULT_CONTAINER)
    with DataAccess(harness.registry, harness.clients.blobs) as access:
        refs = input_blobs(item, access=access, run_id="unused", datapaths={})
        assert [(r.datastore, r.container, r.name, r.relative, r.size) for r in refs] == [
            (DEFAULT_DATASTORE, DEFAULT_CONTAINER, f"{u}/fp/a.txt", "a.txt", 1),
            (DEFAULT_DATASTORE, DEFAULT_CONTAINER, f"{u}/fp/b/c.txt", "b/c.txt", 1),
        ]
        assert [r.etag for r in refs] == [container.get_blob_client(r.name).get_blob_properties().etag for r in refs]
        listing = list_input(item, access=access, run_id="unused", datapaths={})
        harness.upload({f"{u}/fp/b/c.txt": "changed"})
        assert input_blobs(item, access=access, run_id="unused", datapaths={})[1].etag != refs[1].etag
        # Content changed after listing: the download refuses to mix it (a storage error: retried).
        with pytest.raises(ResourceModifiedError):
            download_input(listing, tmp_path / "fp", access=access)


def test_input_blobs_of_a_datapath_value_and_a_data_reference(harness: Harness) -> None:
    u = harness.unique
    harness.upload({f"{u}/dp/one.txt": "1"})
    datapaths = {"p": DataPathValue(datastore=DEFAULT_DATASTORE, path_on_datastore=f"{u}/dp/one.txt")}
    reference = DataReferenceInput(name="r", datastore=DEFAULT_DATASTORE, path_on_datastore=f"{u}/dp")
    with DataAccess(harness.registry, harness.clients.blobs) as access:
        by_param = input_blobs(
            DataPathParameterInput(name="p", parameter="p"), access=access, run_id="x", datapaths=datapaths
        )
        by_reference = input_blobs(reference, access=access, run_id="x", datapaths={})
    assert [(r.name, r.relative) for r in by_param] == [(f"{u}/dp/one.txt", "one.txt")]
    assert [(r.name, r.relative, r.etag) for r in by_reference] == [(r.name, r.relative, r.etag) for r in by_param]


def test_a_storage_fault_quoting_a_sas_url_logs_and_records_no_signature(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from azure.core.exceptions import ServiceRequestError

    from shared.orchestration.objects import BlobObjects

    store, container = harness.register_datastore()
    harness.upload({"ref/x.csv": "one"}, container=container)
    urls: list[str] = []

    def unreachable(self: BlobObjects, prefix: str) -> Iterator[Any]:
        # What azure-core raises when the account cannot be reached: urllib3's text, with the SAS URL.
        urls.append(self.container.url)
        raise ServiceRequestError(
            f"<urllib3.connection.HTTPConnection object>: Failed to establish a new connection. Max retries"
            f" exceeded with url: {self.container.url}&restype=container&comp=list&prefix={prefix}"
        )
        yield  # a generator, as the real one

    monkeypatch.setattr(BlobObjects, "list", unreachable)
    with caplog.at_level(logging.INFO):
        ran = harness.run(
            _script("sas", [{"source": "data_reference", "name": "f", "datastore": store, "path_on_datastore": "ref"}])
        )
    assert ran.step.status is StepStatus.FAILED and ran.step.retryable, ran.step.reason
    signature = urls[0].split("sig=", 1)[1].split("&", 1)[0]  # the minted SAS reached the fault's text
    assert signature and "ServiceRequestError" in caplog.text and "sig=REDACTED" in caplog.text
    for recorded in (caplog.text, ran.step.reason or "", ran.log):
        assert signature not in recorded and "sig=" + signature[:8] not in recorded
