"""The workspace registry on the real app over HTTP: datastores (with upload/download), datasets,
compute targets; roles, azureml error bodies, and rejected requests that leave nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from amlpipe.core import ComputeTarget, Dataset, Datastore, Workspace
from amlpipe.core.authentication import ServicePrincipalAuthentication
from amlpipe.core.compute import AmlCompute, ComputeTargetException
from amlpipe.core.datastore import AmazonS3Datastore
from amlpipe.data import _s3
from amlpipe.data.data_reference import DataReference
from amlpipe.exceptions import ServiceException, UserErrorException
from amlpipe.host.testing import HostProcess
from tests.e2e.conftest import real_app
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration


@dataclass
class Registry:
    host: HostProcess
    owner: Workspace
    contributor: Workspace
    reader: Workspace
    reader_token: str
    account_url: str
    account_key: str
    storage: str
    default_container: str  # the app's AMLPIPE_DEFAULT_CONTAINER

    def call(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> requests.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return requests.request(method, f"{self.host.url}/api/{path}", json=body, headers=headers, timeout=30)

    @property
    def owner_token(self) -> str:
        return self.owner._auth.get_authentication_header()["Authorization"].split(" ", 1)[1]


def workspace(url: str, tenant: str, principal: str, secret: str) -> Workspace:
    return Workspace(auth=ServicePrincipalAuthentication(tenant, principal, secret, endpoint=url), endpoint=url)


@pytest.fixture(scope="module")
def registry(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with real_app(storage, tmp_path_factory.mktemp("registry"), "registry") as real:
        reader = real.workspace_as("Reader")
        reader_token = reader._auth.get_authentication_header()["Authorization"].split(" ", 1)[1]
        with BlobServiceClient.from_connection_string(storage) as blobs:
            account_url, key = blobs.url.rstrip("/"), blobs.credential.account_key
        yield Registry(
            real.host,
            real.owner(),
            real.workspace_as("Contributor"),
            reader,
            reader_token,
            account_url,
            key,
            storage,
            real.env["AMLPIPE_DEFAULT_CONTAINER"],
        )


def error_of(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["Error"]
    assert set(body) >= {"Code", "Message", "Details"}
    return body


# --- datastores ---------------------------------------------------------------------------------


def test_the_default_datastore_is_always_there(registry: Registry) -> None:
    default = registry.reader.get_default_datastore()
    assert default.name == "workspaceblobstore" and default.container_name == registry.default_container
    assert Datastore(registry.reader).name == "workspaceblobstore"
    assert "workspaceblobstore" in registry.reader.datastores


def test_a_blob_container_is_registered_once_and_its_key_never_comes_back(registry: Registry) -> None:
    ws = registry.contributor
    blob = Datastore.register_azure_blob_container(
        ws, "blob_data", "training-data", "devstoreaccount1", account_key=registry.account_key,
        endpoint=registry.account_url, create_if_not_exists=True,
    )  # fmt: skip
    assert blob.name == "blob_data" and blob.account_key is None and blob.sas_token is None
    again = Datastore.register_azure_blob_container(
        ws, "blob_data", "training-data", "devstoreaccount1", account_key=registry.account_key,
        endpoint=registry.account_url,
    )  # fmt: skip
    assert again.container_name == "training-data"
    assert Datastore(workspace=registry.reader, name="BLOB_DATA").name == "blob_data"
    raw = registry.call("GET", "datastores", token=registry.reader_token)
    assert raw.status_code == 200 and registry.account_key not in raw.text
    assert [d["name"] for d in raw.json()["value"]] == ["workspaceblobstore", "blob_data"]
    with pytest.raises(UserErrorException, match="overwrite=True"):
        Datastore.register_azure_blob_container(ws, "blob_data", "other", "devstoreaccount1")
    conflict = registry.call("PUT", "datastores/blob_data", token=registry.owner_token,
                             body={"containerName": "other", "accountName": "devstoreaccount1"})  # fmt: skip
    assert conflict.status_code == 409 and error_of(conflict)["Target"] == "name"


def test_an_s3_bucket_is_registered_through_the_sdk_and_read_back_without_credentials(
    registry: Registry, moto_s3: MotoS3
) -> None:
    bucket = moto_s3.create_bucket("e2e")
    s3 = Datastore.register_s3(
        registry.contributor, "s3_data", bucket, endpoint_url=moto_s3.endpoint_url,
        access_key_id=TEST_KEY_ID, secret_access_key=TEST_SECRET,
    )  # fmt: skip
    assert isinstance(s3, AmazonS3Datastore) and s3.datastore_type == "AmazonS3"
    assert (s3.name, s3.bucket_name, s3.endpoint_url, s3.region) == ("s3_data", bucket, moto_s3.endpoint_url, None)
    assert not any(TEST_SECRET in str(v) or TEST_KEY_ID in str(v) for v in vars(s3).values())
    found = Datastore(registry.reader, "S3_DATA")
    assert isinstance(found, AmazonS3Datastore) and found.bucket_name == bucket and found.credential_type == "AccessKey"
    assert isinstance(Datastore.get(registry.reader, "s3_data"), AmazonS3Datastore)
    assert isinstance(registry.reader.datastores["s3_data"], AmazonS3Datastore)
    for path in ("datastores", "datastores/s3_data"):
        raw = registry.call("GET", path, token=registry.reader_token)
        assert raw.status_code == 200 and TEST_SECRET not in raw.text and TEST_KEY_ID not in raw.text
    # The same registration again is a no-op (200); another needs overwrite (409).
    again = registry.call("PUT", "datastores/s3_data", token=registry.owner_token, body={
        "datastoreType": "AmazonS3", "bucketName": bucket, "endpointUrl": moto_s3.endpoint_url,
        "accessKeyId": TEST_KEY_ID, "secretAccessKey": TEST_SECRET,
    })  # fmt: skip
    assert again.status_code == 200 and again.json()["bucketName"] == bucket
    with pytest.raises(UserErrorException, match="overwrite=True"):
        Datastore.register_s3(registry.contributor, "s3_data", moto_s3.create_bucket("e2e"),
                              endpoint_url=moto_s3.endpoint_url)  # fmt: skip
    # A missing bucket is refused with a 400 naming bucketName, and nothing is stored.
    missing = registry.call("PUT", "datastores/s3_missing", token=registry.owner_token, body={
        "datastoreType": "AmazonS3", "bucketName": moto_s3.bucket_name("gone"), "endpointUrl": moto_s3.endpoint_url,
        "accessKeyId": TEST_KEY_ID, "secretAccessKey": TEST_SECRET,
    })  # fmt: skip
    assert missing.status_code == 400 and error_of(missing)["Target"] == "bucketName"
    assert TEST_SECRET not in missing.text and TEST_KEY_ID not in missing.text
    assert registry.call("GET", "datastores/s3_missing", token=registry.owner_token).status_code == 404
    with pytest.raises(UserErrorException, match="does not exist"):
        Datastore.register_s3(registry.contributor, "s3_missing", moto_s3.bucket_name("gone"),
                              endpoint_url=moto_s3.endpoint_url)  # fmt: skip
    created = Datastore.register_s3(registry.contributor, "s3_created", moto_s3.bucket_name("new"),
                                    endpoint_url=moto_s3.endpoint_url, create_if_not_exists=True)  # fmt: skip
    assert moto_s3.bucket_exists(created.bucket_name) and created.credential_type == "None"
    # SAS URLs are for blob datastores only.
    sas = registry.call("POST", "datastores/s3_data/sas", token=registry.reader_token, body={"permission": "read"})
    assert sas.status_code == 400 and error_of(sas)["Target"] == "name"
    created.unregister()
    assert registry.call("GET", "datastores/s3_created", token=registry.owner_token).status_code == 404


def test_upload_and_download_go_straight_to_blob_and_refuse_traversal(registry: Registry, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.csv").write_text("x,y\n1,2\n")
    (source / "sub" / "b.csv").write_text("x,y\n3,4\n")
    for ws in (registry.contributor, registry.owner):
        datastore = ws.get_default_datastore()
        reference = datastore.upload(str(source), target_path="data/round", overwrite=True, show_progress=False)
        assert isinstance(reference, DataReference) and reference.path_on_datastore == "data/round"
    blob = Datastore.get(registry.contributor, "blob_data")
    blob.upload_files([str(source / "a.csv")], target_path="single", overwrite=True, show_progress=False)
    # A Reader downloads with a read-only SAS.
    out = tmp_path / "out"
    count = Datastore.get_default(registry.reader).download(str(out), prefix="data/round", show_progress=False)
    assert count == 2 and (out / "data" / "round" / "sub" / "b.csv").read_text() == "x,y\n3,4\n"
    assert Datastore.get_default(registry.reader).download(str(out), prefix="data/round", show_progress=False) == 0
    assert Datastore.get(registry.reader, "blob_data").download(str(out), prefix="single", show_progress=False) == 1
    with pytest.raises(UserErrorException, match="target_path"):
        blob.upload(str(source), target_path="../escape", show_progress=False)
    with pytest.raises(UserErrorException, match="target_path"):
        blob.upload_files([str(source / "a.csv")], target_path="/abs", show_progress=False)
    with pytest.raises(UserErrorException, match="prefix"):
        blob.download(str(out), prefix="../../etc", show_progress=False)
    # ...and a Reader cannot write: the service refuses the write SAS.
    write = registry.call("POST", "datastores/workspaceblobstore/sas", token=registry.reader_token,
                          body={"permission": "write"})  # fmt: skip
    assert write.status_code == 403 and error_of(write)["Code"] == "Forbidden"
    with pytest.raises(ServiceException) as caught:
        Datastore.get_default(registry.reader).upload(str(source), target_path="nope", show_progress=False)
    assert caught.value.status_code == 403


def test_an_upload_inside_a_pipeline_step_names_its_run_in_the_blobs_metadata(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    datastore = registry.contributor.get_default_datastore()
    monkeypatch.delenv("AZUREML_PIPELINE_RUN_ID", raising=False)
    datastore.upload_files([str(tmp_path / "a.csv")], target_path="writer/outside", show_progress=False)
    run_id = str(uuid.uuid4())
    monkeypatch.setenv("AZUREML_PIPELINE_RUN_ID", run_id)  # what the worker gives a step's process
    datastore.upload(str(tmp_path), target_path="writer/inside", show_progress=False)
    with BlobServiceClient.from_connection_string(registry.storage) as blobs:
        container = blobs.get_container_client(registry.default_container)  # the app's own, not the default
        assert container.get_blob_client("writer/outside/a.csv").get_blob_properties().metadata == {}
        inside = container.get_blob_client("writer/inside/a.csv").get_blob_properties().metadata
        assert inside == {"amlpipe_run_id": run_id}


def s3_datastore(registry: Registry, moto_s3: MotoS3, name: str) -> tuple[AmazonS3Datastore, str]:
    """A new bucket registered as ``name`` (with a key pair), and the bucket's name."""
    bucket = moto_s3.create_bucket("sdk")
    datastore = Datastore.register_s3(
        registry.contributor, name, bucket, endpoint_url=moto_s3.endpoint_url,
        access_key_id=TEST_KEY_ID, secret_access_key=TEST_SECRET,
    )  # fmt: skip
    return datastore, bucket


