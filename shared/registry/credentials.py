"""Datastore credentials (account keys, SAS tokens), encrypted before they reach a table.

A credential is sealed with AES-256-GCM under the service's datastore key, bound to the datastore
it belongs to (the key of its row is the associated data, so a sealed value copied to another row
does not open). The key is 32 random bytes in the private blob container ``amlpipe-secrets``
(blob ``datastore-credential-key``, created once with If-None-Match: *), or the app setting
``AMLPIPE_DATASTORE_KEY`` (base64, e.g. a Key Vault reference). Credentials are never returned by
the API, never logged, and opened only to mint short-lived SAS tokens.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping

from azure.storage.blob import BlobServiceClient
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.auth.keystore import CONTAINER, get_or_create_blob
from shared.errors import AmlPipeError

KEY_BLOB = "datastore-credential-key"
KEY_SETTING = "AMLPIPE_DATASTORE_KEY"
_PREFIX = "v1:"


class CredentialSealer:
    """Seals and opens datastore credentials with the service's datastore key.

    Args:
        blobs: the app's blob service client (holds the key unless the app setting does).
        settings: app settings (default: the environment).
    """

    def __init__(self, blobs: BlobServiceClient, *, settings: Mapping[str, str] | None = None) -> None:
        self._blobs = blobs
        self._settings = settings
        self._key: bytes | None = None

    def _aead(self) -> AESGCM:
        if self._key is None:
            configured = (os.environ if self._settings is None else self._settings).get(KEY_SETTING)
            if configured:
                try:
                    key = base64.b64decode(configured, validate=True)
                except binascii.Error as exc:
                    raise AmlPipeError(f"The app setting '{KEY_SETTING}' is not base64.") from exc
            else:
                key = get_or_create_blob(self._blobs, CONTAINER, KEY_BLOB, lambda: secrets.token_bytes(32))
            if len(key) != 32:
                raise AmlPipeError(f"The datastore key must be 32 bytes; it is {len(key)}.")
            self._key = key
        return AESGCM(self._key)

    def seal(self, credential: str, *, bound_to: str) -> str:
        """``credential`` encrypted, as text for a table property, usable only for ``bound_to``."""
        nonce = secrets.token_bytes(12)
        sealed = self._aead().encrypt(nonce, credential.encode("utf-8"), bound_to.encode("utf-8"))
        return _PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, bound_to: str) -> str:
        """The credential ``seal`` made for ``bound_to``.

        Raises:
            AmlPipeError: the value does not open with this key and binding (a 500: tampered or the
                key changed); the message never contains the value.
        """
        try:
            if not sealed.startswith(_PREFIX):
                raise ValueError("unknown format")
            raw = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
            plain = self._aead().decrypt(raw[:12], raw[12:], bound_to.encode("utf-8"))
        except (ValueError, InvalidTag, binascii.Error) as exc:
            raise AmlPipeError(f"The stored credential of datastore '{bound_to}' cannot be opened.") from exc
        return plain.decode("utf-8")
