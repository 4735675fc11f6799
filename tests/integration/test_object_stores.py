"""The object-store contract (``shared/orchestration/objects.py``), one suite run against a blob container
on Azurite and an S3 bucket on moto's server over HTTP: listing, reads guarded by ETags, atomic writes
of any size with bounded chunks, and the errors that name datastore and path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.storage.blob import ContainerClient

from shared.orchestration.objects import (
    BLOCK,
    CHUNK,
    MULTIPART_CHUNK,
    BlobObjects,
    DatastoreError,
    ObjectStore,
    Problem,
    S3Objects,
)
from shared.registry.datastore_spec import S3DatastoreSpec
from shared.registry.s3 import BucketAccess, s3_client
from shared.storage import StorageClients
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

MB = 1024 * 1024


@dataclass
class Place:
    """A store of each kind, and a second one whose container or bucket does not exist."""

    store: ObjectStore
    missing: ObjectStore

    def close(self) -> None:
        self.store.close()
        self.missing.close()


def _blob(clients: StorageClients, name: str) -> BlobObjects:
    return BlobObjects(
        "blobs",
        ContainerClient(clients.blobs.url, name, credential=clients.blobs.credential, **BlobObjects.client_options()),
    )


def _s3(moto: MotoS3, bucket: str) -> S3Objects:
    spec = S3DatastoreSpec(bucket, moto.endpoint_url, None, TEST_KEY_ID, TEST_SECRET)
    return S3Objects(BucketAccess("buckets", bucket, s3_client(spec)))


@pytest.fixture(params=["blob", "s3"])
def place(request: pytest.FixtureRequest, storage: str, moto_s3: MotoS3) -> Iterator[Place]:
    gone = f"gone-{uuid.uuid4().hex[:10]}"
    if request.param == "blob":
        with StorageClients.from_connection_string(storage) as clients:
            name = f"objects-{uuid.uuid4().hex[:10]}"
            clients.blobs.create_container(name)
            opened = Place(_blob(clients, name), _blob(clients, gone))
            try:
                yield opened
            finally:
                opened.close()
    else:
        opened = Place(_s3(moto_s3, moto_s3.create_bucket("objects")), _s3(moto_s3, gone))
        try:
            yield opened
        finally:
            opened.close()


def put(store: ObjectStore, name: str, data: bytes) -> str | None:
    return store.write(name, [data], size=len(data), metadata={"amlpipe_run_id": "contract"})


def test_listing_is_in_name_order_with_quoted_etags_and_sizes_under_a_prefix(place: Place) -> None:
    store = place.store
    for name, data in {"d/b.txt": b"bb", "d/a.txt": b"a", "d/sub/c.txt": b"ccc", "d-not/x": b"x"}.items():
        put(store, name, data)
    listed = list(store.list("d/"))
    assert [(o.name, o.size) for o in listed] == [("d/a.txt", 1), ("d/b.txt", 2), ("d/sub/c.txt", 3)]
    assert all(o.etag.startswith('"') and o.etag.endswith('"') for o in listed)
    assert [o.name for o in store.list("")][-1] == "d/sub/c.txt" and len(list(store.list(""))) == 4
    assert store.get("d/a.txt") == listed[0]
    assert store.get("d") is None and store.get("d/none") is None
    assert store.exists() and not place.missing.exists()


@pytest.mark.parametrize("size", [0, 1, BLOCK + 1, 2 * MULTIPART_CHUNK + 3])
def test_a_write_of_any_size_reads_back_in_bounded_chunks_with_its_metadata(place: Place, size: int) -> None:
    store = place.store
    data = os.urandom(size)
    pieces = [data[i : i + 700_000] for i in range(0, size, 700_000)]  # uneven source chunks
    for known in (size, None):  # the size from a listing, or none
        name = f"w/{size}-{known}.bin"
        etag = store.write(name, iter(pieces), size=known, metadata={"amlpipe_run_id": "contract"})
        found = store.get(name)
        assert found is not None and found.size == size
        if etag is not None:
            assert etag == found.etag
        chunks = list(store.read(name, etag=found.etag))
        assert b"".join(chunks) == data and all(len(c) <= CHUNK for c in chunks)


def test_a_read_is_refused_once_the_object_changed_or_went(place: Place) -> None:
    store = place.store
    put(store, "r/a.txt", b"old")
    found = store.get("r/a.txt")
    assert found is not None
    put(store, "r/a.txt", b"new")
    with pytest.raises(Exception) as changed:  # a storage fault (retryable), never the new bytes
        b"".join(store.read("r/a.txt", etag=found.etag))
    assert not isinstance(changed.value, DatastoreError)
    # Gone after listing: S3 says so (404), Blob answers the guarded read with 412 (a retry lists again,
    # and then names the missing path).
    with pytest.raises(Exception) as gone:
        b"".join(store.read("r/none.txt", etag=found.etag))
    if isinstance(gone.value, DatastoreError):
        assert gone.value.problem is Problem.MISSING_OBJECT
        assert "path 'r/none.txt' on datastore" in gone.value.message


def test_an_error_of_the_source_reaches_the_writer_unchanged_and_nothing_is_written(place: Place) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(MULTIPART_CHUNK + 1)  # a part (or block) is on its way
        raise LookupError("the source broke")

    with pytest.raises(LookupError, match="the source broke"):
        place.store.write("broken.bin", broken(), size=3 * MULTIPART_CHUNK, metadata={})
    assert place.store.get("broken.bin") is None


def test_a_missing_container_or_bucket_is_named_when_reading_and_writing(place: Place) -> None:
    missing = place.missing
    with pytest.raises(DatastoreError) as listing:
        list(missing.list("p/"))
    assert listing.value.problem is Problem.MISSING_STORE and not listing.value.writing
    where = f"path 'p/' on datastore '{missing.datastore}' ({missing.kind} '{missing.name}')"
    assert listing.value.message == f"cannot read {where}: the {missing.kind} does not exist."
    with pytest.raises(DatastoreError) as writing:
        put(missing, "p/a.txt", b"a")
    assert writing.value.problem is Problem.MISSING_STORE and writing.value.writing
    assert writing.value.message.startswith(f"cannot write path 'p/a.txt' on datastore '{missing.datastore}'")
