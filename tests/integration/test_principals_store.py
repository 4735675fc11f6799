"""The principal store, the key store and the bootstrap on a real Azurite."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from shared import storage as engine_storage
from shared.auth import PrincipalStore, Role, keystore
from shared.auth.bootstrap import bootstrap
from shared.auth.principals import TABLE
from shared.errors import NotFoundError

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(storage: str, unique: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": storage, "AMLPIPE_TABLE_PREFIX": f"t{unique}"}


@pytest.fixture
def clients(settings: dict[str, str]) -> Iterator[engine_storage.StorageClients]:
    with engine_storage.StorageClients.from_settings(settings) as opened:
        yield opened


@pytest.fixture
def store(clients: engine_storage.StorageClients, settings: dict[str, str]) -> PrincipalStore:
    return PrincipalStore(clients.tables, table_name=engine_storage.table_name(TABLE, settings))


def test_table_name_takes_the_prefix_and_refuses_invalid_names(unique: str) -> None:
    assert engine_storage.table_name(TABLE, {"AMLPIPE_TABLE_PREFIX": f"t{unique}"}) == f"t{unique}amlpipeprincipals"
    assert engine_storage.table_name(TABLE, {}) == "amlpipeprincipals"
    with pytest.raises(ValueError, match="AMLPIPE_TABLE_PREFIX"):
        engine_storage.table_name(TABLE, {"AMLPIPE_TABLE_PREFIX": "bad-prefix"})


def test_create_get_list_delete(store: PrincipalStore) -> None:
    owner, _ = store.create_principal(display_name="ci", role=Role.OWNER, created_by="bootstrap")
    reader, _ = store.create_principal(display_name="dash", role=Role.READER, created_by=owner.id)
    assert store.get_principal(reader.id) == reader
    assert {p.id for p in store.list_principals()} == {owner.id, reader.id}
    assert reader.created_by == owner.id and reader.role is Role.READER and not reader.disabled
    store.delete_principal(reader.id)
    store.delete_principal(reader.id)  # idempotent
    store.delete_principal("not-a-guid")
    assert store.find_principal(reader.id) is None
    with pytest.raises(NotFoundError, match=reader.id):
        store.get_principal(reader.id)


def test_authenticate_accepts_only_the_right_secret_of_an_enabled_principal(store: PrincipalStore) -> None:
    principal, secret = store.create_principal(display_name="x", role=Role.OPERATOR, created_by="t")
    assert store.authenticate(principal.id, secret) == principal
    assert store.authenticate(principal.id.upper(), secret) == principal
    assert store.authenticate(principal.id, secret + "x") is None
    assert store.authenticate("6f1c2d7e-8a4b-4c1e-9f00-1234567890ab", secret) is None
    assert store.authenticate("' or 1 eq 1", secret) is None
    table = store._client()
    table.update_entity({"PartitionKey": principal.id, "RowKey": "principal", "Disabled": True})
    assert store.authenticate(principal.id, secret) is None
    assert store.get_principal(principal.id).disabled


def test_each_principal_is_its_own_partition_so_no_partition_is_hot(store: PrincipalStore) -> None:
    first, _ = store.create_principal(display_name="a", role=Role.OWNER, created_by="t")
    second, _ = store.create_principal(display_name="b", role=Role.READER, created_by="t")
    partitions = {e["PartitionKey"] for e in store._client().list_entities(select=["PartitionKey"])}
    assert partitions == {first.id, second.id}
    assert [p.id for p in store.list_principals()] == [
        p.id for p in sorted([first, second], key=lambda p: (p.created_time, p.id))
    ]


def test_the_table_holds_no_plaintext_secret(store: PrincipalStore, storage: str) -> None:
    principal, secret = store.create_principal(display_name="x", role=Role.OWNER, created_by="t")
    with TableServiceClient.from_connection_string(storage) as service:
        entity = service.get_table_client(store.table_name).get_entity(principal.id, "principal")
    stored = json.dumps({k: str(v) for k, v in entity.items()})
    assert secret not in stored
    assert set(entity) >= {"SecretHash", "SecretSalt", "ScryptN", "Role", "DisplayName", "CreatedTime", "Disabled"}


def test_listing_never_returns_hashes(store: PrincipalStore) -> None:
    store.create_principal(display_name="x", role=Role.OWNER, created_by="t")
    listed = [p.to_json() for p in store.list_principals()]
    assert listed and all(
        set(p) == {"id", "displayName", "role", "createdTime", "createdBy", "disabled"} for p in listed
    )


def test_prefixes_keep_tables_apart(clients: engine_storage.StorageClients, unique: str) -> None:
    first = PrincipalStore(clients.tables, table_name=f"a{unique}{TABLE}")
    second = PrincipalStore(clients.tables, table_name=f"b{unique}{TABLE}")
    created, _ = first.create_principal(display_name="x", role=Role.OWNER, created_by="t")
    assert second.find_principal(created.id) is None and second.list_principals() == []


def test_concurrent_first_starts_agree_on_the_signing_key(clients: engine_storage.StorageClients, unique: str) -> None:
    container = f"secrets-{unique}"
    barrier = threading.Barrier(8)

    def first_start(_: int) -> bytes:
        barrier.wait()
        return keystore.signing_key(clients.blobs, {}, container=container)

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(first_start, range(8)))
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert keystore.tenant_id(clients.blobs, {}, container=container) == keystore.tenant_id(
        clients.blobs, {}, container=container
    )


def test_the_signing_key_setting_overrides_the_stored_key(clients: engine_storage.StorageClients, unique: str) -> None:
    key = keystore.signing_key(clients.blobs, {"AMLPIPE_TOKEN_SIGNING_KEY": "k" * 32}, container=f"s-{unique}")
    assert key == b"k" * 32
    with pytest.raises(Exception, match="at least 32 bytes"):
        keystore.signing_key(clients.blobs, {"AMLPIPE_TOKEN_SIGNING_KEY": "short"}, container=f"s-{unique}")


def test_the_secrets_container_is_private(clients: engine_storage.StorageClients, unique: str) -> None:
    keystore.signing_key(clients.blobs, {}, container=f"p-{unique}")
    assert clients.blobs.get_container_client(f"p-{unique}").get_container_access_policy()["public_access"] is None


def test_bootstrap_writes_an_owner_config_once(settings: dict[str, str], store: PrincipalStore, tmp_path: Path) -> None:
    path = tmp_path / ".amlpipe" / "config.json"
    first = bootstrap(path, endpoint="http://localhost:7071", settings=settings)
    config = json.loads(path.read_text())
    assert first.created and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert set(config) == {"endpoint", "tenant_id", "service_principal_id", "service_principal_password"}
    principal = store.authenticate(config["service_principal_id"], config["service_principal_password"])
    assert principal is not None and principal.role is Role.OWNER and principal.created_by == "bootstrap"

    again = bootstrap(path, endpoint="http://localhost:7071", settings=settings)
    assert not again.created and json.loads(path.read_text()) == config


def test_bootstrap_replaces_a_config_whose_principal_is_gone(
    settings: dict[str, str], store: PrincipalStore, tmp_path: Path
) -> None:
    path = tmp_path / "config.json"
    bootstrap(path, endpoint="http://e", settings=settings)
    old = json.loads(path.read_text())
    store.delete_principal(old["service_principal_id"])
    assert bootstrap(path, endpoint="http://e", settings=settings).created
    assert json.loads(path.read_text())["service_principal_id"] != old["service_principal_id"]
