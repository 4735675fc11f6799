"""The studio's static files: the page, its scripts and styles, served by the app's own HTTP function.

The studio is a static single-page app in the repository's ``studio/`` folder (no build step, no CDN):
the browser loads it anonymously — it holds no data — and then calls the API with a bearer token, like
any other client. This module decides, without I/O beyond reading that folder once, what a request for
``/api/studio/<path>`` gets::

    site = default_site()
    reply = site.get("js/app.js", if_none_match=request_etag)   # StaticReply(status, body, headers)

Paths come from users, so they are checked before the file system sees them: only a closed set of file
names under ``studio/`` (letters, digits, ``._-`` and ``/``; no hidden names, no ``..``), only the
content types below, and the files are read once into memory — nothing outside the folder can be
reached, not even through a symbolic link, because only what the folder held at load is served.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "CONTENT_TYPES",
    "SECURITY_HEADERS",
    "STUDIO_ROOT",
    "StaticReply",
    "StudioSite",
    "default_site",
    "is_safe_path",
]

#: The folder the studio's files ship in (the repository's ``studio/``, deployed with the app).
STUDIO_ROOT = Path(__file__).resolve().parent.parent / "studio"

#: What the studio may serve, by extension; anything else in the folder (tests, notes) is not served.
CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}

#: The page runs only its own scripts and styles and talks only to its own origin, so an injected
#: string can neither run nor send a token elsewhere; it may not be framed (clickjacking a cancel).
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_INDEX = "index.html"
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
_MAX_PATH = 256


@dataclass(frozen=True)
class StaticReply:
    """What to answer: a status, a body and headers (the function adapts it to an HttpResponse)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


class StudioSite:
    """The studio's files, read once from ``root``; answers GETs for paths under it.

    Args:
        root: the folder holding ``index.html`` and its assets.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._assets = _load(root)

    def names(self) -> list[str]:
        """Every path this site serves, sorted (``index.html`` is also served for the empty path)."""
        return sorted(self._assets)

    def get(self, path: str, *, if_none_match: str | None = None) -> StaticReply:
        """The reply to ``GET /api/studio/<path>``: 200 with the file, 304 when ``if_none_match``
        names its current ETag, 404 for anything the site does not serve (the reply never says why:
        a traversal attempt and a typo look the same)."""
        name = path or _INDEX
        asset = self._assets.get(name) if is_safe_path(name) else None
        if asset is None:
            return StaticReply(404)
        # Revalidate every time (no-cache): a redeployed app serves its new files at once, and an
        # unchanged file costs a 304 with no body.
        headers = {
            **SECURITY_HEADERS,
            "Content-Type": asset.content_type,
            "ETag": asset.etag,
            "Cache-Control": "no-cache",
        }
        if if_none_match and asset.etag in (tag.strip() for tag in if_none_match.split(",")):
            return StaticReply(304, b"", headers)
        return StaticReply(200, asset.body, headers)


@cache
def default_site() -> StudioSite:
    """The site of the deployed ``studio/`` folder, loaded on first use and kept for the process."""
    return StudioSite(STUDIO_ROOT)


def is_safe_path(path: str) -> bool:
    """Whether ``path`` is a plain relative file name the site could hold: segments of letters,
    digits and ``._-`` that do not start with a dot (no ``..``, no hidden files, no backslashes,
    no empty segments, no percent-escapes, at most 256 characters)."""
    return len(path) <= _MAX_PATH and _SAFE_PATH.fullmatch(path) is not None


def _load(root: Path) -> dict[str, _Asset]:
    if not (root / _INDEX).is_file():
        raise FileNotFoundError(f"The studio's {_INDEX} is missing from {root}; deploy the studio/ folder.")
    assets: dict[str, _Asset] = {}
    resolved_root = root.resolve()
    for file in sorted(root.rglob("*")):
        name = file.relative_to(root).as_posix()
        content_type = CONTENT_TYPES.get(file.suffix)
        if content_type is None or not is_safe_path(name) or file.is_symlink() or not file.is_file():
            continue
        if not file.resolve().is_relative_to(resolved_root):  # a linked folder pointing out of the tree
            continue
        body = file.read_bytes()
        assets[name] = _Asset(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
    return assets
