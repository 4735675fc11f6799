"""Path rules for the blobs a step reads: globs, folders, and where each blob lands (pure, no I/O).

A path on a datastore is a blob (a file), a folder (every blob under ``path/``), or a glob: ``*``
and ``?`` match within a segment, ``[...]`` is a character class, ``**`` any number of segments.
:func:`glob_base` is the fixed folder a glob starts from (listing starts there) and
:func:`glob_pattern` the regex that selects its blobs. A blob lands under its input's folder at its
name relative to a base (:func:`parent_of` a single file, :func:`common_base` across the paths of one
dataset), and :func:`unsafe_relative` says why a relative name could leave that folder (zip-slip).

The listing and download that apply these rules are :mod:`shared.orchestration.inputs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath

__all__ = ["common_base", "glob_base", "glob_pattern", "is_glob", "parent_of", "unsafe_relative"]

_GLOB = re.compile(r"[*?\[]")


def is_glob(path: str) -> bool:
    """Whether ``path`` is a glob (has ``*``, ``?`` or ``[``), not a blob or folder name."""
    return _GLOB.search(path) is not None


def glob_base(pattern: str) -> str:
    """The fixed folder a glob starts from: ``data/2024/*.csv`` → ``data/2024/``; ``**`` → ``""``."""
    fixed: list[str] = []
    for segment in pattern.split("/")[:-1]:
        if _GLOB.search(segment):
            break
        fixed.append(segment)
    return "".join(f"{s}/" for s in fixed)


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A regex that fully matches the blob names ``pattern`` selects.

    ``*`` and ``?`` stay within a segment, ``[...]`` is a character class (``[!...]`` negated),
    and a ``**`` segment matches any number of segments (a trailing ``**`` everything below).
    """
    segments = pattern.split("/")
    out = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out += ".*" if last else "(?:[^/]+/)*"
        else:
            out += _segment_regex(segment) + ("" if last else "/")
    return re.compile(out, re.DOTALL)


def _segment_regex(segment: str) -> str:
    out = ""
    i, n = 0, len(segment)
    while i < n:
        char = segment[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            j = i + 1
            if j < n and segment[j] in "!^":
                j += 1
            if j < n and segment[j] == "]":  # a leading ']' is a member, as in fnmatch
                j += 1
            end = segment.find("]", j)
            if end == -1:
                out += re.escape(char)
            else:
                body = segment[i + 1 : end]
                negate = body[:1] in ("!", "^")
                members = "".join(c if c == "-" else re.escape(c) for c in (body[1:] if negate else body))
                out += "[" + ("^/" if negate else "") + members + "]"
                i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def parent_of(name: str) -> str:
    """The folder of blob ``name`` with its trailing ``/`` (``""`` at the root)."""
    head, _, _ = name.rpartition("/")
    return f"{head}/" if head else ""


def common_base(bases: Iterable[str]) -> str:
    """The longest folder (``a/b/``) that every one of ``bases`` (folders ending in ``/``, or ``""``) is in."""
    split = [b.split("/")[:-1] for b in bases]
    if not split:
        return ""
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return "".join(f"{s}/" for s in common)


def unsafe_relative(rel: str) -> str | None:
    """Why ``rel`` cannot be a file path under a folder (zip-slip), or None when it is safe."""
    if not rel:
        return "it is empty"
    if "\\" in rel or "\x00" in rel:
        return "it contains a backslash or NUL"
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        return "it is absolute"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "it has an empty, '.' or '..' segment"
    if any(ord(c) < 32 for c in rel):
        return "it contains control characters"
    return None
