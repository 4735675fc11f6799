"""Source snapshots: a deterministic zip of a step's folder, addressed by the sha256 of its bytes.

What goes in: every regular file under the folder, except what ``.amlignore`` excludes (or, when there
is none, ``.gitignore``; gitignore semantics, read from the folder's root only) and ``.git`` folders.
Symlinks to files inside the folder are stored as the file they point to; symlinks leading outside the
folder, and symlinked folders, are left out. Entries are sorted, timestamps and permissions fixed, so
the same files always give the same zip on the same zlib, hence the same address.

``content_hash`` is the reuse fingerprint of spec §4.1: sha256 over the sorted relative paths and file
bytes; it does not depend on zip or zlib details.

One size rule everywhere: the *uncompressed* total of the files may not exceed the limit
(``AMLPIPE_SNAPSHOT_MAX_BYTES``, default 300 MiB). ``build_snapshot`` applies it to the folder, and
:func:`check_zip_entries` applies it to a zip's central directory, together with the entry rules
(no unsafe path, symlink or duplicate). The server checks uploads with ``check_zip_entries`` and
``extract_snapshot`` uses it before writing anything.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

from shared.errors import BadRequestError
from shared.graph.model import SnapshotRef
from shared.graph.validate import path_problem

DEFAULT_MAX_BYTES = 300 * 1024 * 1024
MAX_BYTES_ENV = "AMLPIPE_SNAPSHOT_MAX_BYTES"
EMPTY_CONTENT_HASH = "0" * 32

_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644
_COMPRESS_LEVEL = 6
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """A built snapshot.

    Attributes:
        data: the zip bytes.
        sha256: hex sha256 of ``data``: the content address.
        manifest: the sorted relative POSIX paths of the files in the zip.
        content_hash: the reuse fingerprint (see :func:`content_hash`).
        files_bytes: the total size of the files before compression.
    """

    data: bytes
    sha256: str
    manifest: tuple[str, ...]
    content_hash: str
    files_bytes: int

    @property
    def size_bytes(self) -> int:
        """The size of the zip."""
        return len(self.data)

    def ref(self) -> SnapshotRef:
        """The wire reference to this snapshot."""
        return SnapshotRef(sha256=self.sha256, size_bytes=self.size_bytes)


def default_max_bytes() -> int:
    """The snapshot size limit: ``AMLPIPE_SNAPSHOT_MAX_BYTES`` if set, else 300 MiB.

    Raises:
        BadRequestError: the variable is not a positive whole number.
    """
    raw = os.environ.get(MAX_BYTES_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise BadRequestError(f"{MAX_BYTES_ENV}={raw!r} is not a positive whole number of bytes", target=MAX_BYTES_ENV)
    return value


def list_files(source_dir: str | os.PathLike[str]) -> list[str]:
    """The sorted relative POSIX paths a snapshot of ``source_dir`` would hold.

    Raises:
        BadRequestError: the folder does not exist, or a file name cannot travel in a snapshot.
    """
    return [rel for rel, _ in _collect(Path(source_dir))]


def content_hash(source_dir: str | os.PathLike[str]) -> str:
    """sha256 over the sorted relative paths and bytes of the snapshot's files; 32 zeros when empty."""
    files = _collect(Path(source_dir))
    if not files:
        return EMPTY_CONTENT_HASH
    digest = hashlib.sha256()
    for rel, path in files:
        _feed(digest, rel, path.read_bytes())
    return digest.hexdigest()


def build_snapshot(source_dir: str | os.PathLike[str], *, max_bytes: int | None = None) -> Snapshot:
    """A deterministic zip of ``source_dir``.

    Args:
        source_dir: the step's folder.
        max_bytes: the limit on the files' total size; :func:`default_max_bytes` when None.

    Raises:
        BadRequestError: the folder is missing, or its files exceed the limit (the message names the
            five largest files and their sizes).
    """
    root = Path(source_dir)
    limit = default_max_bytes() if max_bytes is None else max_bytes
    files = _collect(root)
    sizes = [(rel, path.stat().st_size) for rel, path in files]
    total = sum(size for _, size in sizes)
    if total > limit:
        raise _too_large(
            f"The snapshot of {str(root)!r}",
            total,
            limit,
            sizes,
            target="source_directory",
            advice=f"Exclude files with .amlignore, give each step its own source_directory, or raise {MAX_BYTES_ENV}.",
        )
    buffer = io.BytesIO()
    digest = hashlib.sha256()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL) as archive:
        for rel, path in files:
            data = path.read_bytes()
            _feed(digest, rel, data)
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.create_system = 3
            info.external_attr = _FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data, compresslevel=_COMPRESS_LEVEL)
    data = buffer.getvalue()
    return Snapshot(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        manifest=tuple(rel for rel, _ in files),
        content_hash=digest.hexdigest() if files else EMPTY_CONTENT_HASH,
        files_bytes=total,
    )


