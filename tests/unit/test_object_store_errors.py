"""How the object stores classify what storage answers, and what a copy checks, without I/O: fakes in
place of the SDK clients (the contract suite, tests/integration/test_object_stores.py, runs the real ones)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from botocore.exceptions import ClientError

from shared.errors import AmlPipeError
from shared.orchestration.objects import BlobObjects, DatastoreError, Problem, S3Objects
from shared.orchestration.transfer import copy_object


def _http_error(status: int, code: str) -> HttpResponseError:
    error = (ClientAuthenticationError if code == "AuthenticationFailed" else HttpResponseError)(message=code)
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined] - as azure-storage sets it
    return error


class _Blob:
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def upload_blob(self, data: bytes, **_: Any) -> dict[str, Any]:
        return self.result


class _Container:
    """A ContainerClient whose requests fail with ``error`` (or succeed with ``result``)."""

    container_name = "c"

    def __init__(self, error: HttpResponseError | None = None, result: dict[str, Any] | None = None) -> None:
        self.error = error
        self.result = result or {}

    def list_blobs(self, **_: Any) -> Iterator[Any]:
        assert self.error is not None
        raise self.error

    def get_blob_client(self, name: str) -> _Blob:
        return _Blob(self.result)


def _blob_store(error: HttpResponseError | None = None, *, minted_sas: bool, **result: Any) -> BlobObjects:
    return BlobObjects("ds", _Container(error, result), minted_sas=minted_sas)  # type: ignore[arg-type]


def test_an_expiring_sas_of_ours_is_a_retryable_fault_and_a_refusal_is_the_user_s() -> None:
    expired = _http_error(403, "AuthenticationFailed")
    with pytest.raises(ClientAuthenticationError):  # propagates as the SDK's own error: retried
        list(_blob_store(expired, minted_sas=True).list("raw/"))
    # Without a SAS amlpipe minted (the app's own key, an anonymous container) it is a wrong credential.
    with pytest.raises(DatastoreError) as denied:
        list(_blob_store(expired, minted_sas=False).list("raw/"))
    assert denied.value.problem is Problem.DENIED
    for code in ("AuthorizationPermissionMismatch", "AuthorizationFailure"):
        with pytest.raises(DatastoreError) as refused:
            list(_blob_store(_http_error(403, code), minted_sas=True).list("raw/"))
        assert refused.value.problem is Problem.DENIED and "path 'raw/' on datastore 'ds'" in refused.value.message


class _S3Client:
    def __init__(self, code: str, status: int) -> None:
        self.error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    def get_object(self, **_: Any) -> dict[str, Any]:
        raise self.error

    def put_object(self, **_: Any) -> dict[str, Any]:
        return {}


class _Access:
    datastore = "s3ds"
    bucket_name = "b"

    def __init__(self, client: _S3Client) -> None:
        self.client = client

    def close(self) -> None:
        pass


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"])
def test_a_refused_s3_credential_stays_the_user_s_to_fix(code: str) -> None:
    store = S3Objects(_Access(_S3Client(code, 403)))  # type: ignore[arg-type]
    with pytest.raises(DatastoreError) as refused:
        list(store.read("k", etag='"e"'))
    assert refused.value.problem is Problem.DENIED and code in refused.value.seen


def test_a_write_without_an_etag_returns_none() -> None:
    assert _blob_store(minted_sas=False).write("a", [b"x"], size=1, metadata={}) is None
    assert _blob_store(minted_sas=False, etag='"0x1"').write("a", [b"x"], size=1, metadata={}) == '"0x1"'
    s3 = S3Objects(_Access(_S3Client("", 200)))  # type: ignore[arg-type]
    assert s3.write("a", [b"x"], size=1, metadata={}) is None


class _Source:
    datastore = "src"

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def where(self, path: str) -> str:
        return f"path {path!r} on datastore 'src'"

    def read(self, name: str, *, etag: str) -> Iterator[bytes]:
        yield from self.chunks


class _Destination:
    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    def write(self, name: str, chunks: Iterable[bytes], *, size: int | None, metadata: Mapping[str, str]) -> None:
        self.written[name] = b"".join(chunks)  # one request, as for a small object


@pytest.mark.parametrize(("listed", "read"), [(4, "more than 4"), (8, "6")])
def test_a_copy_whose_bytes_do_not_add_up_to_the_listed_size_fails_retryably(listed: int, read: str) -> None:
    destination = _Destination()
    with pytest.raises(AmlPipeError, match=f"listed with {listed} bytes, but {read} were read") as failed:
        copy_object(
            _Source([b"abc", b"def"]),
            "a",
            '"e"',
            destination,
            "b",
            size=listed,
            metadata={},  # type: ignore[arg-type]
        )
    assert type(failed.value) is AmlPipeError  # not a BadRequestError: the worker retries it
    assert destination.written == {}
    copied = copy_object(
        _Source([b"abc", b"def"]),
        "a",
        '"e"',
        destination,
        "b",
        size=6,
        metadata={},  # type: ignore[arg-type]
    )
    assert copied.size == 6 and destination.written == {"b": b"abcdef"}
