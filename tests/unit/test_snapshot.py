"""Snapshots: deterministic zips, ignore files, symlinks, size limits, content hash and safe extraction."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from shared.errors import BadRequestError
from shared.graph.snapshot import (
    EMPTY_CONTENT_HASH,
    MAX_BYTES_ENV,
    build_snapshot,
    content_hash,
    default_max_bytes,
    extract_snapshot,
    list_files,
)


def _tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def test_same_files_give_the_same_bytes_and_address(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", {"train.py": "print(1)", "lib/util.py": "x = 1", "data/z.csv": "1,2"})
    b = tmp_path / "b"
    # Written in another order, with other timestamps and permissions.
    _tree(b, {"data/z.csv": "1,2", "train.py": "print(1)", "lib/util.py": "x = 1"})
    os.utime(b / "train.py", (1_000_000, 1_000_000))
    os.chmod(b / "train.py", 0o755)
    first, second = build_snapshot(a), build_snapshot(b)
    assert first.data == second.data
    assert first.sha256 == second.sha256 and len(first.sha256) == 64
    assert first.manifest == ("data/z.csv", "lib/util.py", "train.py")
    assert first.ref().size_bytes == len(first.data)


def test_zip_entries_are_sorted_with_fixed_time_and_mode(tmp_path: Path) -> None:
    snap = build_snapshot(_tree(tmp_path, {"b.py": "b", "a.py": "a"}))
    infos = zipfile.ZipFile(io.BytesIO(snap.data)).infolist()
    assert [i.filename for i in infos] == ["a.py", "b.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {stat.S_IMODE(i.external_attr >> 16) for i in infos} == {0o644}


def test_a_changed_byte_changes_the_address(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"train.py": "print(1)"})
    before = build_snapshot(root)
    (root / "train.py").write_text("print(2)")
    after = build_snapshot(root)
    assert before.sha256 != after.sha256
    assert before.content_hash != after.content_hash


def test_amlignore_wins_over_gitignore(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            ".amlignore": "data/\n*.log\n!keep.log\n",
            ".gitignore": "*.py\n",
            "train.py": "x",
            "data/big.bin": "x",
            "a.log": "x",
            "keep.log": "x",
            "sub/data/nested.txt": "x",
        },
    )
    assert list_files(root) == [".amlignore", ".gitignore", "keep.log", "train.py"]


def test_gitignore_is_used_without_amlignore(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {".gitignore": ".venv/\n__pycache__/\n", ".venv/lib.py": "x", "m/__pycache__/c.pyc": "x", "m/a.py": "x"},
    )
    assert list_files(root) == [".gitignore", "m/a.py"]


def test_git_folders_are_left_out(tmp_path: Path) -> None:
    root = _tree(tmp_path, {".git/HEAD": "ref", "a.py": "x"})
    assert list_files(root) == ["a.py"]


def test_symlinks_inside_are_followed_and_outside_are_skipped(tmp_path: Path) -> None:
    outside = _tree(tmp_path / "outside", {"secret.txt": "s"})
    root = _tree(tmp_path / "src", {"real.py": "code", "sub/x.py": "x"})
    (root / "alias.py").symlink_to(root / "real.py")
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "dirlink").symlink_to(root / "sub", target_is_directory=True)
    (root / "broken").symlink_to(root / "nope")
    snap = build_snapshot(root)
    assert snap.manifest == ("alias.py", "real.py", "sub/x.py")
    assert zipfile.ZipFile(io.BytesIO(snap.data)).read("alias.py") == b"code"


def test_over_the_limit_names_the_five_largest_files(tmp_path: Path) -> None:
    root = _tree(tmp_path, {f"f{i}.bin": b"x" * (100 * (i + 1)) for i in range(7)})
    with pytest.raises(BadRequestError) as info:
        build_snapshot(root, max_bytes=1000)
    message = info.value.message
    assert "over the limit" in message and ".amlignore" in message
    for name in ("f6.bin", "f5.bin", "f4.bin", "f3.bin", "f2.bin"):
        assert name in message
    assert "f0.bin" not in message and "f1.bin" not in message
    assert info.value.code == "SnapshotTooLarge"


def test_limit_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path, {"a.bin": b"x" * 50})
    monkeypatch.setenv(MAX_BYTES_ENV, "10")
    assert default_max_bytes() == 10
    with pytest.raises(BadRequestError):
        build_snapshot(root)
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(BadRequestError, match=MAX_BYTES_ENV):
        default_max_bytes()
    monkeypatch.delenv(MAX_BYTES_ENV)
    assert default_max_bytes() == 300 * 1024 * 1024


def test_content_hash(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert content_hash(empty) == EMPTY_CONTENT_HASH == "0" * 32
    root = _tree(tmp_path / "src", {"a.py": "a", "b/c.py": "c"})
    assert content_hash(root) == build_snapshot(root).content_hash
    # Moving bytes between a name and its content must change the hash.
    other = _tree(tmp_path / "other", {"a.pyb": "", "b/c.py": "c"})
    assert content_hash(other) != content_hash(root)


def test_missing_folder_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="does not exist"):
        build_snapshot(tmp_path / "nope")


def test_extract_round_trips(tmp_path: Path) -> None:
    snap = build_snapshot(_tree(tmp_path / "src", {"a.py": "a", "deep/b/c.txt": "c"}))
    dest = tmp_path / "out"
    assert extract_snapshot(snap.data, dest) == ["a.py", "deep/b/c.txt"]
    assert (dest / "deep/b/c.txt").read_text() == "c"


@pytest.mark.parametrize("name", ["../evil.py", "/abs/evil.py", "a/../../evil.py", "a\\..\\evil.py", "C:/evil.py"])
def test_extract_refuses_zip_slip(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadRequestError, match="refused"):
        extract_snapshot(_zip([("ok.py", b"x"), (name, b"evil")]), tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written when any entry is unsafe"
    assert not (tmp_path / "evil.py").exists()


def test_extract_refuses_symlink_entries(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(BadRequestError, match="symbolic link"):
        extract_snapshot(_zip([(info, b"/etc/passwd")]), tmp_path / "out")


def test_extract_refuses_bombs_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="over the limit"):
        extract_snapshot(_zip([("a", b"0" * 5000)]), tmp_path / "out", max_bytes=1000)
    with pytest.raises(BadRequestError, match="not a valid zip"):
        extract_snapshot(b"not a zip", tmp_path / "out2")


def test_check_zip_entries_names_the_bad_entry_and_counts_uncompressed_sizes() -> None:
    from shared.graph.snapshot import check_zip_entries

    def info(name: str, size: int = 1) -> zipfile.ZipInfo:
        found = zipfile.ZipInfo(name)
        found.file_size = size
        return found

    assert check_zip_entries([info("b.py"), info("a/"), info("a/c.py")], 10) == ["a/c.py", "b.py"]
    for bad in ("../../evil.py", "/etc/cron.d/x", "a\\b.py", "C:/x.py"):
        with pytest.raises(BadRequestError) as refused:
            check_zip_entries([info("train.py"), info(bad)], 10)
        assert refused.value.code == "SnapshotUnsafe" and repr(bad) in refused.value.message
    with pytest.raises(BadRequestError, match="appears twice"):
        check_zip_entries([info("a.py"), info("a.py")], 10)
    with pytest.raises(BadRequestError) as big:
        check_zip_entries([info(f"f{i}", 100 * (i + 1)) for i in range(7)], 1000)
    assert big.value.code == "SnapshotTooLarge" and "f6" in big.value.message and "f1 " not in big.value.message
