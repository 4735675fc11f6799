"""Small secrets the service makes for itself, kept in a private blob container.

Container ``amlpipe-secrets`` (no public access):

    token-signing-key   32 random bytes: the HS256 key of the token endpoint's tokens
    tenant-id           this deployment's tenant id (a GUID), the ``tid`` of its tokens

Each is created on first use with ``If-None-Match: *``: when several instances start at once, one
write wins and every instance reads the winner, so they all agree. App settings override both
(``AMLPIPE_TOKEN_SIGNING_KEY``, ``AMLPIPE_TENANT_ID``), e.g. to keep the key in Key Vault.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError

CONTAINER = "amlpipe-secrets"
SIGNING_KEY_BLOB = "token-signing-key"
TENANT_BLOB = "tenant-id"
SIGNING_KEY_SETTING = "AMLPIPE_TOKEN_SIGNING_KEY"
TENANT_SETTING = "AMLPIPE_TENANT_ID"
MIN_KEY_BYTES = 32


def get_or_create_blob(blobs: BlobServiceClient, container: str, name: str, make: Callable[[], bytes]) -> bytes:
    """The content of ``container/name``, written first with ``make()`` if the blob does not exist.

    Concurrent callers get the same bytes: the write is conditional (If-None-Match: *), and a loser
    reads what the winner wrote.
    """
    container_client = blobs.get_container_client(container)
    try:
        container_client.create_container()  # private: no public access level
    except ResourceExistsError:
        pass
    blob = container_client.get_blob_client(name)
    try:
        blob.upload_blob(make(), overwrite=False)
    except ResourceExistsError:
        pass
    return blob.download_blob().readall()


def signing_key(blobs: BlobServiceClient, settings: Mapping[str, str], *, container: str = CONTAINER) -> bytes:
    """The HS256 signing key: ``AMLPIPE_TOKEN_SIGNING_KEY`` (UTF-8, ≥ 32 bytes), else the stored random key.

    Raises:
        AmlPipeError: the setting is shorter than 32 bytes.
    """
    configured = settings.get(SIGNING_KEY_SETTING)
    if configured:
        key = configured.encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise AmlPipeError(f"The app setting '{SIGNING_KEY_SETTING}' must be at least {MIN_KEY_BYTES} bytes long.")
        return key
    return get_or_create_blob(blobs, container, SIGNING_KEY_BLOB, lambda: secrets.token_bytes(32))


def tenant_id(blobs: BlobServiceClient, settings: Mapping[str, str], *, container: str = CONTAINER) -> str:
    """This deployment's tenant id: ``AMLPIPE_TENANT_ID``, else a GUID made once and stored."""
    configured = settings.get(TENANT_SETTING)
    if configured:
        return configured
    raw = get_or_create_blob(blobs, container, TENANT_BLOB, lambda: str(uuid.uuid4()).encode("ascii"))
    return raw.decode("ascii").strip()
