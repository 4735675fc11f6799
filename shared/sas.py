"""SAS tokens for the app's own storage account, signed with its account key or a user delegation key.

A connection string with an account key (Azurite, a keyed account) signs with the key. An
identity-based connection (``AzureWebJobsStorage__accountName``, see :mod:`shared.storage`) has no
key: it signs a *user delegation SAS* with a key the Blob service hands to the identity
(``get_user_delegation_key``, allowed by Storage Blob Data Owner, Contributor, Reader or Delegator).
Such a SAS is valid at most 7 days, never past its key, and Azure accepts it only while the identity
keeps its role.

Fetching a delegation key is a round trip, so each blob service client keeps one
(:func:`signer_for`) for a day and fetches the next one when a SAS would outlive it. A key is
requested from a little in the past, so a SAS that starts a few minutes early (for clock skew)
still starts inside it.

One request fetches the key while the others wait for it, so that request is bounded
(:data:`KEY_REQUEST_OPTIONS`: short timeouts, no retry) and a waiting SAS gives up after
:data:`KEY_WAIT` with a 503 instead of queueing behind a slow fetch; a failed fetch is not kept, the
next SAS asks again.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

from shared.errors import AmlPipeError

__all__ = [
    "KEY_LIFETIME",
    "KEY_REQUEST_OPTIONS",
    "KEY_WAIT",
    "MAX_SAS_LIFETIME",
    "DelegationKeys",
    "SasSigner",
    "signer_for",
]

#: How long a fetched user delegation key is valid (and reused).
KEY_LIFETIME = timedelta(days=1)
#: Azure's limit for a user delegation key, hence for a user delegation SAS.
MAX_SAS_LIFETIME = timedelta(days=7)
#: How far in the past a key starts: more than any SAS start backdates for clock skew.
KEY_BACKDATE = timedelta(minutes=15)
#: Azure measures the 7 days from its own clock: keep this much below the limit.
_LIMIT_MARGIN = timedelta(minutes=5)
#: The delegation key request's options: every SAS of the client waits while it runs, so not the SDK's
#: defaults (3 retries with 15 s+ backoffs, 60 s read timeouts: minutes on a network fault). Server and
#: socket timeouts of seconds, and no retry (the storage retry policy's first backoff alone is 15 s):
#: the next SAS asks again.
KEY_REQUEST_OPTIONS: dict[str, Any] = {"timeout": 10, "connection_timeout": 5, "read_timeout": 10, "retry_total": 0}
#: How long a SAS waits for a key another thread is fetching before it fails (503).
KEY_WAIT = timedelta(seconds=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SasSigner:
    """Signs blob and container SAS tokens for one blob service client's account.

    Args:
        blobs: the app's blob service client: keyed (connection string) or with a token credential.
        clock: the current time (UTC); tests pass their own.
        keys: where the delegation key is kept (:func:`signer_for` shares one per client).
        key_wait: how long to wait for a delegation key another thread is fetching.
    """

    def __init__(
        self,
        blobs: BlobServiceClient,
        *,
        clock: Callable[[], datetime] = _utcnow,
        keys: DelegationKeys | None = None,
        key_wait: timedelta = KEY_WAIT,
    ) -> None:
        self._blobs = blobs
        self._clock = clock
        self._keys = keys or DelegationKeys()
        self._key_wait = key_wait

    @property
    def uses_delegation(self) -> bool:
        """Whether tokens are user delegation SAS (no account key: an identity-based connection)."""
        return self._account_key() is None

    def blob_sas(
        self, container: str, blob: str, permission: BlobSasPermissions, *, start: datetime, expiry: datetime
    ) -> str:
        """A SAS token (no leading ``?``) for blob ``container/blob``, valid from ``start`` to ``expiry``.

        Raises:
            AmlPipeError: the connection can sign with neither a key nor an identity, or the identity may
                not get a user delegation key; a 503 when the key could not be had in time (Storage did
                not answer, or another request's fetch took longer than ``key_wait``).
        """
        account, signing = self._signing(start, expiry)
        return generate_blob_sas(account, container, blob, permission=permission, start=start, expiry=expiry, **signing)

    def container_sas(
        self, container: str, permission: ContainerSasPermissions, *, start: datetime, expiry: datetime
    ) -> str:
        """A SAS token (no leading ``?``) for ``container``, valid from ``start`` to ``expiry``.

        Raises:
            AmlPipeError: as :meth:`blob_sas`.
        """
        account, signing = self._signing(start, expiry)
        return generate_container_sas(account, container, permission=permission, start=start, expiry=expiry, **signing)

    def _account_key(self) -> tuple[str, str] | None:
        credential = self._blobs.credential
        name, key = getattr(credential, "account_name", None), getattr(credential, "account_key", None)
        return (str(name), str(key)) if name and key else None

    def _signing(self, start: datetime, expiry: datetime) -> tuple[str, dict[str, Any]]:
        """The account name, and the keyword that signs: ``account_key`` or ``user_delegation_key``."""
        keyed = self._account_key()
        if keyed is not None:
            return keyed[0], {"account_key": keyed[1]}
        if not callable(getattr(self._blobs.credential, "get_token", None)):
            raise AmlPipeError(
                "The app's storage connection has neither an account key nor an identity, so it cannot sign SAS"
                " URLs: use a connection string with AccountKey, or an identity-based connection"
                " (AzureWebJobsStorage__accountName)."
            )
        account = self._blobs.account_name
        if not account:
            raise AmlPipeError(
                f"Cannot tell the storage account's name from the blob endpoint {self._blobs.url}, so cannot sign"
                " SAS URLs with a user delegation key; use the account's standard endpoint"
                " (https://<account>.blob.core.windows.net)."
            )
        return account, {"user_delegation_key": self._delegation_key(start, expiry)}

    def _delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        keys = self._keys
        # One fetch at a time (the others then reuse its key), but nobody waits on it for long.
        if not keys.lock.acquire(timeout=self._key_wait.total_seconds()):
            raise AmlPipeError(
                "Timed out waiting for the user delegation key that signs SAS URLs (Storage is slow to hand it"
                " out); try again.",
                code="ServiceUnavailable",
                status=503,
            )
        try:
            if keys.key is not None and keys.start <= start and expiry <= keys.expiry:
                return keys.key
            now = self._clock()
            limit = now + MAX_SAS_LIFETIME - _LIMIT_MARGIN
            if expiry > limit:
                raise AmlPipeError(
                    f"A user delegation SAS is valid at most {MAX_SAS_LIFETIME.days} days; this one would expire"
                    f" at {expiry.isoformat()}."
                )
            key_start = min(start, now - KEY_BACKDATE)
            key_expiry = min(max(now + KEY_LIFETIME, expiry), limit)
            key = self._fetch(key_start, key_expiry)
            keys.key, keys.start, keys.expiry = key, key_start, key_expiry
            return key
        finally:
            keys.lock.release()

    def _fetch(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        try:
            return self._blobs.get_user_delegation_key(start, expiry, **KEY_REQUEST_OPTIONS)
        except ClientAuthenticationError as exc:
            # The identity got no token (its endpoint down, or no identity): not a missing role.
            if exc.status_code is None:
                raise AmlPipeError(
                    f"Could not get a user delegation key to sign SAS URLs ({type(exc).__name__}): the app's"
                    " identity could not get a token for Storage; check its managed identity, then try again.",
                    code="ServiceUnavailable",
                    status=503,
                ) from exc
            raise AmlPipeError(
                f"Could not get a user delegation key to sign SAS URLs ({exc.status_code}): the app's identity"
                " needs Storage Blob Data Owner (or Storage Blob Delegator) on the storage account."
            ) from exc
        except HttpResponseError as exc:
            status = exc.status_code
            code = getattr(exc, "error_code", None) or status or type(exc).__name__
            if status is not None and (status in (408, 429) or status >= 500):
                raise _unavailable(code) from exc
            raise AmlPipeError(
                f"Could not get a user delegation key to sign SAS URLs ({code}): the app's identity needs"
                " Storage Blob Data Owner (or Storage Blob Delegator) on the storage account."
            ) from exc
        except AzureError as exc:  # no answer: a connection error or a timeout
            raise _unavailable(type(exc).__name__) from exc


def _unavailable(code: object) -> AmlPipeError:
    return AmlPipeError(
        f"Could not get a user delegation key to sign SAS URLs ({code}): Storage did not answer in time; try again.",
        code="ServiceUnavailable",
        status=503,
    )


class DelegationKeys:
    """The user delegation key of one blob service client, and the span it is valid for.

    Kept apart from the client (no reference to it), so :func:`signer_for` can cache it per client
    without keeping the client alive.
    """

    def __init__(self) -> None:
        self.key: UserDelegationKey | None = None
        self.start = datetime.min.replace(tzinfo=UTC)
        self.expiry = datetime.min.replace(tzinfo=UTC)
        self.lock = threading.Lock()


_keys: weakref.WeakKeyDictionary[BlobServiceClient, DelegationKeys] = weakref.WeakKeyDictionary()
_keys_lock = threading.Lock()


def signer_for(blobs: BlobServiceClient) -> SasSigner:
    """A signer for ``blobs`` that shares its delegation key with every other signer of that client, so
    all stores on the process-wide client (:func:`shared.storage.clients`) fetch one key a day."""
    with _keys_lock:
        keys = _keys.get(blobs)
        if keys is None:
            keys = _keys[blobs] = DelegationKeys()
    return SasSigner(blobs, keys=keys)
