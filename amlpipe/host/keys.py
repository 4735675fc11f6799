"""Function keys for ``--enable-auth``, kept where the real host keeps them, but hashed.

The real host stores keys in blob container ``azure-webjobs-secrets`` at ``{hostId}/host.json``.
We keep that container but use our own blob, ``{hostId}/amlpipe-keys.json`` (a different format, so
a file written by ``func start --enableAuth`` for the same host id is left alone), and store only
SHA-256 hashes of the keys; a key is shown once, when it is
created, by writing it to a git-ignored file (``.amlpipe/host-keys.json`` beside the app) with
mode 0600. Keys are 256-bit random values, so a fast hash is enough.

Which key satisfies which level (as the real host): ``function`` accepts the function's own keys,
any host key, or the master key; ``admin`` accepts only the master key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobClient, BlobServiceClient

from amlpipe.host.errors import HostConfigError
from amlpipe.host.storage import SECRETS_CONTAINER, ensure_container

#: Our keys blob under ``azure-webjobs-secrets/{hostId}/``.
KEYS_BLOB = "amlpipe-keys.json"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class KeyStore:
    """Hashed master, host and function keys."""

    master: str
    host: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict[str, str]] = field(default_factory=dict)

    def authorizes(self, key: str, *, level: str, function: str) -> bool:
        digest = _hash(key)
        if hmac.compare_digest(digest, self.master):
            return True
        if level == "admin":
            return False
        candidates = [*self.host.values(), *self.functions.get(function.lower(), {}).values()]
        return any(hmac.compare_digest(digest, c) for c in candidates)

    def to_json(self) -> dict[str, Any]:
        return {
            "hashAlgorithm": "sha256",
            "masterKey": {"name": "_master", "hash": self.master},
            "functionKeys": [{"name": n, "hash": h} for n, h in sorted(self.host.items())],
            "functions": {
                f: [{"name": n, "hash": h} for n, h in sorted(keys.items())]
                for f, keys in sorted(self.functions.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyStore:
        return cls(
            master=data["masterKey"]["hash"],
            host={k["name"]: k["hash"] for k in data.get("functionKeys", [])},
            functions={
                f.lower(): {k["name"]: k["hash"] for k in keys} for f, keys in (data.get("functions") or {}).items()
            },
        )


async def load_or_create_keys(service: BlobServiceClient, host_id: str, keys_file: Path) -> KeyStore:
    """Load the host's hashed keys, creating a master and a ``default`` host key on first start.

    Creation is ``If-None-Match: *``, so two hosts starting together agree on one set of keys; only
    the host that created them writes the plaintext file.
    """
    await ensure_container(service, SECRETS_CONTAINER)
    blob = service.get_blob_client(SECRETS_CONTAINER, f"{host_id}/{KEYS_BLOB}")
    existing = await _download(blob)
    if existing is not None:
        return existing
    master, default = new_key(), new_key()
    store = KeyStore(master=_hash(master), host={"default": _hash(default)})
    # The plaintext goes to a private temporary file first: if writing it fails, no keys exist that
    # nobody could ever read. It becomes the keys file only if our keys are the ones committed.
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    staging = keys_file.with_name(f".{keys_file.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        json.dump({"hostId": host_id, "masterKey": master, "functionKeys": {"default": default}}, handle, indent=2)
    try:
        await blob.upload_blob(
            json.dumps(store.to_json()).encode("utf-8"), overwrite=False, match_condition=MatchConditions.IfMissing
        )
    except ResourceExistsError:
        staging.unlink()  # another host created the keys first: theirs stand
        winner = await _download(blob)
        if winner is None:
            raise HostConfigError("Function keys appeared and vanished while starting; start the host again.") from None
        return winner
    except BaseException:
        staging.unlink()
        raise
    os.replace(staging, keys_file)
    return store


async def _download(blob: BlobClient) -> KeyStore | None:
    try:
        downloader = await blob.download_blob()
        data = json.loads(await downloader.readall())
    except ResourceNotFoundError:
        return None
    try:
        return KeyStore.from_json(data)
    except (KeyError, TypeError) as exc:
        raise HostConfigError(
            f"{SECRETS_CONTAINER}/{blob.blob_name} is not an amlpipe keys file; delete it to create new keys."
        ) from exc
