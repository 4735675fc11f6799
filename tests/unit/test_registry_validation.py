"""Pure checks of the registry: names, the default container, datastore and dataset definitions,
compute sizes, safe paths, and the SDK's upload tagging."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import amlpipe.core
from amlpipe.core import Dataset
from amlpipe.core.compute import AmlCompute, ComputeTarget
from amlpipe.data import _transfer
from amlpipe.data.datapath import DataPath
from amlpipe.exceptions import UserErrorException
from shared.errors import AmlPipeError, BadRequestError
from shared.orchestration import files
from shared.registry import compute, datasets, datastores


def test_the_public_surface_of_amlpipe_core_is_locked() -> None:
    assert amlpipe.core.__all__ == sorted(amlpipe.core.__all__)
    assert amlpipe.core.__all__ == [
        "ComputeTarget",
        "Dataset",
        "Datastore",
        "Environment",
        "Experiment",
        "Model",
        "Run",
        "Workspace",
    ]


@pytest.mark.parametrize("name", ["blob_data", "A1", "x" * 255, "workspaceblobstore"])
def test_valid_datastore_names(name: str) -> None:
    assert datastores.name_problem(name) is None


@pytest.mark.parametrize("name", ["", "has-dash", "has space", "x" * 256, "dots.no", 3, "name\n"])
def test_invalid_datastore_names_say_the_rule(name: Any) -> None:
    assert "letters, digits and underscores" in (datastores.name_problem(name) or "")


def test_the_default_container_is_azureml_blobstore_unless_the_app_setting_names_another() -> None:
    assert datastores.default_container({}) == "azureml-blobstore" == datastores.DEFAULT_CONTAINER
    assert datastores.default_container({"AMLPIPE_DEFAULT_CONTAINER": ""}) == "azureml-blobstore"
    assert datastores.default_container({"AMLPIPE_DEFAULT_CONTAINER": "blobs-0a1b2c"}) == "blobs-0a1b2c"


def test_the_default_container_is_read_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLPIPE_DEFAULT_CONTAINER", "from-env")
    assert datastores.default_container() == "from-env"
    monkeypatch.delenv("AMLPIPE_DEFAULT_CONTAINER")
    assert datastores.default_container() == "azureml-blobstore"


@pytest.mark.parametrize("name", ["abc", "a-b", "0a-1b-2c", "x" * 63, "blobs-0123456789"])
def test_valid_default_containers(name: str) -> None:
    assert datastores.default_container({"AMLPIPE_DEFAULT_CONTAINER": name}) == name


@pytest.mark.parametrize(
    "name", ["ab", "x" * 64, "Upper", "under_score", "-lead", "trail-", "dou--ble", "has space", "dot.ted", "é-x"]
)
def test_an_invalid_default_container_is_a_config_error_naming_the_setting_and_the_rule(name: str) -> None:
    with pytest.raises(AmlPipeError) as caught:
        datastores.default_container({"AMLPIPE_DEFAULT_CONTAINER": name})
    assert not isinstance(caught.value, BadRequestError) and caught.value.status == 500
    assert "AMLPIPE_DEFAULT_CONTAINER" in caught.value.message and "3-63 lowercase letters" in caught.value.message


@pytest.mark.parametrize("name", ["aml-cluster", "cpu1", "Ab"])
def test_valid_compute_names(name: str) -> None:
    assert compute.name_problem(name) is None


@pytest.mark.parametrize("name", ["a", "1abc", "under_score", "x" * 17, "local", "LOCAL"])
def test_invalid_or_reserved_compute_names(name: str) -> None:
    assert compute.name_problem(name)


@pytest.mark.parametrize("name", ["raw_dataset", "diabetes-v2", "a.b"])
def test_valid_dataset_names(name: str) -> None:
    assert datasets.name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-lead", "a/b", "a b", "x" * 251])
def test_invalid_dataset_names(name: str) -> None:
    assert datasets.name_problem(name)


BLOB = {"containerName": "training", "accountName": "myaccount", "accountKey": "a2V5"}


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"containerName": "Upper"}, "containerName"),
        ({"containerName": "a--b"}, "containerName"),
        ({"containerName": "data\n"}, "containerName"),  # "$" would let a trailing newline through
        ({"accountName": "account\n"}, "accountName"),
        ({"endpoint": "http://127.0.0.1:10000/devstoreaccount1\n"}, "endpoint"),
        ({"accountName": "no_underscore"}, "accountName"),
        ({"accountKey": "not base64!"}, "accountKey"),
        ({"sasToken": "sv=1"}, "sasToken"),
        ({"protocol": "ftp"}, "protocol"),
        ({"endpoint": "http://host/path?x=1"}, "endpoint"),
        ({"endpoint": "https://169.254.169.254"}, "endpoint"),
        ({"endpoint": "http://internal-service:8080/x"}, "endpoint"),
        ({"endpoint": "http://myaccount.blob.core.windows.net"}, "endpoint"),
        ({"endpoint": "https://myaccount.blob.core.windows.net.evil.com"}, "endpoint"),
        ({"endpoint": "https://myaccount.blob.core.windows.net:8443"}, "endpoint"),
        ({"endpoint": "https://blob.core.windows.net"}, "endpoint"),
        ({"endpoint": "evil.com"}, "endpoint"),
        ({"endpoint": "blob.evil.com"}, "endpoint"),
        ({"createIfNotExists": "yes"}, "createIfNotExists"),
        ({"datastoreType": "AzureFile"}, "datastoreType"),
        ({"bucket": "x"}, "bucket"),
    ],
)
def test_blob_registrations_name_the_bad_field(change: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        datastores.parse_blob_spec({**BLOB, **change})
    assert caught.value.target == target


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("core.windows.net", "https://myaccount.blob.core.windows.net"),
        ("core.chinacloudapi.cn", "https://myaccount.blob.core.chinacloudapi.cn"),
        ("core.usgovcloudapi.net", "https://myaccount.blob.core.usgovcloudapi.net"),
        ("https://myaccount.blob.core.windows.net", "https://myaccount.blob.core.windows.net"),
        ("https://myaccount.privatelink.blob.core.windows.net/", "https://myaccount.privatelink.blob.core.windows.net"),
        ("http://localhost:10000/devstoreaccount1", "http://localhost:10000/devstoreaccount1"),
        ("http://[::1]:10000/devstoreaccount1", "http://[::1]:10000/devstoreaccount1"),
    ],
)
def test_azure_storage_and_loopback_endpoints_are_accepted(endpoint: str, url: str) -> None:
    assert datastores.parse_blob_spec({**BLOB, "endpoint": endpoint}).account_url == url


def test_a_credential_never_appears_in_a_message_or_repr() -> None:
    both = {**BLOB, "sasToken": "sv=1&sig=topsecret"}
    with pytest.raises(BadRequestError) as caught:
        datastores.parse_blob_spec(both)
    assert "topsecret" not in caught.value.message and "a2V5" not in caught.value.message
    spec = datastores.parse_blob_spec(BLOB)
    assert spec.credential == "a2V5" and "a2V5" not in repr(spec)
    assert spec.account_url == "https://myaccount.blob.core.windows.net"
    azurite = datastores.parse_blob_spec({**BLOB, "endpoint": "http://127.0.0.1:10000/devstoreaccount1"})
    assert azurite.account_url == "http://127.0.0.1:10000/devstoreaccount1"


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/abs/x.csv", "absolute"), ("../up/x", "'..'"), ("a\\b", "backslash"), ("", "empty")],
)
def test_dataset_paths_must_stay_on_their_datastore(path: str, reason: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        datasets.parse_definition({"kind": "File", "paths": [{"datastore": "ds", "path": path}]})
    assert caught.value.target == "definition.paths[0].path" and reason in caught.value.message


def test_tabular_options_get_azureml_defaults_and_are_checked() -> None:
    parsed = datasets.parse_definition({"kind": "Tabular", "paths": [{"datastore": "ds", "path": "d/*.csv"}]})
    assert parsed.options["separator"] == "," and parsed.options["header"] == "all_files_same_headers"
    same = datasets.parse_definition(
        {"kind": "Tabular", "paths": [{"datastore": "DS", "path": "d/*.csv"}], "options": {"header": True}}
    )
    assert same.fingerprint == parsed.fingerprint
    with pytest.raises(BadRequestError) as caught:
        datasets.parse_definition(
            {"kind": "Tabular", "paths": [{"datastore": "ds", "path": "x"}], "options": {"encoding": "ebcdic"}}
        )
    assert caught.value.target == "definition.options.encoding" and "utf8" in caught.value.message
    with pytest.raises(BadRequestError, match="File dataset takes no options"):
        datasets.parse_definition({"kind": "File", "paths": [{"datastore": "ds", "path": "x"}], "options": {"a": 1}})


@pytest.mark.parametrize(
    ("body", "target"),
    [({"maxNodes": 0}, "maxNodes"), ({"minNodes": 5, "maxNodes": 2}, "minNodes"), ({"maxNodes": True}, "maxNodes"),
     ({"computeType": "Kubernetes"}, "computeType"), ({"gpu": 1}, "gpu")],
)  # fmt: skip
def test_compute_specs_name_the_bad_field(body: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        compute.parse_compute_spec(body)
    assert caught.value.target == target


def test_an_update_keeps_what_it_does_not_name() -> None:
    base = compute.ComputeSpec(vm_size="STANDARD_DS11_V2", min_nodes=1, max_nodes=2)
    assert compute.parse_compute_spec({"maxNodes": 8}, base=base) == compute.ComputeSpec("STANDARD_DS11_V2", 1, 8)


# --- the SDK side ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["/etc", "../x", "a/../../b", "a\\b", "C:/x", "a\0b"])
def test_unsafe_target_paths_and_prefixes_are_refused(value: str) -> None:
    with pytest.raises(UserErrorException, match="target_path"):
        _transfer.blob_prefix(value, "target_path")


def test_safe_prefixes_are_normalised() -> None:
    assert _transfer.blob_prefix(None, "p") == "" and _transfer.blob_prefix("./data//x/", "p") == "data/x"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil", "/etc/passwd", "c:/x", "a\\..\\b"])
def test_a_download_never_lands_outside_its_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserErrorException, match="outside the target folder"):
        _transfer.local_destination(tmp_path.resolve(), name)


def test_a_download_does_not_follow_a_symlink_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserErrorException):
        _transfer.local_destination(root.resolve(), "link/file.txt")
    assert _transfer.local_destination(root.resolve(), "data/file.txt") == root.resolve() / "data" / "file.txt"


def test_upload_files_names_are_relative_to_the_common_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    one, two = tmp_path / "a" / "x.csv", tmp_path / "a" / "b" / "y.csv"
    one.write_text("1")
    two.write_text("2")
    names = [n for _, n in _transfer.relative_names([str(one), str(two)], None)]
    assert names == ["x.csv", "b/y.csv"]
    assert [n for _, n in _transfer.relative_names([str(two)], str(tmp_path))] == ["a/b/y.csv"]
    with pytest.raises(UserErrorException, match="not a common path"):
        _transfer.relative_names([str(one)], str(tmp_path / "a" / "b"))


class RecordingContainer:
    """A ContainerClient stand-in that records each upload's name and metadata."""

    def __init__(self) -> None:
        self.uploads: dict[str, Mapping[str, str] | None] = {}

    def upload_blob(self, name: str, data: BinaryIO, *, overwrite: bool, metadata: Mapping[str, str] | None) -> None:
        self.uploads[name] = metadata


