"""The registry's stores (datastores, datasets, compute targets) on a real Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared import storage as engine_storage
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.registry import DEFAULT_CONTAINER, DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.compute import ComputeSpec, parse_compute_spec
from shared.registry.datasets import parse_definition
from shared.registry.datastores import TABLE as DATASTORE_TABLE
from shared.registry.datastores import DatastoreStore, parse_blob_spec

pytestmark = pytest.mark.integration

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def settings(storage: str, unique: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": storage, "AMLPIPE_TABLE_PREFIX": f"r{unique}"}


@pytest.fixture
def clients(settings: dict[str, str]) -> Iterator[engine_storage.StorageClients]:
    with engine_storage.StorageClients.from_settings(settings) as opened:
        yield opened


@pytest.fixture
def registry(clients: engine_storage.StorageClients, settings: dict[str, str]) -> WorkspaceRegistry:
    return WorkspaceRegistry(clients.tables, clients.blobs, settings=settings)


def blob_body(clients: engine_storage.StorageClients, container: str, **extra: object) -> dict[str, object]:
    return {
        "containerName": container,
        "accountName": clients.blobs.account_name,
        "accountKey": AZURITE_KEY,
        "endpoint": clients.blobs.url.rstrip("/"),
        **extra,
    }


# --- datastores ---------------------------------------------------------------------------------


def test_the_default_datastore_always_exists_and_cannot_be_registered(registry: WorkspaceRegistry) -> None:
    assert registry.has_datastore("workspaceblobstore") and registry.has_datastore("WorkspaceBlobStore")
    default = registry.datastores.get(DEFAULT_DATASTORE)
    assert default.is_default and default.container_name == DEFAULT_CONTAINER
    assert [d.name for d in registry.datastores.list()] == [DEFAULT_DATASTORE]
    with pytest.raises(BadRequestError):
        registry.datastores.register(
            "workspaceblobstore", parse_blob_spec({"containerName": "abc", "accountName": "abc"})
        )


def test_a_loopback_endpoint_is_allowed_when_the_app_runs_on_azurite(
    registry: WorkspaceRegistry, clients: engine_storage.StorageClients
) -> None:
    body = blob_body(clients, "loop-ok", createIfNotExists=True)
    assert body["endpoint"].startswith("http://127.0.0.1:")  # type: ignore[union-attr]
    record, written = registry.datastores.register("loop_ok", parse_blob_spec(body))
    assert written and record.endpoint == body["endpoint"]
    assert clients.blobs.get_container_client("loop-ok").exists()


def test_a_loopback_endpoint_is_refused_when_the_app_runs_on_azure(
    clients: engine_storage.StorageClients, settings: dict[str, str]
) -> None:
    # The app's storage as it is on Azure: the store must refuse before it sends anything anywhere.
    on_azure = BlobServiceClient("https://myaccount.blob.core.windows.net", credential=AZURITE_KEY)
    with on_azure:
        store = DatastoreStore(clients.tables, on_azure, settings=settings)
        for endpoint in ("http://127.0.0.1:10000/devstoreaccount1", "https://localhost", "http://[::1]:80"):
            body = {**blob_body(clients, "loop-no", createIfNotExists=True), "endpoint": endpoint}
            with pytest.raises(BadRequestError, match="loopback") as caught:
                store.register("loop_no", parse_blob_spec(body))
            assert caught.value.target == "endpoint"
        assert store.find("loop_no") is None
    assert not clients.blobs.get_container_client("loop-no").exists()


def test_credentials_are_sealed_in_the_table_and_never_in_the_record(
    registry: WorkspaceRegistry, clients: engine_storage.StorageClients, settings: dict[str, str]
) -> None:
    record, written = registry.datastores.register("blob_data", parse_blob_spec(blob_body(clients, "training")))
    assert written and record.credential_type == "AccountKey"
    assert AZURITE_KEY not in str(record.to_json()) and AZURITE_KEY not in repr(
        parse_blob_spec(blob_body(clients, "x1y"))
    )
    table = clients.tables.get_table_client(engine_storage.table_name(DATASTORE_TABLE, settings))
    entity = table.get_entity("blob_data", "datastore")
    assert entity["Credential"].startswith("v1:") and AZURITE_KEY not in str(dict(entity))
    # A sealed credential is bound to its row: copied to another datastore it does not open.
    table.create_entity({**dict(entity), "PartitionKey": "stolen", "Name": "stolen"})
    with pytest.raises(Exception, match="cannot be opened"):
        registry.datastores.container_access("stolen", write=False)


def test_registering_again_is_idempotent_and_a_change_needs_overwrite(
    registry: WorkspaceRegistry, clients: engine_storage.StorageClients
) -> None:
    spec = parse_blob_spec(blob_body(clients, "training"))
    first, _ = registry.datastores.register("Blob_Data", spec)
    again, written = registry.datastores.register("blob_data", spec)
    assert not written and again.name == first.name == "Blob_Data"
    other = parse_blob_spec(blob_body(clients, "other"))
    with pytest.raises(ConflictError, match="overwrite=True"):
        registry.datastores.register("BLOB_DATA", other)
    assert registry.datastores.get("blob_data").container_name == "training"
    replaced, written = registry.datastores.register("blob_data", other, overwrite=True)
    assert written and replaced.container_name == "other" and replaced.name == "Blob_Data"


def test_container_access_mints_a_working_sas_with_the_asked_permissions(
    registry: WorkspaceRegistry, clients: engine_storage.StorageClients
) -> None:
    registry.datastores.register("blob_data", parse_blob_spec(blob_body(clients, "sasdata", createIfNotExists=True)))
    for name in ("blob_data", DEFAULT_DATASTORE):
        writer = registry.datastores.container_access(name, write=True)
        with ContainerClient.from_container_url(f"{writer.container_url}?{writer.sas_token}") as container:
            container.upload_blob("a/b.txt", b"hello", overwrite=True)
        reader = registry.datastores.container_access(name, write=False)
        assert "w" not in reader.permissions
        with ContainerClient.from_container_url(f"{reader.container_url}?{reader.sas_token}") as container:
            assert container.download_blob("a/b.txt").readall() == b"hello"
            with pytest.raises(Exception, match="AuthorizationPermissionMismatch|not authorized"):
                container.upload_blob("c.txt", b"nope")


def test_a_failed_container_creation_stores_nothing(
    registry: WorkspaceRegistry, clients: engine_storage.StorageClients
) -> None:
    body = blob_body(clients, "newcontainer", createIfNotExists=True, accountKey="d3JvbmcK")
    with pytest.raises(BadRequestError) as caught:
        registry.datastores.register("broken", parse_blob_spec(body))
    assert caught.value.target == "containerName" and "d3JvbmcK" not in caught.value.message
    assert not registry.has_datastore("broken")


def test_sas_registered_datastores_are_not_handed_out(registry: WorkspaceRegistry) -> None:
    spec = parse_blob_spec({"containerName": "abc", "accountName": "acct", "sasToken": "?sv=1&sig=secret"})
    registry.datastores.register("sas_store", spec)
    with pytest.raises(BadRequestError, match="account_key"):
        registry.datastores.container_access("sas_store", write=False)
    registry.datastores.unregister("sas_store")
    registry.datastores.unregister("sas_store")
    assert not registry.has_datastore("sas_store")


# --- datasets -----------------------------------------------------------------------------------


def definition(path: str = "data/**", kind: str = "File") -> object:
    return parse_definition({"kind": kind, "paths": [{"datastore": "workspaceblobstore", "path": path}]})


def test_dataset_versions_count_from_one_and_same_definition_is_not_a_new_version(registry: WorkspaceRegistry) -> None:
    first, new = registry.datasets.register("raw_dataset", definition(), datastore_exists=registry.has_datastore)
    assert new and first.version == 1
    again, new = registry.datasets.register("raw_dataset", definition(), create_new_version=True)
    assert not new and again.id == first.id
    with pytest.raises(ConflictError, match="create_new_version=True"):
        registry.datasets.register("raw_dataset", definition("other/*.csv"))
    second, new = registry.datasets.register("raw_dataset", definition("other/*.csv"), create_new_version=True)
    assert new and second.version == 2 and second.id != first.id
    assert registry.datasets.get("raw_dataset").version == 2
    assert registry.datasets.get("RAW_DATASET", 1).definition.paths[0].path == "data/**"
    assert registry.has_dataset("raw_dataset", None) and registry.has_dataset("raw_dataset", 2)
    assert not registry.has_dataset("raw_dataset", 3) and not registry.has_dataset("nope", None)
    with pytest.raises(NotFoundError, match="versions: 1, 2"):
        registry.datasets.get("raw_dataset", 7)
    assert [(d.name, d.version) for d in registry.datasets.list()] == [("raw_dataset", 2)]


def test_racing_registrations_get_distinct_versions(registry: WorkspaceRegistry) -> None:
    paths = [f"part{i}/**" for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda p: registry.datasets.register("racy", definition(p), create_new_version=True), paths)
        )
    assert sorted(r.version for r, _ in results) == [1, 2, 3, 4, 5, 6]


def test_a_dataset_on_an_unknown_datastore_is_refused_and_stores_nothing(registry: WorkspaceRegistry) -> None:
    bad = parse_definition({"kind": "File", "paths": [{"datastore": "missing", "path": "x/**"}]})
    with pytest.raises(BadRequestError) as caught:
        registry.datasets.register("orphan", bad, datastore_exists=registry.has_datastore)
    assert caught.value.target == "definition.paths[0].datastore"
    assert registry.datasets.versions("orphan") == []


# --- compute targets ----------------------------------------------------------------------------


def test_compute_targets_create_get_update_delete(registry: WorkspaceRegistry) -> None:
    assert registry.has_compute_target("local") and not registry.has_compute_target("aml-cluster")
    spec = parse_compute_spec({"vmSize": "STANDARD_DS11_V2", "maxNodes": 2})
    created, new = registry.compute_targets.create("aml-cluster", spec)
    assert new and created.spec.max_nodes == 2 and registry.has_compute_target("AML-Cluster")
    assert registry.compute_targets.create("aml-cluster", spec) == (registry.compute_targets.get("aml-cluster"), False)
    with pytest.raises(ConflictError):
        registry.compute_targets.create("aml-cluster", ComputeSpec(max_nodes=3))
    updated = registry.compute_targets.update("aml-cluster", {"maxNodes": 4}, etag=created.etag)
    assert updated.spec.max_nodes == 4 and updated.spec.vm_size == "STANDARD_DS11_V2"
    with pytest.raises(ConflictError, match="changed since"):  # the stale ETag loses
        registry.compute_targets.update("aml-cluster", {"maxNodes": 1}, etag=created.etag)
    assert registry.compute_targets.get("aml-cluster").spec.max_nodes == 4
    assert [c.name for c in registry.compute_targets.list()] == ["aml-cluster"]
    registry.compute_targets.delete("aml-cluster")
    registry.compute_targets.delete("aml-cluster")
    with pytest.raises(NotFoundError):
        registry.compute_targets.get("aml-cluster")


@pytest.mark.parametrize("etag", ["garbage", "W/\"datetime'nope'\"", "caf\u00e9", "\u20ac", "x" * 300])
def test_an_etag_that_is_no_etag_is_a_bad_request_naming_etag(registry: WorkspaceRegistry, etag: str) -> None:
    registry.compute_targets.create("aml-cluster", parse_compute_spec({"maxNodes": 2}))
    with pytest.raises((BadRequestError, ConflictError)) as caught:
        registry.compute_targets.update("aml-cluster", {"maxNodes": 3}, etag=etag)
    assert caught.value.target == "etag"
    assert registry.compute_targets.get("aml-cluster").spec.max_nodes == 2
