"""The model store on a real Azurite: two-phase registration, versions, races, immutability, deletes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobClient

from shared import storage as engine_storage
from shared.errors import BadRequestError, NotFoundError
from shared.registry import models
from shared.registry.model_spec import ModelMetadata
from shared.registry.models import ModelStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(storage: str, unique: str) -> Iterator[ModelStore]:
    settings = {"AzureWebJobsStorage": storage, "AMLPIPE_TABLE_PREFIX": f"m{unique}"}
    with engine_storage.StorageClients.from_settings(settings) as clients:
        yield ModelStore(clients.tables, clients.blobs, settings=settings)


def upload(store: ModelStore, name: str, files: dict[str, bytes]) -> str:
    ticket = store.start_upload(name, list(files))
    for access in ticket.files:
        with BlobClient.from_blob_url(access.url) as blob:
            blob.upload_blob(files[access.path], overwrite=True)
    return ticket.upload_id


def register(store: ModelStore, name: str, files: dict[str, bytes], **meta: Any) -> int:
    record, new = store.commit(name, upload(store, name, files), ModelMetadata(**meta))
    assert new
    return record.version


def read(store: ModelStore, name: str, version: int) -> dict[str, bytes]:
    out = {}
    for access in store.files(store.get(name, version)):
        with BlobClient.from_blob_url(access.url) as blob:
            out[access.path] = blob.download_blob().readall()
    return out


def test_versions_count_from_1_and_latest_is_the_highest(store: ModelStore) -> None:
    assert register(store, "Diabetes", {"model.pkl": b"v1"}, tags={"stage": "dev"}) == 1
    assert register(store, "diabetes", {"m/a.bin": b"a", "m/sub/b.bin": b"b"}, run_id="run-1") == 2
    latest = store.get("DIABETES")
    assert (latest.name, latest.version, latest.id, latest.path) == ("Diabetes", 2, "Diabetes:2", "m")
    assert latest.prefix == "amlpipe-models/Diabetes/2" and latest.file_count == 2 and latest.size == 2
    assert read(store, "diabetes", 1) == {"model.pkl": b"v1"}
    assert read(store, "diabetes", 2) == {"m/a.bin": b"a", "m/sub/b.bin": b"b"}
    assert [m.id for m in store.list_models(tags=["stage"])] == ["Diabetes:1"]
    assert [m.id for m in store.list_models(run_id="run-1")] == ["Diabetes:2"]
    assert [m.id for m in store.list_models(latest=True, tags=["stage"])] == []
    with pytest.raises(NotFoundError, match="versions: 1, 2"):
        store.get("diabetes", 7)
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_racing_commits_get_distinct_versions(store: ModelStore) -> None:
    uploads = [upload(store, "raced", {"model.pkl": str(i).encode()}) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        made = list(pool.map(lambda u: store.commit("raced", u, ModelMetadata())[0].version, uploads))
    assert sorted(made) == [1, 2, 3, 4, 5, 6]
    contents = {read(store, "raced", v)["model.pkl"] for v in made}
    assert contents == {str(i).encode() for i in range(6)}


def test_a_retried_commit_returns_the_same_version(store: ModelStore) -> None:
    upload_id = upload(store, "again", {"model.pkl": b"x"})
    first, new = store.commit("again", upload_id, ModelMetadata())
    second, again = store.commit("again", upload_id, ModelMetadata())
    assert new and not again and first.version == second.version == 1
    assert [m.version for m in store.versions("again")] == [1]


def test_commit_refuses_missing_files_and_foreign_uploads(store: ModelStore) -> None:
    ticket = store.start_upload("partial", ["m/a", "m/b"])
    with BlobClient.from_blob_url(ticket.files[0].url) as blob:
        blob.upload_blob(b"a")
    with pytest.raises(BadRequestError, match="were not uploaded"):
        store.commit("partial", ticket.upload_id, ModelMetadata())
    with pytest.raises(BadRequestError, match="another model"):
        store.commit("other", ticket.upload_id, ModelMetadata())
    with pytest.raises(BadRequestError, match="unknown"):
        store.commit("partial", "f" * 32, ModelMetadata())
    assert store.versions("partial") == []


def test_upload_sas_is_write_only_for_its_one_blob(store: ModelStore) -> None:
    ticket = store.start_upload("scoped", ["model.pkl"])
    url = ticket.files[0].url
    with BlobClient.from_blob_url(url) as blob:
        blob.upload_blob(b"x")
        with pytest.raises(HttpResponseError):
            blob.download_blob().readall()
    other = url.replace("/files/model.pkl?", "/manifest.json?")
    with BlobClient.from_blob_url(other) as blob, pytest.raises((ClientAuthenticationError, HttpResponseError)):
        blob.upload_blob(b"{}", overwrite=True)


def test_committed_files_cannot_be_changed_with_the_upload_sas(store: ModelStore) -> None:
    ticket = store.start_upload("frozen", ["model.pkl"])
    with BlobClient.from_blob_url(ticket.files[0].url) as blob:
        blob.upload_blob(b"original")
    store.commit("frozen", ticket.upload_id, ModelMetadata())
    with BlobClient.from_blob_url(ticket.files[0].url) as blob:
        blob.upload_blob(b"changed", overwrite=True)  # the staging copy: nobody reads it any more
    assert read(store, "frozen", 1) == {"model.pkl": b"original"}
    readable = store.files(store.get("frozen", 1))[0]
    with BlobClient.from_blob_url(readable.url) as blob, pytest.raises(HttpResponseError):
        blob.upload_blob(b"changed", overwrite=True)


def test_delete_is_idempotent_and_numbers_are_never_reused(store: ModelStore) -> None:
    register(store, "gone", {"model.pkl": b"1"})
    register(store, "gone", {"model.pkl": b"2"})
    store.delete("gone", 2)
    store.delete("gone", 2)
    store.delete("gone", 9)
    store.delete("no-such-model", 1)
    assert [m.version for m in store.versions("gone")] == [1] and store.get("gone").version == 1
    with pytest.raises(NotFoundError):
        store.get("gone", 2)
    assert register(store, "gone", {"model.pkl": b"3"}) == 3


def test_files_over_the_synchronous_copy_limit_are_copied_asynchronously(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copy Blob From URL takes at most 256 MiB; a larger model file takes the asynchronous copy.
    # The limit is lowered so a small file goes that way on Azurite.
    monkeypatch.setattr(models, "SYNC_COPY_LIMIT", 4)
    version = register(store, "big", {"m/weights.bin": b"0123456789" * 100, "m/tiny": b"ok"})
    assert read(store, "big", version) == {"m/weights.bin": b"0123456789" * 100, "m/tiny": b"ok"}
