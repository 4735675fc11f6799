"""S3 datastores in the registry: registered on a real Azurite against moto's S3 server over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from shared import storage as engine_storage
from shared.errors import AmlPipeError, BadRequestError, ConflictError, NotFoundError
from shared.registry import DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.datastores import TABLE as DATASTORE_TABLE
from shared.registry.datastores import DatastoreStore, parse_datastore_spec
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(storage: str, unique: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": storage, "AMLPIPE_TABLE_PREFIX": f"s{unique}"}


@pytest.fixture
def clients(settings: dict[str, str]) -> Iterator[engine_storage.StorageClients]:
    with engine_storage.StorageClients.from_settings(settings) as opened:
        yield opened


@pytest.fixture
def registry(clients: engine_storage.StorageClients, settings: dict[str, str]) -> WorkspaceRegistry:
    return WorkspaceRegistry(clients.tables, clients.blobs, settings=settings)


def s3_body(moto_s3: MotoS3, bucket: str, **extra: object) -> dict[str, object]:
    return {
        "datastoreType": "AmazonS3",
        "bucketName": bucket,
        "endpointUrl": moto_s3.endpoint_url,
        "accessKeyId": TEST_KEY_ID,
        "secretAccessKey": TEST_SECRET,
        **extra,
    }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_s3_bucket_is_registered_and_shown_without_credentials(registry: WorkspaceRegistry, moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    record, written = registry.datastores.register("S3_Data", parse_datastore_spec(s3_body(moto_s3, bucket)))
    assert written and record.datastore_type == "AmazonS3" and record.name == "S3_Data"
    assert (record.bucket_name, record.endpoint_url, record.region) == (bucket, moto_s3.endpoint_url, None)
    assert record.credential_type == "AccessKey"
    shown = registry.datastores.get("s3_data").to_json()
    assert shown == {
        "name": "S3_Data",
        "datastoreType": "AmazonS3",
        "bucketName": bucket,
        "endpointUrl": moto_s3.endpoint_url,
        "region": None,
        "credentialType": "AccessKey",
        "isDefault": False,
        "createdTime": shown["createdTime"],
    }
    assert [d.name for d in registry.datastores.list()] == [DEFAULT_DATASTORE, "S3_Data"]
    assert registry.has_datastore("s3_DATA")


def test_registering_again_is_idempotent_and_a_change_needs_overwrite(
    registry: WorkspaceRegistry, moto_s3: MotoS3
) -> None:
    first, second = moto_s3.create_bucket(), moto_s3.create_bucket()
    spec = parse_datastore_spec(s3_body(moto_s3, first))
    registry.datastores.register("s3_data", spec)
    again, written = registry.datastores.register("S3_DATA", spec)
    assert not written and again.name == "s3_data"
    # Any difference is another definition: the bucket, the region, the key pair, or none at all.
    for change in (
        {"bucketName": second},
        {"region": "eu-west-1"},
        {"secretAccessKey": "another/secret"},
        {"accessKeyId": None, "secretAccessKey": None},
    ):
        body = {k: v for k, v in {**s3_body(moto_s3, first), **change}.items() if v is not None}
        with pytest.raises(ConflictError, match="overwrite=True") as caught:
            registry.datastores.register("s3_data", parse_datastore_spec(body))
        assert caught.value.target == "name" and TEST_SECRET not in caught.value.message
    assert registry.datastores.get("s3_data").bucket_name == first
    replaced, written = registry.datastores.register(
        "s3_data", parse_datastore_spec(s3_body(moto_s3, second)), overwrite=True
    )
    assert written and replaced.bucket_name == second
    # A blob datastore of the same name is another definition too.
    blob = parse_datastore_spec({"containerName": "abc", "accountName": "abc"})
    with pytest.raises(ConflictError):
        registry.datastores.register("s3_data", blob)
    changed, _ = registry.datastores.register("s3_data", blob, overwrite=True)
    assert changed.datastore_type == "AzureBlob" and changed.container_name == "abc"


def test_a_missing_bucket_is_a_400_naming_bucket_name_and_stores_nothing(
    registry: WorkspaceRegistry, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.bucket_name("missing")
    with pytest.raises(BadRequestError) as caught:
        registry.datastores.register("s3_missing", parse_datastore_spec(s3_body(moto_s3, bucket)))
    assert caught.value.target == "bucketName"
    assert bucket in caught.value.message and "s3_missing" in caught.value.message
    assert "create_if_not_exists" in caught.value.message and TEST_SECRET not in caught.value.message
    assert not registry.has_datastore("s3_missing") and not moto_s3.bucket_exists(bucket)


def test_create_if_not_exists_creates_the_bucket_and_then_registering_again_is_a_no_op(
    registry: WorkspaceRegistry, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.bucket_name("created")
    body = s3_body(moto_s3, bucket, createIfNotExists=True)
    _, written = registry.datastores.register("s3_new", parse_datastore_spec(body))
    assert written and moto_s3.bucket_exists(bucket)
    assert registry.datastores.register("s3_new", parse_datastore_spec(body))[1] is False
    # A bucket that exists already is fine with createIfNotExists too.
    _, written = registry.datastores.register("s3_again", parse_datastore_spec(body))
    assert written


def test_a_bucket_in_another_region_is_created_there(registry: WorkspaceRegistry, moto_s3: MotoS3) -> None:
    bucket = moto_s3.bucket_name("regional")
    body = s3_body(moto_s3, bucket, region="eu-west-1", createIfNotExists=True)
    record, _ = registry.datastores.register("s3_eu", parse_datastore_spec(body))
    assert record.region == "eu-west-1"
    client = moto_s3.client()
    try:
        assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    finally:
        client.close()


def test_wrong_credentials_are_a_400_naming_access_key_id_and_store_nothing(
    registry: WorkspaceRegistry, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.create_bucket()
    with moto_s3.enforce_auth() as (key_id, secret):
        for wrong_id, wrong_secret in ((key_id, "not/the+secret"), ("AKIAUNKNOWNKEY000000", secret)):
            body = s3_body(moto_s3, bucket, accessKeyId=wrong_id, secretAccessKey=wrong_secret)
            for create in (False, True):  # head_bucket, then create_bucket: both refuse
                name = moto_s3.bucket_name("refused") if create else bucket
                with pytest.raises(BadRequestError) as caught:
                    registry.datastores.register(
                        "s3_wrong", parse_datastore_spec({**body, "bucketName": name, "createIfNotExists": create})
                    )
                message = caught.value.message
                assert caught.value.target == "accessKeyId" and "s3_wrong" in message, message
                assert wrong_secret not in message and wrong_id not in message and secret not in message
        assert not registry.has_datastore("s3_wrong")
        # The right pair is accepted, and the engine's client works with it.
        registry.datastores.register("s3_right", parse_datastore_spec(s3_body(moto_s3, bucket, accessKeyId=key_id,
                                                                               secretAccessKey=secret)))  # fmt: skip
        with registry.datastores.bucket_access("s3_right") as access:
            access.client.put_object(Bucket=access.bucket_name, Key="a.txt", Body=b"signed")


def test_an_unreachable_endpoint_is_a_400_naming_endpoint_url(registry: WorkspaceRegistry, moto_s3: MotoS3) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BadRequestError) as caught:
        registry.datastores.register(
            "s3_nowhere", parse_datastore_spec(s3_body(moto_s3, "some-bucket", endpointUrl=endpoint))
        )
    assert caught.value.target == "endpointUrl" and endpoint in caught.value.message
    assert "s3_nowhere" in caught.value.message and TEST_SECRET not in caught.value.message
    assert not registry.has_datastore("s3_nowhere")


def test_the_key_pair_is_sealed_in_the_table_and_bound_to_its_row(
    registry: WorkspaceRegistry,
    moto_s3: MotoS3,
    clients: engine_storage.StorageClients,
    settings: dict[str, str],
) -> None:
    bucket = moto_s3.create_bucket()
    registry.datastores.register("s3_sealed", parse_datastore_spec(s3_body(moto_s3, bucket)))
    table = clients.tables.get_table_client(engine_storage.table_name(DATASTORE_TABLE, settings))
    entity = table.get_entity("s3_sealed", "datastore")
    raw = str(dict(entity))
    assert entity["DatastoreType"] == "AmazonS3" and entity["CredentialType"] == "AccessKey"
    assert entity["Credential"].startswith("v1:") and TEST_SECRET not in raw and TEST_KEY_ID not in raw
    table.create_entity({**dict(entity), "PartitionKey": "stolen", "Name": "stolen"})
    with pytest.raises(AmlPipeError, match="cannot be opened"):
        registry.datastores.bucket_access("stolen")


def test_bucket_access_hands_the_engine_a_working_client(registry: WorkspaceRegistry, moto_s3: MotoS3) -> None:
    bucket = moto_s3.create_bucket()
    registry.datastores.register("s3_data", parse_datastore_spec(s3_body(moto_s3, bucket)))
    with registry.datastores.bucket_access("S3_DATA") as access:
        assert (access.datastore, access.bucket_name) == ("s3_data", bucket)
        assert TEST_SECRET not in repr(access)
        access.client.put_object(Bucket=bucket, Key="data/a.csv", Body=b"x,y\n1,2\n", ACL="public-read")
    # A datastore without credentials sends unsigned requests (never the app's own AWS identity).
    anonymous = {k: v for k, v in s3_body(moto_s3, bucket).items() if k not in ("accessKeyId", "secretAccessKey")}
    registry.datastores.register("s3_public", parse_datastore_spec(anonymous))
    assert registry.datastores.get("s3_public").credential_type == "None"
    with registry.datastores.bucket_access("s3_public") as access:
        assert access.client.get_object(Bucket=bucket, Key="data/a.csv")["Body"].read() == b"x,y\n1,2\n"


def test_sas_urls_are_for_blob_datastores_and_bucket_clients_for_s3_ones(
    registry: WorkspaceRegistry, moto_s3: MotoS3
) -> None:
    registry.datastores.register("s3_data", parse_datastore_spec(s3_body(moto_s3, moto_s3.create_bucket())))
    with pytest.raises(BadRequestError, match="SAS URLs exist only for AzureBlob") as caught:
        registry.datastores.container_access("s3_data", write=False)
    assert caught.value.target == "name"
    with pytest.raises(BadRequestError, match="not an AmazonS3 one"):
        registry.datastores.bucket_access(DEFAULT_DATASTORE)
    with pytest.raises(NotFoundError):
        registry.datastores.bucket_access("nope")
    registry.datastores.unregister("s3_data")
    assert not registry.has_datastore("s3_data")


def test_a_loopback_endpoint_is_refused_when_the_app_runs_on_azure(
    clients: engine_storage.StorageClients, settings: dict[str, str], moto_s3: MotoS3
) -> None:
    # The app's storage as it is on Azure: the store must refuse before it sends anything anywhere.
    on_azure = BlobServiceClient("https://myaccount.blob.core.windows.net", credential="a2V5")
    bucket = moto_s3.bucket_name("loop")
    with on_azure:
        store = DatastoreStore(clients.tables, on_azure, settings=settings)
        with pytest.raises(BadRequestError, match="loopback") as caught:
            store.register("s3_loop", parse_datastore_spec(s3_body(moto_s3, bucket, createIfNotExists=True)))
        assert caught.value.target == "endpointUrl"
        assert store.find("s3_loop") is None
    assert not moto_s3.bucket_exists(bucket)
