"""DataTransferStep without I/O: where each source object goes (the plan), and the chunking the
datastore writes rely on."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from shared.graph.model import DataTransferSpec, Step
from shared.orchestration.files import MARKER
from shared.orchestration.inputs import BlobRef, InputListing
from shared.orchestration.objects import _Chunks, _parts, _rechunk, quoted_etag
from shared.orchestration.step_process import StepFailed, check_runnable
from shared.orchestration.transfer import TransferError, plan_transfer


def listing(*names: str, base: str = "raw/", single: bool = False, kind: str = "DataReference") -> InputListing:
    refs = tuple(BlobRef("src", "bucket", base + n, f'"{i}"', 10 + i, n) for i, n in enumerate(names))
    return InputListing("source", kind, refs, single_file=single)  # type: ignore[arg-type]


def targets(plan_listing: InputListing, path: str, **spec: str) -> list[str]:
    plan = plan_transfer(plan_listing, DataTransferSpec(**spec), datastore="dst", path=path)  # type: ignore[arg-type]
    return [c.target for c in plan.copies]


def test_a_folder_keeps_its_layout_under_the_destination_folder() -> None:
    source = listing("a.csv", "sub/b.csv")
    assert targets(source, "copy") == ["copy/a.csv", "copy/sub/b.csv"]
    assert targets(source, "copy/") == ["copy/a.csv", "copy/sub/b.csv"]
    assert targets(source, "") == ["a.csv", "sub/b.csv"]
    assert targets(source, "./copy", destination_reference_type="directory") == ["copy/a.csv", "copy/sub/b.csv"]
    plan = plan_transfer(source, DataTransferSpec(), datastore="dst", path="copy")
    assert [(c.source, c.etag, c.size, c.relative) for c in plan.copies] == [
        ("raw/a.csv", '"0"', 10, "a.csv"),
        ("raw/sub/b.csv", '"1"', 11, "sub/b.csv"),
    ]


def test_a_file_goes_to_the_path_itself_or_into_it_as_a_folder() -> None:
    one = listing("a.csv", single=True)
    assert targets(one, "copy/renamed.csv") == ["copy/renamed.csv"]
    assert targets(one, "copy/renamed.csv", destination_reference_type="file") == ["copy/renamed.csv"]
    assert targets(one, "copy/") == ["copy/a.csv"]
    assert targets(one, "copy", destination_reference_type="directory") == ["copy/a.csv"]
    assert targets(one, "") == ["a.csv"]
    # A one-object folder (or PipelineData) is a file when the step says so.
    assert targets(listing("deep/a.csv"), "out.csv", source_reference_type="file") == ["out.csv"]


def test_reference_types_that_do_not_fit_the_source_fail_naming_it() -> None:
    where = "path 'raw/' on datastore 'src'"
    with pytest.raises(TransferError, match=r"'file', but path 'raw/' on datastore 'src' holds 2 objects"):
        plan_transfer(
            listing("a", "b"), DataTransferSpec(source_reference_type="file"), datastore="d", path="x", where=where
        )
    with pytest.raises(TransferError, match="'directory', but input 'source' names a file"):
        plan_transfer(
            listing("a", single=True), DataTransferSpec(source_reference_type="directory"), datastore="d", path="x"
        )
    with pytest.raises(TransferError, match=r"needs a folder \(the source is a folder\): path 'x' on datastore 'd'"):
        plan_transfer(listing("a", "b"), DataTransferSpec(destination_reference_type="file"), datastore="d", path="x")
    with pytest.raises(TransferError, match="needs a file name"):
        plan_transfer(
            listing("a", single=True), DataTransferSpec(destination_reference_type="file"), datastore="d", path=""
        )


def test_a_copy_onto_itself_and_an_unsafe_destination_are_refused() -> None:
    with pytest.raises(
        TransferError, match="'raw/a.csv' on datastore 'src' would be copied to 'raw/a.csv' on datastore 'SRC'"
    ):
        plan_transfer(listing("a.csv", single=True), DataTransferSpec(), datastore="SRC", path="raw/")
    with pytest.raises(TransferError, match="destination path '../up' on datastore 'd' is not allowed"):
        plan_transfer(listing("a.csv"), DataTransferSpec(), datastore="d", path="../up")


def test_a_destination_overlapping_its_source_folder_on_the_same_store_is_refused() -> None:
    source = listing("a.csv", "sub/b.csv", base="data/")
    # Inside the source: the next run would list (and copy again) what this one wrote, and overwrite
    # objects it had listed while reading them.
    for inside in ("data/backup", "data/backup/", "data/sub/deeper"):
        with pytest.raises(
            TransferError, match=f"path '{inside.strip('/')}/' on datastore 'src' and the source folder 'data/'"
        ):
            plan_transfer(source, DataTransferSpec(), datastore="src", path=inside)
    with pytest.raises(TransferError, match="'data/a.csv' on datastore 'src' would be copied to 'data/a.csv'"):
        plan_transfer(source, DataTransferSpec(), datastore="src", path="data")
    # Around the source: the source folder lies under the destination.
    for around in ("", "./"):
        with pytest.raises(TransferError, match="source folder 'data/' on datastore 'src' contain one another"):
            plan_transfer(source, DataTransferSpec(), datastore="src", path=around)
    # Beside it, or on another store, is fine; a name shared by a prefix is not an overlap.
    assert targets(source, "database/") == ["database/a.csv", "database/sub/b.csv"]
    assert targets(source, "backup") == ["backup/a.csv", "backup/sub/b.csv"]
    plan = plan_transfer(source, DataTransferSpec(), datastore="other", path="data/backup")
    assert [c.target for c in plan.copies] == ["data/backup/a.csv", "data/backup/sub/b.csv"]
    # A file next to itself is no overlap; a whole store copied into itself is.
    assert targets(listing("a.csv", single=True, base="data/"), "data/backup/") == ["data/backup/a.csv"]
    with pytest.raises(TransferError, match="source folder '' on datastore 'src'"):
        plan_transfer(listing("a.csv", base=""), DataTransferSpec(), datastore="src", path="copy")


def test_two_datastores_naming_one_container_are_one_store() -> None:
    source = listing("a.csv", base="data/")
    same = {"src": "container acct data", "alias": "container acct data", "other": "container acct2 data"}
    with pytest.raises(TransferError, match="datastore 'ALIAS' and the source folder 'data/' on datastore 'src'"):
        plan_transfer(source, DataTransferSpec(), datastore="ALIAS", path="data/backup", stores=same)
    with pytest.raises(TransferError, match="would be copied to 'data/a.csv' on datastore 'alias'"):
        plan_transfer(
            listing("a.csv", single=True, base="data/"),
            DataTransferSpec(),
            datastore="alias",
            path="data/",
            stores=same,
        )
    plan = plan_transfer(source, DataTransferSpec(), datastore="other", path="data/backup", stores=same)
    assert [c.target for c in plan.copies] == ["data/backup/a.csv"]


def test_into_a_pipeline_data_output_everything_is_a_folder_and_old_markers_stay_behind() -> None:
    source = listing("a.csv", MARKER, "sub/" + MARKER, kind="PipelineData")
    plan = plan_transfer(
        source,
        DataTransferSpec(destination_reference_type="file"),
        datastore="d",
        path="dataset/r/x/",
        into_output=True,
    )
    assert [(c.target, c.relative) for c in plan.copies] == [
        ("dataset/r/x/a.csv", "a.csv"),
        (f"dataset/r/x/sub/{MARKER}", f"sub/{MARKER}"),
    ]


def step(**fields: object) -> Step:
    return Step.model_validate({"name": "t", "kind": "data_transfer", **fields}, strict=False)


def test_a_data_transfer_step_needs_one_source_and_one_destination_to_run() -> None:
    source = [{"source": "data_reference", "name": "s", "datastore": "d"}]
    check_runnable(step(inputs=source, outputs=[{"name": "out"}]))
    check_runnable(step(inputs=source, data_transfer={"destination": {"datastore": "d"}}))
    for broken in (
        step(inputs=source),
        step(outputs=[{"name": "out"}]),
        step(inputs=source, outputs=[{"name": "out"}], data_transfer={"destination": {"datastore": "d"}}),
    ):
        with pytest.raises(StepFailed, match="one input"):
            check_runnable(broken)


def test_chunks_are_regrouped_into_blocks_and_parts() -> None:
    parts = [b"abc", b"", b"defgh", b"ij"]
    assert list(_rechunk(parts, 4)) == [b"abcd", b"efgh", b"ij"]
    assert list(_rechunk([], 4)) == []
    # S3 parts fill reusable buffers, each refilled only once the upload of what it held is done.
    uploads: list[Future[None]] = []
    filled = []
    for buffer in _parts(parts, 3, uploads):
        filled.append(bytes(buffer))
        done: Future[None] = Future()
        done.set_result(None)
        uploads.append(done)
    assert filled == [b"abc", b"def", b"ghi", b"j"]
    pending: list[Future[None]] = []
    feed = _parts([b"x" * 12], 3, pending)
    for _ in range(3):  # three buffers handed out, their uploads still running
        next(feed)
        pending.append(Future())
    pending[0].set_exception(OSError("upload failed"))
    with pytest.raises(OSError, match="upload failed"):  # a failed upload stops the filling
        next(feed)


def test_an_error_of_the_source_is_remembered_as_the_sources() -> None:
    def failing() -> Iterator[bytes]:
        yield b"x"
        raise OSError("source broke")

    chunks = _Chunks(failing())
    with pytest.raises(OSError, match="source broke"):
        list(chunks)
    assert isinstance(chunks.error, OSError)


def test_etags_are_quoted_once() -> None:
    assert quoted_etag("0x8D") == quoted_etag('"0x8D"') == quoted_etag('W/"0x8D"') == '"0x8D"'
