"""PipelineData on the datastore its PipelineData names: the completion marker's ``datastore`` field,
which datastores the engine can write, the submit-time check, and the fingerprint. Pure, no storage."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.errors import BadRequestError
from shared.graph import find_problems, parse_graph
from shared.graph.validate import DatastoreWrites
from shared.orchestration.files import (
    FileIdentity,
    OutputMarker,
    OutputSource,
    output_datastore,
)
from shared.orchestration.fingerprint import changed_parts
from shared.registry.datastores import AMAZON_S3, DatastoreRecord, write_problem
from tests.unit.test_graph_validate import FakeRegistry
from tests.unit.test_reuse_fingerprint import SHA_A, SHA_B, _fp, _graph

# -- the marker's datastore ---------------------------------------------------------------------------


def _marker(**fields: Any) -> OutputMarker:
    content = {"a.txt": FileIdentity(SHA_A, '"0x1"', 3), "b/c.txt": FileIdentity(SHA_B, "etag-2", 4)}
    return OutputMarker(attempt=1, files=("a.txt", "b/c.txt"), content=content, **fields)


def test_a_marker_names_the_datastore_holding_its_files_and_round_trips() -> None:
    marker = _marker(datastore="s3_data")
    body = json.loads(marker.to_bytes())
    assert body["datastore"] == "s3_data"
    assert OutputMarker.parse(marker.to_bytes(), str(uuid.uuid4()), "data") == marker


def test_a_marker_on_the_default_datastore_has_no_datastore_field_as_before() -> None:
    assert "datastore" not in json.loads(_marker().to_bytes())
    old = json.dumps(
        {"attempt": 1, "files": ["a.txt"], "content": {"a.txt": {"sha256": SHA_A, "etag": "e", "size": 1}}}
    )
    assert OutputMarker.parse(old.encode(), "r", "data").datastore is None
    # The default datastore's own name, in any case, means the default datastore.
    named = json.dumps({"attempt": 1, "files": [], "datastore": "WorkspaceBlobStore"}).encode()
    assert OutputMarker.parse(named, "r", "data").datastore is None


def test_the_identity_of_an_output_is_the_same_on_any_datastore() -> None:
    assert _marker(datastore="s3_data").identity == _marker().identity == _marker(datastore="blobs").identity


def test_a_redirect_carries_the_datastore_of_its_source() -> None:
    source = OutputSource(run_id=str(uuid.uuid4()), data_name="data")
    redirect = _marker(source=source, datastore="s3_data")
    assert OutputMarker.parse(redirect.to_bytes(), str(uuid.uuid4()), "data") == redirect


@pytest.mark.parametrize(
    "datastore",
    [
        "",
        "s3/data",
        "../s3_data",
        "s3-data",  # hyphens are not in datastore names
        "s3_data\n",
        "x" * 256,
        42,
        True,
        ["s3_data"],
        {"name": "s3_data"},
    ],
)
def test_a_marker_naming_a_malformed_datastore_is_refused(datastore: Any) -> None:
    raw = json.dumps({"attempt": 1, "files": ["a.txt"], "datastore": datastore}).encode()
    with pytest.raises(BadRequestError) as raised:
        OutputMarker.parse(raw, "r", "data")
    assert raised.value.message == "PipelineData 'data' has a malformed completion marker."
    assert raised.value.target == "data"


def test_a_pipeline_datas_datastore_is_the_markers_unless_it_is_the_default() -> None:
    assert output_datastore(None) is None
    assert output_datastore("workspaceblobstore") is None and output_datastore("WorkspaceBlobStore") is None
    assert output_datastore("S3_Data") == "S3_Data"


# -- which datastores the engine can write ------------------------------------------------------------


def _record(**fields: Any) -> DatastoreRecord:
    base: dict[str, Any] = {
        "name": "ds",
        "container_name": "c",
        "account_name": "acct",
        "protocol": "https",
        "endpoint": "core.windows.net",
        "credential_type": "AccountKey",
    }
    return DatastoreRecord(**{**base, **fields})


def test_blob_datastores_registered_with_a_sas_token_or_no_credential_cannot_be_written() -> None:
    sas = write_problem(_record(credential_type="Sas"))
    assert sas is not None and "SAS token" in sas and "account_key" in sas
    anonymous = write_problem(_record(credential_type="None"))
    assert anonymous is not None and "without a credential" in anonymous
    assert write_problem(None) == "is not registered in the workspace"


def test_account_key_blob_datastores_the_default_and_s3_datastores_can_be_written() -> None:
    assert write_problem(_record()) is None
    assert write_problem(_record(name="workspaceblobstore", is_default=True)) is None
    for credential in ("AccessKey", "None"):  # a bucket policy may allow anonymous writes
        s3 = _record(datastore_type=AMAZON_S3, credential_type=credential, bucket_name="b", container_name="")
        assert write_problem(s3) is None


# -- refused at submission, when the registry can tell ---------------------------------------------------


class WritesRegistry(FakeRegistry):
    """A registry that also answers :class:`DatastoreWrites` (as the workspace registry can)."""

    def __init__(self) -> None:
        super().__init__()
        self.datastores = {"blobs", "sas_only", "s3_data"}

    def datastore_write_problem(self, name: str) -> str | None:
        return write_problem(_record(name=name, credential_type="Sas")) if name == "sas_only" else None


def _writing(datastore: str) -> Any:
    step = {"name": "train", "kind": "python_script", "script_name": "run.py"}
    return parse_graph({"steps": [{**step, "outputs": [{"name": "ok"}, {"name": "model", "datastore": datastore}]}]})


def test_a_pipeline_data_on_a_datastore_the_engine_cannot_write_is_refused_naming_the_field() -> None:
    registry = WritesRegistry()
    assert isinstance(registry, DatastoreWrites)
    (problem,) = find_problems(_writing("sas_only"), registry)
    assert (problem.code, problem.target) == ("DatastoreNotWritable", "steps[0].outputs[1].datastore")
    assert problem.message.startswith("PipelineData 'model' of step 'train' cannot be written: datastore 'sas_only'")
    assert "SAS token" in problem.message
    assert find_problems(_writing("s3_data"), registry) == []
    # An unknown datastore is reported as unknown, once.
    assert [(p.code, p.target) for p in find_problems(_writing("nowhere"), registry)] == [
        ("UnknownDatastore", "steps[0].outputs[1].datastore")
    ]


def test_a_registry_that_cannot_tell_leaves_writability_to_the_step() -> None:
    registry = FakeRegistry()
    registry.datastores = {"sas_only"}
    assert not isinstance(registry, DatastoreWrites)
    assert find_problems(_writing("sas_only"), registry) == []


# -- reuse: the output's datastore is part of the fingerprint --------------------------------------------


def test_fingerprints_of_outputs_without_a_datastore_are_what_earlier_versions_computed() -> None:
    # Computed before outputs could live on other datastores: executions indexed then are still reused.
    assert _fp(_graph()).key == "8ee485286517f708922a9a1b05aafbc3c444acb189d3263d97b938205187a364"


def test_moving_an_output_to_another_datastore_changes_the_fingerprint() -> None:
    default = _fp(_graph())
    on_s3 = _fp(_graph(outputs=[{"name": "model", "datastore": "s3_data"}]))
    on_other_s3 = _fp(_graph(outputs=[{"name": "model", "datastore": "s3_other"}]))
    assert len({default.key, on_s3.key, on_other_s3.key}) == 3
    assert changed_parts(default.parts, on_s3.parts) == changed_parts(on_s3.parts, on_other_s3.parts) == ["io"]
