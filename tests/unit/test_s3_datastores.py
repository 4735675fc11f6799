"""S3 datastores without I/O: every rule of a registration body, the messages of the bucket check,
the clients the engine builds, and the SDK's view of an S3 datastore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore import UNSIGNED
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from amlpipe.core.datastore import AmazonS3Datastore, AzureBlobDatastore, Datastore
from amlpipe.data import _s3
from amlpipe.exceptions import ServiceException, UserErrorException
from shared.errors import BadRequestError
from shared.redaction import redact
from shared.registry import presign, s3
from shared.registry.datastore_spec import (
    BlobDatastoreSpec,
    S3DatastoreSpec,
    parse_blob_spec,
    parse_datastore_spec,
    parse_s3_spec,
)
from shared.registry.datastores import DatastoreRecord
from shared.registry.presign import PresignRequest, parse_presign_request

KEY_ID = "AKIAUNITTESTKEY00001"
SECRET = "unit/test+secret/abcdefghijklmnopqrstu"
S3 = {"datastoreType": "AmazonS3", "bucketName": "my-bucket", "accessKeyId": KEY_ID, "secretAccessKey": SECRET}


def parse(change: dict[str, Any]) -> S3DatastoreSpec | BlobDatastoreSpec:
    return parse_datastore_spec({k: v for k, v in {**S3, **change}.items() if v is not None})


# --- the registration body ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"bucketName": None}, "bucketName"),
        ({"bucketName": ""}, "bucketName"),
        ({"bucketName": 7}, "bucketName"),
        ({"bucketName": "ab"}, "bucketName"),
        ({"bucketName": "x" * 64}, "bucketName"),
        ({"bucketName": "Upper-case"}, "bucketName"),
        ({"bucketName": "under_score"}, "bucketName"),
        ({"bucketName": "-lead"}, "bucketName"),
        ({"bucketName": "trail-"}, "bucketName"),
        ({"bucketName": "trail."}, "bucketName"),
        ({"bucketName": "two..dots"}, "bucketName"),
        ({"bucketName": "192.168.5.4"}, "bucketName"),
        ({"bucketName": "xn--bucket"}, "bucketName"),
        ({"bucketName": "sthree-bucket"}, "bucketName"),
        ({"bucketName": "bucket-s3alias"}, "bucketName"),
        ({"bucketName": "bucket--ol-s3"}, "bucketName"),
        ({"bucketName": "bucket\n"}, "bucketName"),
        ({"endpointUrl": ""}, "endpointUrl"),
        ({"endpointUrl": "s3.amazonaws.com"}, "endpointUrl"),
        ({"endpointUrl": "http://s3.example.com"}, "endpointUrl"),
        ({"endpointUrl": "ftp://s3.example.com"}, "endpointUrl"),
        ({"endpointUrl": "https://s3.example.com/bucket"}, "endpointUrl"),
        ({"endpointUrl": "https://s3.example.com?x=1"}, "endpointUrl"),
        ({"endpointUrl": "https://user:pw@s3.example.com"}, "endpointUrl"),
        ({"endpointUrl": "https://s3.example.com\n"}, "endpointUrl"),
        ({"endpointUrl": "https://s3.example.com:0"}, "endpointUrl"),
        ({"endpointUrl": "https://s3.example.com:99999"}, "endpointUrl"),
        ({"endpointUrl": "https://169.254.169.254"}, "endpointUrl"),
        ({"endpointUrl": "https://10.1.2.3:9000"}, "endpointUrl"),
        ({"endpointUrl": "https://192.168.0.10"}, "endpointUrl"),
        ({"endpointUrl": "https://127.0.0.2"}, "endpointUrl"),
        ({"endpointUrl": "https://0.0.0.0"}, "endpointUrl"),
        ({"endpointUrl": "https://[fd00::1]"}, "endpointUrl"),
        ({"endpointUrl": "https://[::ffff:10.0.0.1]"}, "endpointUrl"),
        ({"endpointUrl": "https://minio"}, "endpointUrl"),
        ({"endpointUrl": "https://minio:9000"}, "endpointUrl"),
        ({"endpointUrl": "https://127.1"}, "endpointUrl"),
        ({"endpointUrl": "https://storage.internal"}, "endpointUrl"),
        ({"endpointUrl": "https://nas.local"}, "endpointUrl"),
        ({"endpointUrl": "https://evil.localhost"}, "endpointUrl"),
        ({"endpointUrl": "https://router.home.arpa"}, "endpointUrl"),
        ({"endpointUrl": "https://-bad.example.com"}, "endpointUrl"),
        ({"region": ""}, "region"),
        ({"region": "US-EAST-1"}, "region"),
        ({"region": "useast1"}, "region"),
        ({"region": "auto"}, "region"),  # AWS (no endpointUrl) has no region "auto"
        ({"region": "eu-west-1.evil.com"}, "region"),
        ({"region": "eu-west-1\n"}, "region"),
        ({"endpointUrl": "https://s3.example.com", "region": "has space"}, "region"),
        ({"endpointUrl": "https://s3.example.com", "region": "x" * 33}, "region"),
        ({"accessKeyId": None}, "accessKeyId"),
        ({"secretAccessKey": None}, "secretAccessKey"),
        ({"accessKeyId": ""}, "accessKeyId"),
        ({"accessKeyId": "ab"}, "accessKeyId"),
        ({"accessKeyId": "with space"}, "accessKeyId"),
        ({"accessKeyId": "AKIA\nINJECTED"}, "accessKeyId"),
        ({"accessKeyId": 12345}, "accessKeyId"),
        ({"secretAccessKey": ""}, "secretAccessKey"),
        ({"secretAccessKey": "with space"}, "secretAccessKey"),
        ({"secretAccessKey": "x" * 1025}, "secretAccessKey"),
        ({"secretAccessKey": ["a"]}, "secretAccessKey"),
        ({"createIfNotExists": "yes"}, "createIfNotExists"),
        ({"createIfNotExists": 1}, "createIfNotExists"),
        ({"containerName": "abc"}, "containerName"),
        ({"accountKey": "a2V5"}, "accountKey"),
        ({"bucket": "typo"}, "bucket"),
    ],
)
def test_each_bad_field_of_an_s3_body_is_a_400_naming_it(change: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse(change)
    assert caught.value.target == target
    assert SECRET not in caught.value.message and KEY_ID not in caught.value.message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, S3DatastoreSpec("my-bucket", None, None, KEY_ID, SECRET)),
        ({"bucketName": "a.b-c.0"}, S3DatastoreSpec("a.b-c.0", None, None, KEY_ID, SECRET)),
        ({"bucketName": "x" * 63}, S3DatastoreSpec("x" * 63, None, None, KEY_ID, SECRET)),
        ({"region": "eu-central-2"}, S3DatastoreSpec("my-bucket", None, "eu-central-2", KEY_ID, SECRET)),
        ({"region": "us-gov-west-1"}, S3DatastoreSpec("my-bucket", None, "us-gov-west-1", KEY_ID, SECRET)),
        (
            {"endpointUrl": "https://acct.r2.cloudflarestorage.com/", "region": "auto"},
            S3DatastoreSpec("my-bucket", "https://acct.r2.cloudflarestorage.com", "auto", KEY_ID, SECRET),
        ),
        (
            {"endpointUrl": "https://s3.us-west-004.backblazeb2.com:443", "region": "us-west-004"},
            S3DatastoreSpec("my-bucket", "https://s3.us-west-004.backblazeb2.com:443", "us-west-004", KEY_ID, SECRET),
        ),
        ({"endpointUrl": "https://8.8.8.8"}, S3DatastoreSpec("my-bucket", "https://8.8.8.8", None, KEY_ID, SECRET)),
        # Loopback: accepted here; the store allows it only when the app runs on Azurite.
        (
            {"endpointUrl": "http://127.0.0.1:5000"},
            S3DatastoreSpec("my-bucket", "http://127.0.0.1:5000", None, KEY_ID, SECRET),
        ),
        (
            {"endpointUrl": "http://localhost:9000"},
            S3DatastoreSpec("my-bucket", "http://localhost:9000", None, KEY_ID, SECRET),
        ),
        ({"endpointUrl": "http://[::1]:9000"}, S3DatastoreSpec("my-bucket", "http://[::1]:9000", None, KEY_ID, SECRET)),
        ({"accessKeyId": None, "secretAccessKey": None}, S3DatastoreSpec("my-bucket")),
        (
            {"createIfNotExists": True, "overwrite": True},
            S3DatastoreSpec("my-bucket", None, None, KEY_ID, SECRET, True),
        ),
    ],
)
def test_valid_s3_bodies(change: dict[str, Any], expected: S3DatastoreSpec) -> None:
    assert parse(change) == expected


def test_the_key_pair_is_never_in_a_specs_repr_and_credential_type_says_which_kind() -> None:
    spec = parse({})
    assert isinstance(spec, S3DatastoreSpec) and spec.credential_type == "AccessKey"
    assert SECRET not in repr(spec) and KEY_ID not in repr(spec) and "my-bucket" in repr(spec)
    anonymous = parse({"accessKeyId": None, "secretAccessKey": None})
    assert isinstance(anonymous, S3DatastoreSpec) and anonymous.credential_type == "None"
    assert anonymous.signing_region == "us-east-1" and anonymous.where == "AWS S3 (us-east-1)"


def test_datastore_type_picks_the_parser_and_names_the_valid_values() -> None:
    assert isinstance(parse_datastore_spec({"containerName": "abc", "accountName": "abc"}), BlobDatastoreSpec)
    blob = {"datastoreType": "AzureBlob", "containerName": "abc", "accountName": "abc", "accountKey": "a2V5"}
    assert parse_datastore_spec(blob) == parse_blob_spec(blob)
    assert isinstance(parse_datastore_spec(S3), S3DatastoreSpec) and parse_s3_spec(S3) == parse_datastore_spec(S3)
    for kind in ("AzureFile", "amazons3", 3, None, ["AmazonS3"], "x" * 5000):
        with pytest.raises(BadRequestError) as caught:
            parse_datastore_spec({**S3, "datastoreType": kind})
        assert caught.value.target == "datastoreType"
        assert "'AzureBlob', 'AmazonS3'" in caught.value.message and len(caught.value.message) < 300
    # An S3 body that forgot its type is told so, rather than "unknown field bucketName".
    with pytest.raises(BadRequestError, match="set 'datastoreType' to 'AmazonS3'") as caught:
        parse_datastore_spec({k: v for k, v in S3.items() if k != "datastoreType"})
    assert caught.value.target == "datastoreType"


# --- the bucket check's messages ----------------------------------------------------------------


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"signed https://x/?X-Amz-Signature=abc {SECRET}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "HeadBucket",
    )


@pytest.mark.parametrize(
    ("status", "code", "target", "says"),
    [
        (404, "404", "bucketName", "does not exist"),
        (404, "NoSuchBucket", "bucketName", "create_if_not_exists=True"),
        (403, "403", "accessKeyId", "check accessKeyId and secretAccessKey"),
        (403, "InvalidAccessKeyId", "accessKeyId", "InvalidAccessKeyId, HTTP 403"),
        (403, "SignatureDoesNotMatch", "accessKeyId", "refused the access key"),
        (403, "AccessDenied", "accessKeyId", "may use the bucket"),
        (301, "301", "region", "not in region 'us-east-1'"),
        (400, "AuthorizationHeaderMalformed", "region", "give the bucket's region"),
        (400, "IllegalLocationConstraintException", "region", "region"),
        (400, "InvalidBucketName", "bucketName", "refused the name"),
        (503, "SlowDown", "endpointUrl", "try again later"),
        (500, "500", "endpointUrl", "HTTP 500"),
        (400, "SomethingElse", "bucketName", "SomethingElse, HTTP 400"),
        (418, "<script>alert(1)</script>", "bucketName", "(HTTP 418)"),
    ],
)
def test_a_refused_bucket_check_names_the_field_the_datastore_and_the_bucket(
    status: int, code: str, target: str, says: str
) -> None:
    spec = S3DatastoreSpec("my-bucket", "https://s3.example.com", None, KEY_ID, SECRET)
    error = s3._refused("s3_data", spec, client_error(status, code))
    assert error.target == target and says in error.message, error.message
    assert "s3_data" in error.message and "my-bucket" in error.message
    assert SECRET not in error.message and KEY_ID not in error.message
    assert "X-Amz-Signature" not in error.message and "<script>" not in error.message


def test_a_bucket_refusing_anonymous_access_asks_for_a_key_pair() -> None:
    error = s3._refused("s3_public", S3DatastoreSpec("my-bucket"), client_error(403, "AccessDenied"))
    assert error.target == "accessKeyId" and "anonymous access" in error.message
    assert "AWS S3 (us-east-1)" in error.message


@pytest.mark.parametrize(
    ("exc", "target"),
    [
        (EndpointConnectionError(endpoint_url="https://s3.example.com/my-bucket"), "endpointUrl"),
        (ConnectTimeoutError(endpoint_url="https://s3.example.com/my-bucket"), "endpointUrl"),
        (ReadTimeoutError(endpoint_url="https://s3.example.com/my-bucket"), "endpointUrl"),
        (ParamValidationError(report="bad"), "bucketName"),
    ],
)
def test_an_unreachable_service_is_a_400_naming_endpoint_url(exc: Exception, target: str) -> None:
    spec = S3DatastoreSpec("my-bucket", "https://s3.example.com", None, KEY_ID, SECRET)
    error = s3._unreachable("s3_data", spec, exc)  # type: ignore[arg-type]
    assert error.target == target and "s3_data" in error.message and type(exc).__name__ in error.message
    assert SECRET not in error.message


# --- the engine's clients -----------------------------------------------------------------------


class _Body:
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield b""


def sent(client: Any, call: Callable[[Any], object]) -> AWSPreparedRequest:
    """The request ``call`` makes with ``client``, answered 200 by a hook instead of the network."""
    requests: list[AWSPreparedRequest] = []

    def answer(request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        requests.append(request)
        return AWSResponse(request.url, 200, {}, _Body())

    client.meta.events.register("before-send.s3", answer)
    try:
        call(client)
    finally:
        client.close()
    return requests[0]


@pytest.fixture
def ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own AWS settings, which a datastore's client must never use."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENTAPPKEY001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://ambient.example.com")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://ambient-s3.example.com")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")


def test_a_client_signs_with_the_datastores_key_at_its_endpoint_path_style(ambient_aws: None) -> None:
    spec = S3DatastoreSpec("my-bucket", "https://s3.example.com:9000", "auto", KEY_ID, SECRET)
    request = sent(s3.s3_client(spec), lambda c: c.head_bucket(Bucket="my-bucket"))
    assert request.url == "https://s3.example.com:9000/my-bucket"
    authorization = request.headers["Authorization"].decode()
    assert f"Credential={KEY_ID}/" in authorization and "/auto/s3/" in authorization


def test_a_client_without_a_key_pair_sends_unsigned_requests_not_the_apps_identity(ambient_aws: None) -> None:
    client = s3.s3_client(S3DatastoreSpec("my-bucket"))
    assert client.meta.config.signature_version is UNSIGNED
    request = sent(client, lambda c: c.head_bucket(Bucket="my-bucket"))
    assert "Authorization" not in request.headers
    assert request.url == "https://my-bucket.s3.amazonaws.com/"  # AWS, us-east-1: not the app's endpoint or region


def test_clients_of_two_datastores_from_the_shared_session_each_sign_with_their_own_key(ambient_aws: None) -> None:
    other_key = "AKIAOTHERDATASTORE01"
    first = s3.s3_client(S3DatastoreSpec("bucket-one", "https://s3.example.com", None, KEY_ID, SECRET))
    second = s3.s3_client(S3DatastoreSpec("bucket-two", "https://s3.example.com", None, other_key, "other-secret"))
    anonymous = s3.s3_client(S3DatastoreSpec("bucket-three", "https://s3.example.com"))
    assert (
        f"Credential={KEY_ID}/"
        in sent(first, lambda c: c.head_bucket(Bucket="bucket-one")).headers["Authorization"].decode()
    )
    assert (
        f"Credential={other_key}/"
        in sent(second, lambda c: c.head_bucket(Bucket="bucket-two")).headers["Authorization"].decode()
    )
    assert "Authorization" not in sent(anonymous, lambda c: c.head_bucket(Bucket="bucket-three")).headers


def test_clients_have_bounded_timeouts_and_standard_retries() -> None:
    spec = S3DatastoreSpec("my-bucket", None, "eu-west-1", KEY_ID, SECRET)
    for timeouts in (s3.CHECK, s3.TRANSFER):
        client = s3.s3_client(spec, timeouts=timeouts)
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (timeouts.connect, timeouts.read)
        assert config.retries == {"mode": "standard", "total_max_attempts": timeouts.attempts}
        assert client.meta.region_name == "eu-west-1"
        client.close()
    assert s3.CHECK.attempts < s3.TRANSFER.attempts and s3.CHECK.read < s3.TRANSFER.read


# --- records and the SDK ------------------------------------------------------------------------


def test_an_s3_record_shows_its_bucket_and_no_blob_fields_and_a_blob_record_is_unchanged() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    record = DatastoreRecord("s3_data", "", "", "https", "", "AccessKey", created, datastore_type="AmazonS3",
                             bucket_name="my-bucket", endpoint_url="https://s3.example.com", region="auto")  # fmt: skip
    assert record.to_json() == {
        "name": "s3_data",
        "datastoreType": "AmazonS3",
        "bucketName": "my-bucket",
        "endpointUrl": "https://s3.example.com",
        "region": "auto",
        "credentialType": "AccessKey",
        "isDefault": False,
        "createdTime": "2026-01-02T00:00:00+00:00",
    }
    blob = DatastoreRecord("blob_data", "training", "acct", "https", "core.windows.net", "AccountKey", created)
    assert set(blob.to_json()) == {
        "name", "datastoreType", "containerName", "accountName", "protocol", "endpoint", "credentialType",
        "isDefault", "createdTime",
    }  # fmt: skip


def test_the_sdk_reads_an_s3_datastore_as_amazon_s3_datastore_and_keeps_no_credential() -> None:
    body = {"name": "s3_data", "datastoreType": "AmazonS3", "bucketName": "my-bucket", "endpointUrl": None,
            "region": "eu-west-1", "credentialType": "AccessKey", "isDefault": False}  # fmt: skip
    store = Datastore._from_json(None, body)
    assert isinstance(store, AmazonS3Datastore) and store.datastore_type == "AmazonS3"
    assert (store.bucket_name, store.endpoint_url, store.region) == ("my-bucket", None, "eu-west-1")
    assert repr(store) == "AmazonS3Datastore(name='s3_data', bucket_name='my-bucket')"
    assert not any("key" in attr or "secret" in attr for attr in vars(store))
    reference = store.path("data/in")
    assert reference.datastore_name == "s3_data" and reference.path_on_datastore == "data/in"
    blob = Datastore._from_json(None, {"name": "b", "containerName": "c", "accountName": "a"})
    assert isinstance(blob, AzureBlobDatastore) and repr(blob) == "AzureBlobDatastore(name='b', container_name='c')"


def test_the_sdk_datastore_module_exports_the_s3_type() -> None:
    import amlpipe.core.datastore as module

    assert module.__all__ == ["AmazonS3Datastore", "AzureBlobDatastore", "Datastore"]


# --- presigned URLs: the request rules, the SDK's size check and its messages -----------------------


def test_a_presign_read_request_defaults_to_the_whole_bucket_one_full_page_at_a_time() -> None:
    assert parse_presign_request({}) == PresignRequest("read", prefix="", page_size=1000)
    request = parse_presign_request({"prefix": "./data//train/", "pageSize": 10, "continuationToken": "abc"})
    assert (request.prefix, request.page_size, request.continuation_token) == ("data/train/", 10, "abc")


def test_a_presign_write_request_keeps_its_names_and_the_writer_run() -> None:
    run_id = "1b7e7a4c-0000-4000-8000-000000000001"
    request = parse_presign_request({"permission": "write", "names": ["a.csv", "d/b.csv"], "runId": run_id})
    assert (request.names, request.overwrite, request.run_id) == (("a.csv", "d/b.csv"), False, run_id)


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"permission": "list"}, "permission"),
        ({"prefix": "/etc"}, "prefix"),
        ({"prefix": "a\\b"}, "prefix"),
        ({"prefix": 7}, "prefix"),
        ({"pageSize": 1001}, "pageSize"),
        ({"pageSize": True}, "pageSize"),
        ({"continuationToken": ""}, "continuationToken"),
        ({"continuationToken": "a\nb"}, "continuationToken"),
        ({"overwrite": True}, "overwrite"),  # a write field on a read
        ({"permission": "write"}, "names"),
        ({"permission": "write", "names": ["x"] * 1001}, "names"),
        ({"permission": "write", "names": [""]}, "names[0]"),
        ({"permission": "write", "names": ["a", "./b"]}, "names[1]"),
        ({"permission": "write", "names": ["a//b"]}, "names[0]"),
        ({"permission": "write", "names": ["é" * 600]}, "names[0]"),
        ({"permission": "write", "names": ["a"], "runId": "1B7E7A4C-0000-4000-8000-00000000000"}, "runId"),
        ({"permission": "write", "names": ["a"], "prefix": "x"}, "prefix"),
    ],
)
def test_a_bad_presign_request_names_its_field(body: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_presign_request(body)
    assert caught.value.target == target


def test_files_over_five_gib_are_refused_before_anything_is_uploaded(tmp_path: Path) -> None:
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"x")
    with open(large, "wb") as handle:  # sparse: no 5 GiB written
        handle.truncate(_s3.MAX_SINGLE_PUT + 1)
    _s3.check_sizes([(small, "small.bin")])
    with pytest.raises(UserErrorException, match="larger than 5 GiB"):
        _s3.check_sizes([(small, "small.bin"), (large, "large.bin")])


def s3_answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    response.url = "http://127.0.0.1:9/bucket/a.csv?X-Amz-Signature=deadbeef"
    return response


@pytest.mark.parametrize(
    ("status", "body", "kind", "expected"),
    [
        (403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
         UserErrorException, "refused to download 'a.csv' on datastore 's3_data' (AccessDenied, HTTP 403)"),
        (404, b"<Error><Code>NoSuchKey</Code></Error>", UserErrorException, "(NoSuchKey, HTTP 404)"),
        (503, b"<Error><Code>SlowDown</Code></Error>", ServiceException, "(SlowDown, HTTP 503)"),
        (500, b"<html>oops", ServiceException, "the S3 service failed (HTTP 500)"),
        (403, b"<Error><Code>Access Denied<script></Code></Error>", UserErrorException, "(HTTP 403)"),
    ],
)  # fmt: skip
def test_an_s3_refusal_names_datastore_object_and_code_but_never_the_signed_url(
    status: int, body: bytes, kind: type[Exception], expected: str
) -> None:
    files = _s3.S3Files(None, "s3_data")  # type: ignore[arg-type]  # no request is made
    error = files._refused("download", "a.csv", s3_answer(status, body))
    assert type(error) is kind and expected in str(error)
    assert "Signature" not in str(error) and "127.0.0.1" not in str(error)


@pytest.mark.parametrize(
    ("region", "endpoint", "bucket", "host"),
    [
        (None, None, "my-bucket", "https://my-bucket.s3.amazonaws.com/"),
        ("eu-west-1", None, "my-bucket", "https://my-bucket.s3.eu-west-1.amazonaws.com/"),
        ("eu-central-1", None, "my-bucket", "https://my-bucket.s3.eu-central-1.amazonaws.com/"),
        ("us-east-1", None, "my.bucket", "https://s3.amazonaws.com/my.bucket/"),
        (None, "https://s3.example.com", "my-bucket", "https://s3.example.com/my-bucket/"),
        ("auto", "https://acct.r2.cloudflarestorage.com", "my-bucket", "https://acct.r2.cloudflarestorage.com/my-bucket/"),
    ],
)  # fmt: skip
def test_presigned_urls_are_sigv4_on_the_buckets_own_host_with_the_condition_and_writer_signed(
    region: str | None, endpoint: str | None, bucket: str, host: str
) -> None:
    spec = S3DatastoreSpec(bucket, endpoint_url=endpoint, region=region, access_key_id=KEY_ID, secret_access_key=SECRET)
    with s3.BucketAccess("s3_data", bucket, s3.s3_client(spec)) as access:
        url = presign._sign(
            access, "put_object", {"Key": "a b/c.csv", "IfNoneMatch": "*", "Metadata": {"amlpipe_run_id": "r"}}, 3600
        )
        read = presign._sign(access, "get_object", {"Key": "a b/c.csv"}, 3600)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(host + "a%20b/c.csv?") and read.startswith(host)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "Signature" not in query  # never SigV2
    assert query["X-Amz-SignedHeaders"] == ["host;if-none-match;x-amz-meta-amlpipe_run_id"]
    assert not any("checksum" in name.lower() for name in query) and SECRET not in url


def test_a_sigv2_signature_is_redacted_too() -> None:
    text = "GET https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=abc%2Bdef failed"
    assert redact(text) == "GET https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=REDACTED failed"