def test_the_sdk_and_the_engine_name_a_blobs_writer_alike() -> None:
    assert _transfer.WRITER_METADATA == files.WRITER_METADATA == "amlpipe_run_id"


def test_uploads_inside_a_pipeline_step_are_tagged_with_its_run_and_outside_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.csv").write_text("1")
    container = RecordingContainer()
    monkeypatch.delenv("AZUREML_PIPELINE_RUN_ID", raising=False)
    files = _transfer.BlobFiles(container, overwrite=True)  # type: ignore[arg-type]
    _transfer.upload(files, [(tmp_path / "a.csv", "outside.csv")], show_progress=False)
    monkeypatch.setenv("AZUREML_PIPELINE_RUN_ID", "1b7e7a4c-0000-4000-8000-000000000001")
    _transfer.upload(files, [(tmp_path / "a.csv", "inside.csv")], show_progress=False)
    assert container.uploads == {
        "outside.csv": None,
        "inside.csv": {"amlpipe_run_id": "1b7e7a4c-0000-4000-8000-000000000001"},
    }


def test_dataset_definitions_from_azureml_style_paths() -> None:
    ds = Dataset.Tabular.from_delimited_files(path=[("blob_data", "/data/*.csv"), DataPath("other", "x/y.csv")])
    assert ds.definition["paths"] == [
        {"datastore": "blob_data", "path": "data/*.csv"},
        {"datastore": "other", "path": "x/y.csv"},
    ]
    files = Dataset.File.from_files(path=("blob_data", ""))
    assert files.definition == {"kind": "File", "paths": [{"datastore": "blob_data", "path": "**"}], "options": {}}
    assert files.as_mount().mode == "mount" and files.as_named_input("raw").name == "raw"
    with pytest.raises(UserErrorException, match="read from datastores"):
        Dataset.File.from_files(path="https://example.com/data.csv")


def test_compute_targets_still_build_offline() -> None:
    target = ComputeTarget(None, "aml-cluster")
    assert type(target) is ComputeTarget and target.name == "aml-cluster"
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_DS11_V2", max_nodes=2)
    assert config.max_nodes == 2


class ListedFiles:
    """A datastore's files held in memory, as ``_transfer.Files`` (the transport is not under test)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def put(self, local: Path, name: str, metadata: Mapping[str, str] | None) -> bool:
        raise AssertionError("not uploading")

    def names(self, prefix: str) -> list[str]:
        return sorted(self.files)

    def fetch(self, name: str, out: BinaryIO) -> None:
        out.write(self.files[name])


def test_a_download_that_cannot_land_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "out" / "a.csv").mkdir(parents=True)  # a folder where the file should land
    with pytest.raises(IsADirectoryError):
        _transfer.download(ListedFiles({"a.csv": b"x"}), tmp_path / "out", "", overwrite=True, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv"]  # no a.csv.amlpipe-partial