def bucket_objects(moto_s3: MotoS3, bucket: str) -> dict[str, bytes]:
    client = moto_s3.client()
    try:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
    finally:
        client.close()


def test_upload_and_download_go_straight_to_s3_with_urls_the_service_signs(
    registry: Registry, moto_s3: MotoS3, tmp_path: Path
) -> None:
    datastore, bucket = s3_datastore(registry, moto_s3, "s3_files")
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.csv").write_text("x,y\n1,2\n")
    (source / "sub" / "b.csv").write_text("x,y\n3,4\n")
    reference = datastore.upload(str(source), target_path="data/round", show_progress=False)
    assert isinstance(reference, DataReference) and reference.path_on_datastore == "data/round"
    datastore.upload_files([str(source / "a.csv")], target_path="database", show_progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_SUCCESS").write_bytes(b"")
    datastore.upload(str(tmp_path / "empty"), target_path="database", show_progress=False)
    assert bucket_objects(moto_s3, bucket) == {
        "data/round/a.csv": b"x,y\n1,2\n", "data/round/sub/b.csv": b"x,y\n3,4\n", "database/a.csv": b"x,y\n1,2\n",
        "database/_SUCCESS": b"",
    }  # fmt: skip
    # A Reader downloads; "data" is the folder data/, never database/.
    reader_view = Datastore.get(registry.reader, "s3_files")
    assert isinstance(reader_view, AmazonS3Datastore)
    out = tmp_path / "out"
    assert reader_view.download(str(out), prefix="data", show_progress=False) == 2
    assert (out / "data" / "round" / "sub" / "b.csv").read_text() == "x,y\n3,4\n"
    assert not (out / "database").exists()
    assert reader_view.download(str(out), prefix="data", show_progress=False) == 0  # already there
    # overwrite=False keeps what is in the bucket (a conditional PUT); overwrite=True replaces it.
    (source / "a.csv").write_text("changed\n")
    datastore.upload(str(source), target_path="data/round", show_progress=False)
    assert bucket_objects(moto_s3, bucket)["data/round/a.csv"] == b"x,y\n1,2\n"
    datastore.upload(str(source), target_path="data/round", overwrite=True, show_progress=False)
    assert bucket_objects(moto_s3, bucket)["data/round/a.csv"] == b"changed\n"
    assert reader_view.download(str(out), prefix="data/round/a.csv", overwrite=True, show_progress=False) == 1
    assert (out / "data" / "round" / "a.csv").read_text() == "changed\n"
    # Paths are checked before anything is signed; a Reader may not write.
    with pytest.raises(UserErrorException, match="target_path"):
        datastore.upload(str(source), target_path="../escape", show_progress=False)
    with pytest.raises(UserErrorException, match="prefix"):
        reader_view.download(str(out), prefix="../../etc", show_progress=False)
    with pytest.raises(ServiceException) as caught:
        reader_view.upload(str(source), target_path="nope", show_progress=False)
    assert caught.value.status_code == 403
    assert "nope/a.csv" not in bucket_objects(moto_s3, bucket)


def test_s3_uploads_are_signed_and_listings_paged_in_batches(
    registry: Registry, moto_s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datastore, bucket = s3_datastore(registry, moto_s3, "s3_batches")
    for index in range(5):
        (tmp_path / "src" / f"f{index}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "src" / f"f{index}.txt").write_text(str(index))
    monkeypatch.setattr(_s3, "BATCH", 2)  # 5 names: three signing requests
    monkeypatch.setattr(_s3, "PAGE", 2)  # 5 objects: three listing pages
    run_id = str(uuid.uuid4())
    monkeypatch.setenv("AZUREML_PIPELINE_RUN_ID", run_id)  # inside a step: the run is the writer
    datastore.upload(str(tmp_path / "src"), target_path="many", show_progress=False)
    assert len(bucket_objects(moto_s3, bucket)) == 5
    client = moto_s3.client()
    try:
        assert client.head_object(Bucket=bucket, Key="many/f3.txt")["Metadata"] == {"amlpipe_run_id": run_id}
    finally:
        client.close()
    assert datastore.download(str(tmp_path / "out"), prefix="many", show_progress=False) == 5
    assert sorted(p.name for p in (tmp_path / "out" / "many").iterdir()) == [f"f{i}.txt" for i in range(5)]
    # Over REST: a page at a time with its continuation token; the secret never appears.
    first = registry.call("POST", "datastores/s3_batches/presign", token=registry.reader_token,
                          body={"permission": "read", "prefix": "many/", "pageSize": 3})  # fmt: skip
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    page = first.json()
    assert [o["name"] for o in page["objects"]] == ["many/f0.txt", "many/f1.txt", "many/f2.txt"]
    assert page["bucketName"] == bucket and page["continuationToken"] and TEST_SECRET not in first.text
    second = registry.call("POST", "datastores/s3_batches/presign", token=registry.reader_token, body={
        "permission": "read", "prefix": "many/", "pageSize": 3, "continuationToken": page["continuationToken"],
    }).json()  # fmt: skip
    assert [o["name"] for o in second["objects"]] == ["many/f3.txt", "many/f4.txt"]
    assert second["continuationToken"] is None
    assert requests.get(second["objects"][0]["url"], timeout=10).content == b"3"


@pytest.fixture(scope="module")
def s3_checks(registry: Registry, moto_s3: MotoS3) -> AmazonS3Datastore:
    return s3_datastore(registry, moto_s3, "s3_checks")[0]


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"permission": "delete"}, "permission"),
        ({"permission": "read", "names": ["a"]}, "names"),
        ({"permission": "read", "prefix": "../etc"}, "prefix"),
        ({"permission": "read", "pageSize": 0}, "pageSize"),
        ({"permission": "write", "names": []}, "names"),
        ({"permission": "write", "names": ["a/../../b"]}, "names[0]"),
        ({"permission": "write", "names": ["ok.txt", "folder/"]}, "names[1]"),
        ({"permission": "write", "names": ["a", "a"]}, "names"),
        ({"permission": "write", "names": ["a"], "runId": "not-a-run"}, "runId"),
        ({"permission": "write", "names": ["a"], "overwrite": "yes"}, "overwrite"),
    ],
)
def test_a_bad_presign_request_is_a_400_naming_the_field_and_signs_nothing(
    registry: Registry, s3_checks: AmazonS3Datastore, body: dict[str, Any], target: str
) -> None:
    response = registry.call("POST", "datastores/s3_checks/presign", token=registry.owner_token, body=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["Target"] == target and "url" not in response.text


def test_presigning_needs_an_s3_datastore_whose_bucket_answers(registry: Registry, moto_s3: MotoS3) -> None:
    read = {"permission": "read"}
    blob = registry.call("POST", "datastores/workspaceblobstore/presign", token=registry.reader_token, body=read)
    assert blob.status_code == 400 and "AzureBlob" in error_of(blob)["Message"]
    unknown = registry.call("POST", "datastores/no_such_store/presign", token=registry.reader_token, body=read)
    assert unknown.status_code == 404
    _, bucket = s3_datastore(registry, moto_s3, "s3_gone")
    client = moto_s3.client()
    try:
        client.delete_bucket(Bucket=bucket)
    finally:
        client.close()
    gone = registry.call("POST", "datastores/s3_gone/presign", token=registry.reader_token, body=read)
    assert gone.status_code == 400 and error_of(gone)["Target"] == "name"
    assert f"bucket '{bucket}' of datastore 's3_gone' does not exist" in error_of(gone)["Message"]
    write = registry.call("POST", "datastores/s3_gone/presign", token=registry.reader_token,
                          body={"permission": "write", "names": ["a.txt"]})  # fmt: skip
    assert write.status_code == 403 and error_of(write)["Code"] == "Forbidden"


# --- datasets -----------------------------------------------------------------------------------


def test_datasets_register_with_versions_like_azureml(registry: Registry) -> None:
    ws = registry.contributor
    store = ws.get_default_datastore()
    first = Dataset.File.from_files(path=[(store, "data/round/**")]).register(ws, "raw_dataset", tags={"a": "b"})
    assert (first.name, first.version, first.tags) == ("raw_dataset", 1, {"a": "b"}) and first.id
    same = Dataset.File.from_files(path=[(store, "data/round/**")]).register(ws, "raw_dataset")
    assert same.version == 1 and same.id == first.id
    tabular = Dataset.Tabular.from_delimited_files(path=[(store, "data/round/*.csv")])
    with pytest.raises(UserErrorException, match="create_new_version=True"):
        tabular.register(ws, "raw_dataset")
    second = tabular.register(ws, "raw_dataset", create_new_version=True)
    assert second.version == 2 and type(second).__name__ == "TabularDataset"
    assert Dataset.get_by_name(registry.reader, "raw_dataset").version == 2
    assert type(Dataset.get_by_name(registry.reader, "raw_dataset", version=1)).__name__ == "FileDataset"
    assert registry.reader.datasets["raw_dataset"].version == 2
    assert Dataset.get_by_name(ws, "raw_dataset").as_named_input("raw_data").dataset.version == 2
    with pytest.raises(UserErrorException, match='Cannot find dataset registered with name "nope"'):
        Dataset.get_by_name(registry.reader, "nope")
    missing = registry.call("GET", "datasets/raw_dataset?version=9", token=registry.reader_token)
    assert missing.status_code == 404 and "versions: 1, 2" in error_of(missing)["Message"]


# --- compute targets ----------------------------------------------------------------------------


def test_compute_targets_follow_the_dp100_pattern(registry: Registry) -> None:
    ws = registry.contributor
    with pytest.raises(ComputeTargetException):
        ComputeTarget(workspace=ws, name="aml-cluster")
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_DS11_V2", max_nodes=2)
    cluster = ComputeTarget.create(ws, "aml-cluster", config)
    cluster.wait_for_completion(show_output=False)
    found = ComputeTarget(workspace=registry.reader, name="aml-cluster")
    assert isinstance(found, AmlCompute) and found.scale_settings and found.scale_settings.maximum_node_count == 2
    assert ComputeTarget.create(ws, "aml-cluster", config).name == "aml-cluster"  # same settings: no error
    with pytest.raises(ComputeTargetException, match="different settings"):
        ComputeTarget.create(ws, "aml-cluster", AmlCompute.provisioning_configuration(max_nodes=8))
    assert isinstance(found, AmlCompute)
    found.workspace = ws
    found.update(max_nodes=3)
    assert found.scale_settings and found.scale_settings.maximum_node_count == 3
    assert list(registry.reader.compute_targets) == ["aml-cluster"]
    checks = ws._graph_registry()
    assert checks.has_compute_target("aml-cluster") and checks.has_compute_target("local")
    assert checks.has_datastore("blob_data") and checks.has_dataset("raw_dataset", 2)
    assert not checks.has_dataset("raw_dataset", 3) and not checks.has_compute_target("gpu-cluster")
    ComputeTarget.create(ws, "scratch", config).delete()
    with pytest.raises(ComputeTargetException):
        ComputeTarget(ws, "scratch")


# --- auth, errors, and nothing left behind ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "datastores", None, 401),
        ("PUT", "computetargets/x-cluster", {"maxNodes": 1}, 403),
        ("PUT", "datastores/x_store", {"containerName": "abc", "accountName": "abc"}, 403),
        ("POST", "datasets/x/versions", {"definition": {}}, 403),
    ],
)
def test_401_without_a_token_and_403_for_readers_writing(
    registry: Registry, method: str, path: str, body: Any, status: int
) -> None:
    token = None if status == 401 else registry.reader_token
    response = registry.call(method, path, token=token, body=body)
    assert response.status_code == status and error_of(response)["Code"] in ("Unauthorized", "Forbidden")


