"""Snapshots on Azurite: uploads go to staging, commits check bytes and entries, unsafe zips store nothing."""

from __future__ import annotations

import hashlib
import io
import uuid
import warnings
import zipfile

import pytest
import requests

from shared.errors import AmlPipeError, BadRequestError
from shared.graph.model import SnapshotRef
from shared.pipelines import publish, submit
from shared.pipelines.snapshots import CONTAINER
from shared.pipelines.stores import Stores

pytestmark = pytest.mark.integration


def _zip(entries: list[tuple[str, bytes]], *, salt: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        archive.comment = (salt or uuid.uuid4().hex).encode()  # a distinct address per test
    return buffer.getvalue()


def _upload(stores: Stores, data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    ticket = stores.snapshots.begin_upload(sha)
    assert ticket.upload_url is not None and ticket.staging_id is not None
    assert "/staging/" in ticket.upload_url and sha not in ticket.upload_url  # never the address itself
    put = requests.put(ticket.upload_url, data=data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
    assert put.status_code == 201, put.text
    return sha, ticket.staging_id


def _blobs(stores: Stores, prefix: str = "") -> list[str]:
    container = stores.snapshots._container.client()
    return [b.name for b in container.list_blobs(name_starts_with=prefix)]


def _graph(sha: str, size: int) -> dict[str, object]:
    return {
        "steps": [
            {
                "name": "train",
                "kind": "python_script",
                "script_name": "train.py",
                "snapshot": {"sha256": sha, "size_bytes": size},
            }
        ]
    }


FORGED = [("train.py", b"print('hi')\n"), ("../../evil.py", b"boom"), ("/etc/cron.d/x", b"* * * * * root boom")]


def test_a_forged_zip_is_refused_at_commit_and_nothing_is_stored(stores: Stores) -> None:
    data = _zip(FORGED)
    sha, staging_id = _upload(stores, data)
    with pytest.raises(BadRequestError) as info:
        stores.snapshots.commit(sha, staging_id)
    assert info.value.code == "SnapshotUnsafe" and "../../evil.py" in info.value.message
    assert _blobs(stores, sha) == [] and _blobs(stores, f"staging/{staging_id}") == []
    with pytest.raises(BadRequestError) as missing:
        publish.publish_pipeline(stores, {"Name": "p", "Graph": _graph(sha, len(data))}, None)
    assert missing.value.code == "SnapshotNotFound"
    assert stores.published.list_published_pipelines(active_only=False) == []


@pytest.mark.parametrize(
    ("entries", "named"),
    [
        (FORGED, "../../evil.py"),
        ([("train.py", b"x"), ("/etc/cron.d/x", b"x")], "/etc/cron.d/x"),
        ([("train.py", b"x"), ("a\\..\\evil.py", b"x")], "a\\..\\evil.py"),
        ([("train.py", b"x"), ("train.py", b"y")], "train.py"),
    ],
)
def test_an_unsafe_zip_put_straight_into_the_blob_is_refused_on_submit_and_nothing_is_stored(
    stores: Stores, entries: list[tuple[str, bytes]], named: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate we forge on purpose
        data = _zip(entries)
    sha = hashlib.sha256(data).hexdigest()
    stores.snapshots._container.client().upload_blob(f"{sha}.zip", data)  # bypassing the API
    body = {"ExperimentName": "unsafe", "Graph": _graph(sha, len(data))}
    with pytest.raises(BadRequestError) as info:
        submit.submit_graph(stores, body, None)
    assert info.value.code == "SnapshotUnsafe" and repr(named) in info.value.message
    assert stores.runs.list_runs("experiment", "unsafe") == []
    assert _blobs(stores, f"{sha}.verified") == []


def test_a_symlink_entry_is_refused(stores: Stores) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train.py", b"x")
        link = zipfile.ZipInfo("link.py")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, b"/etc/passwd")
    sha, staging_id = _upload(stores, buffer.getvalue())
    with pytest.raises(BadRequestError, match="link.py.*symbolic link") as info:
        stores.snapshots.commit(sha, staging_id)
    assert info.value.code == "SnapshotUnsafe"


def test_a_zip_bomb_is_refused_by_its_uncompressed_total_naming_the_largest_entries(stores: Stores) -> None:
    entries = [(f"f{i}.bin", b"\0" * (200_000 * (i + 1))) for i in range(7)]
    data = _zip([("train.py", b"x"), *entries])
    assert len(data) < 100_000  # tiny compressed: only the uncompressed total catches it
    sha, staging_id = _upload(stores, data)
    stores.snapshots._max_bytes = 1_000_000
    with pytest.raises(BadRequestError) as info:
        stores.snapshots.commit(sha, staging_id)
    assert info.value.code == "SnapshotTooLarge"
    for name in ("f6.bin", "f5.bin", "f4.bin", "f3.bin", "f2.bin"):
        assert name in info.value.message
    assert "f1.bin" not in info.value.message and "train.py" not in info.value.message
    assert _blobs(stores, sha) == []


def test_a_bad_limit_setting_is_a_server_fault(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    sha, staging_id = _upload(stores, _zip([("train.py", b"x")]))
    monkeypatch.setenv("AMLPIPE_SNAPSHOT_MAX_BYTES", "lots")
    with pytest.raises(AmlPipeError) as info:
        stores.snapshots.commit(sha, staging_id)
    assert info.value.status == 500 and not isinstance(info.value, BadRequestError)


def test_a_commit_stores_the_zip_under_its_address_and_drops_the_staging_blob(stores: Stores) -> None:
    data = _zip([("train.py", b"print(1)\n"), ("lib/util.py", b"")])
    sha, staging_id = _upload(stores, data)
    assert stores.snapshots.commit(sha, staging_id) == SnapshotRef(sha256=sha, size_bytes=len(data))
    assert stores.snapshots.commit(sha, staging_id).sha256 == sha  # a repeated commit is fine
    assert _blobs(stores, f"staging/{staging_id}") == []
    assert stores.snapshots.begin_upload(sha).exists
    assert stores.snapshots.manifest(SnapshotRef(sha256=sha, size_bytes=len(data))) == ["lib/util.py", "train.py"]
    # a second upload of the same bytes: the existing blob wins, the staging blob goes
    ticket = stores.snapshots._sas_url(f"staging/{uuid.uuid4().hex}.zip")
    assert "sp=cw" in ticket
    with pytest.raises(AmlPipeError):
        stores.snapshots._sas_url(f"{sha}.zip")  # never write access on a content address
    assert CONTAINER == "amlpipe-snapshots"


def test_bytes_that_do_not_hash_to_the_address_are_refused(stores: Stores) -> None:
    data = _zip([("train.py", b"x")])
    ticket = stores.snapshots.begin_upload("cd" * 32)
    assert ticket.upload_url is not None
    requests.put(ticket.upload_url, data=data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
    with pytest.raises(BadRequestError) as info:
        stores.snapshots.commit("cd" * 32, ticket.staging_id)
    assert info.value.code == "SnapshotMismatch"
    assert _blobs(stores, "cd" * 32) == [] and _blobs(stores, f"staging/{ticket.staging_id}") == []