def extract_snapshot(zip_bytes: bytes, dest: str | os.PathLike[str], *, max_bytes: int | None = None) -> list[str]:
    """Unpack a snapshot into ``dest``, refusing anything that could write outside it.

    Every entry is checked (:func:`check_zip_entries`) before anything is written, and entries
    resolving outside ``dest`` are refused; the uncompressed total is also counted while reading, so
    a zip whose headers understate its sizes is refused too.

    Returns:
        The relative paths of the files written, sorted.

    Raises:
        BadRequestError: the bytes are not a valid zip, an entry is unsafe (``SnapshotUnsafe``) or the
            files are over the limit (``SnapshotTooLarge``).
    """
    limit = default_max_bytes() if max_bytes is None else max_bytes
    root = Path(dest).resolve()
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise BadRequestError(f"The snapshot is not a valid zip file: {exc}", target="snapshot") from exc
    check_zip_entries(infos, limit)
    planned: list[tuple[zipfile.ZipInfo, Path, str]] = []
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        target = (root / name).resolve()
        if not target.is_relative_to(root):
            raise _unsafe(name, "it resolves outside the destination folder")
        planned.append((info, target, name))
    written = 0
    try:
        for info, target, _ in planned:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > limit:
                        raise BadRequestError(
                            f"The snapshot unpacks to more than {_human(limit)}; it is refused.",
                            target="snapshot",
                            code="SnapshotTooLarge",
                        )
                    sink.write(chunk)
            os.chmod(target, _FILE_MODE & 0o777)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise BadRequestError(f"The snapshot is not a valid zip file: {exc}", target="snapshot") from exc
    finally:
        archive.close()
    return sorted(name for _, _, name in planned)


def check_zip_entries(
    infos: Iterable[zipfile.ZipInfo], limit: int, *, target: str = "snapshot", what: str = "The snapshot"
) -> list[str]:
    """Check a snapshot zip's central directory; the sorted names of its files.

    Every entry must be a safe relative path (``path_problem``: not absolute, no ``..`` segment,
    backslash, NUL or drive letter), not a symbolic link (by its Unix mode in ``external_attr``) and
    not a duplicate; the sum of the files' *uncompressed* sizes may not exceed ``limit``.

    Raises:
        BadRequestError: ``SnapshotUnsafe`` naming the first bad entry, or ``SnapshotTooLarge`` naming
            the five largest files with their sizes.
    """
    seen: set[str] = set()
    sizes: list[tuple[str, int]] = []
    for info in infos:
        name = info.filename
        path = name[:-1] if info.is_dir() else name
        problem = path_problem(path)
        if problem is None and stat.S_ISLNK(info.external_attr >> 16):
            problem = "it is a symbolic link"
        if problem is None and name in seen:
            problem = "it appears twice"
        if problem is not None:
            raise _unsafe(name, problem, target=target)
        seen.add(name)
        if not info.is_dir():
            sizes.append((name, info.file_size))
    total = sum(size for _, size in sizes)
    if total > limit:
        raise _too_large(what, total, limit, sizes, target=target, advice="Exclude files with .amlignore.")
    return sorted(name for name, _ in sizes)


def _unsafe(name: str, problem: str, *, target: str = "snapshot") -> BadRequestError:
    return BadRequestError(
        f"Snapshot entry {name[:300]!r} is refused: {problem}.", target=target, code="SnapshotUnsafe"
    )


def _too_large(
    what: str, total: int, limit: int, sizes: list[tuple[str, int]], *, target: str, advice: str
) -> BadRequestError:
    largest = sorted(sizes, key=lambda item: (-item[1], item[0]))[:5]
    listing = ", ".join(f"{rel[:200]} ({_human(size)})" for rel, size in largest)
    return BadRequestError(
        f"{what} is {_human(total)} uncompressed, over the limit of {_human(limit)}. Largest files: {listing}. "
        f"{advice}",
        target=target,
        code="SnapshotTooLarge",
    )


def _collect(root: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, file to read) for every file the snapshot holds, sorted by path."""
    if not root.is_dir():
        raise BadRequestError(
            f"source_directory {str(root)!r} does not exist or is not a folder", target="source_directory"
        )
    real_root = root.resolve()
    spec = _ignore_spec(root)
    found: list[tuple[str, Path]] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(current)
        rel_base = base.relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        kept = []
        for dirname in sorted(dirnames):
            if dirname == ".git" or (base / dirname).is_symlink():
                continue
            if spec is not None and spec.match_file(prefix + dirname + "/"):
                continue
            kept.append(dirname)
        dirnames[:] = kept
        for filename in filenames:
            rel = prefix + filename
            if spec is not None and spec.match_file(rel):
                continue
            path = base / filename
            if path.is_symlink():
                resolved = path.resolve()
                if not resolved.is_relative_to(real_root) or not resolved.is_file():
                    continue
                path = resolved
            elif not path.is_file():
                continue  # sockets, fifos, devices
            problem = path_problem(rel)
            if problem is not None:
                raise BadRequestError(
                    f"File {rel!r} cannot be part of a snapshot: {problem}. Rename it or exclude it in .amlignore.",
                    target="source_directory",
                )
            found.append((rel, path))
    found.sort(key=lambda item: item[0])
    return found


def _ignore_spec(root: Path) -> pathspec.GitIgnoreSpec | None:
    for name in (".amlignore", ".gitignore"):
        candidate = root / name
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            return pathspec.GitIgnoreSpec.from_lines(lines)
    return None


def _feed(digest: hashlib._Hash, rel: str, data: bytes) -> None:
    # Length-prefixed so that no two different file sets feed the same byte stream.
    digest.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
    digest.update(data)


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"