@pytest.mark.parametrize(
    ("path", "body", "target", "after"),
    [
        ("computetargets/bad-cluster", {"maxNodes": 0}, "maxNodes", "computetargets/bad-cluster"),
        ("computetargets/local", {"maxNodes": 1}, "name", "computetargets/local"),
        ("datastores/bad_store", {"containerName": "abc", "accountName": "Bad_Name"}, "accountName",
         "datastores/bad_store"),
        ("datastores/bad-name", {"containerName": "abc", "accountName": "abc"}, "name", "datastores/bad-name"),
    ],
)  # fmt: skip
def test_a_rejected_put_is_a_400_naming_the_field_and_writes_nothing(
    registry: Registry, path: str, body: Any, target: str, after: str
) -> None:
    response = registry.call("PUT", path, token=registry.owner_token, body=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["Code"] == "BadArgument" and error_of(response)["Target"] == target
    assert registry.call("GET", after, token=registry.owner_token).status_code == 404


def test_a_dataset_on_a_missing_datastore_is_a_400_and_writes_nothing(registry: Registry) -> None:
    body = {"definition": {"kind": "File", "paths": [{"datastore": "missing", "path": "x/**"}]}}
    response = registry.call("POST", "datasets/orphan/versions", token=registry.owner_token, body=body)
    assert response.status_code == 400 and error_of(response)["Target"] == "definition.paths[0].datastore"
    traversal = {"definition": {"kind": "File", "paths": [{"datastore": "workspaceblobstore", "path": "../x"}]}}
    response = registry.call("POST", "datasets/orphan/versions", token=registry.owner_token, body=traversal)
    assert response.status_code == 400 and error_of(response)["Target"] == "definition.paths[0].path"
    assert registry.call("GET", "datasets/orphan", token=registry.owner_token).status_code == 404


def test_unknown_names_are_404(registry: Registry) -> None:
    for path in ("datastores/nope", "datasets/nope", "computetargets/nope", "datastores/nope/sas"):
        method = "POST" if path.endswith("sas") else "GET"
        response = registry.call(method, path, token=registry.owner_token, body={} if method == "POST" else None)
        assert response.status_code == 404 and error_of(response)["Code"] == "NotFound", path


@pytest.mark.parametrize("version", ["²", "٣", "1e3", "-1", "0", "1234567890", " 1", "1.0"])
def test_a_dataset_version_that_is_no_number_is_a_400_naming_version(registry: Registry, version: str) -> None:
    response = requests.get(
        f"{registry.host.url}/api/datasets/x",
        params={"version": version},
        headers={"Authorization": f"Bearer {registry.reader_token}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert error_of(response)["Target"] == "version"


@pytest.mark.parametrize("how", ["body", "header"])
def test_a_garbage_etag_is_a_400_naming_etag(registry: Registry, how: str) -> None:
    token = registry.owner_token
    assert registry.call("PUT", "computetargets/etag-cluster", token=token, body={"maxNodes": 2}).status_code in (
        200,
        201,
    )
    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {"maxNodes": 3}
    if how == "body":
        body["etag"] = "garbage"
    else:
        headers["If-Match"] = "garbage"
    url = f"{registry.host.url}/api/computetargets/etag-cluster"
    response = requests.patch(url, json=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    assert error_of(response)["Target"] == "etag"
    assert registry.call("GET", "computetargets/etag-cluster", token=token).json()["maxNodes"] == 2
    registry.call("DELETE", "computetargets/etag-cluster", token=token)


@pytest.mark.parametrize("name", ["../principals", "a/../../principals", "x?y=1"])
def test_a_name_cannot_reach_another_route(registry: Registry, name: str) -> None:
    with pytest.raises(UserErrorException, match="not found"):
        Datastore.get(registry.owner, name)
    with pytest.raises(ComputeTargetException):
        ComputeTarget(workspace=registry.owner, name=name)
    with pytest.raises(UserErrorException):
        Dataset.get_by_name(registry.owner, name)
