"""The engine's one seam to Azure Storage: service clients for the app's storage account.

Engine modules get their clients here and nowhere else::

    from shared import storage

    table = storage.clients().tables.get_table_client(storage.table_name("principals"))

How to reach the account comes from the app settings, as the Functions host reads its own
``AzureWebJobsStorage`` connection (:class:`StorageAccount`):

- ``AzureWebJobsStorage``: a connection string (Azurite locally, an account key). It wins when set.
- otherwise an identity-based connection: ``AzureWebJobsStorage__accountName`` (the endpoints are
  ``https://<name>.blob|queue|table.core.windows.net``), or the explicit
  ``AzureWebJobsStorage__blobServiceUri``, ``__queueServiceUri`` and ``__tableServiceUri``
  (``__serviceUri`` is an alias of the blob one), with ``__clientId`` for a user-assigned identity.
  With ``__credential`` = ``managedidentity`` (as on Azure) tokens come from the managed identity alone
  (``ManagedIdentityCredential``), as the host gets its own: stray ``AZURE_CLIENT_ID``/``SECRET``
  variables cannot make the engine another principal. Unset, they come from ``DefaultAzureCredential``,
  so a developer's ``az login`` works too. One credential per process per (kind, client id): it
  caches its tokens.

Setting names match as the host reads them: each name as documented, else case-insensitively.

``clients()`` returns process-wide clients, created on first use and kept for the life of the
process (the Azure SDK clients are thread-safe and pool their connections, which matters on Azure
where every new connection costs a TLS handshake). Do not close them. Code that runs outside the
Functions host (the CLI, tests) opens its own with ``StorageClients.from_settings(...)`` in a ``with``
block.

Table names take the optional prefix ``AMLPIPE_TABLE_PREFIX`` so tests (and several apps on one
account) can keep their tables apart. Table names must be alphanumeric, start with a letter and be
3-63 characters long.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.errors import AmlPipeError

STORAGE_SETTING = "AzureWebJobsStorage"
TABLE_PREFIX_SETTING = "AMLPIPE_TABLE_PREFIX"
#: The identity-based form: ``AzureWebJobsStorage__<property>``, as the Functions host names them.
ACCOUNT_NAME_SETTING = f"{STORAGE_SETTING}__accountName"
SERVICE_URI_SETTINGS = {
    "blob": f"{STORAGE_SETTING}__blobServiceUri",
    "queue": f"{STORAGE_SETTING}__queueServiceUri",
    "table": f"{STORAGE_SETTING}__tableServiceUri",
}
BLOB_ALIAS_SETTING = f"{STORAGE_SETTING}__serviceUri"  # blob only, as the blob extension reads it
CREDENTIAL_SETTING = f"{STORAGE_SETTING}__credential"
CLIENT_ID_SETTING = f"{STORAGE_SETTING}__clientId"
_UNSUPPORTED_SETTINGS = {
    f"{STORAGE_SETTING}__managedIdentityResourceId": f"name the user-assigned identity by its client id in"
    f" '{CLIENT_ID_SETTING}' instead",
    f"{STORAGE_SETTING}__clientSecret": "a secret in app settings defeats an identity-based connection; locally,"
    " sign in with 'az login' (or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, which"
    " DefaultAzureCredential reads)",
}

_NAMES = (
    STORAGE_SETTING,
    ACCOUNT_NAME_SETTING,
    *SERVICE_URI_SETTINGS.values(),
    BLOB_ALIAS_SETTING,
    CREDENTIAL_SETTING,
    CLIENT_ID_SETTING,
    *_UNSUPPORTED_SETTINGS,
)
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


@dataclass(frozen=True)
class StorageAccount:
    """How the app reaches its storage account: a connection string, or service URLs and an identity.

    A plain value resolved from the app settings alone (:meth:`from_settings`, no I/O), so it keys the
    process-wide clients and can be checked in unit tests. Exactly one form is set: ``connection_string``,
    or the three service URLs (with ``client_id`` naming a user-assigned managed identity, or None, and
    ``managed_identity`` when ``__credential`` says ``managedidentity``: the managed identity only, not
    ``DefaultAzureCredential``'s chain).
    """

    connection_string: str | None = field(default=None, repr=False)  # a secret: never in a repr or log
    blob_url: str | None = None
    queue_url: str | None = None
    table_url: str | None = None
    client_id: str | None = None
    managed_identity: bool = False

    @property
    def uses_identity(self) -> bool:
        """Whether clients authenticate with a token (:func:`identity_credential`), not a connection string."""
        return self.connection_string is None

    @classmethod
    def from_settings(cls, settings: Mapping[str, str] | None = None) -> StorageAccount:
        """The account of ``settings`` (default: the environment): the connection string when set, else
        the identity-based settings.

        Raises:
            AmlPipeError: neither form is set, or a setting is malformed (a deployment fault, so a 500).
                The message names the settings, never a secret.
        """
        values = _storage_settings(os.environ if settings is None else settings)
        connection = values.get(STORAGE_SETTING.lower())
        if connection:
            _check_connection_string(connection)
            return cls(connection_string=connection)
        return _identity_account(values)


def _storage_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """The non-empty storage settings by lower-case name, values stripped.

    Each name is resolved on its own, as the Functions host reads setting names: under its documented
    name (a dictionary lookup: this runs on every ``clients()`` call), else matched case-insensitively
    (``AzureWebJobsStorage__accountName`` with ``AZUREWEBJOBSSTORAGE__CLIENTID`` gives both).
    """
    found: dict[str, str] = {}
    other_cases: dict[str, str] | None = None  # read once, only when a name is not there as documented
    for name in _NAMES:
        value = settings.get(name)
        if not value or not value.strip():
            if other_cases is None:
                other_cases = _case_insensitive(settings)
            value = other_cases.get(name.lower())
        if value and value.strip():
            found[name.lower()] = value.strip()
    return found


def _case_insensitive(settings: Mapping[str, str]) -> dict[str, str]:
    """The non-empty ``AzureWebJobsStorage*`` settings by lower-case name (the first of names that differ by case)."""
    prefix = STORAGE_SETTING.lower()
    found: dict[str, str] = {}
    for name in settings:
        lower = name.lower()
        if lower.startswith(prefix) and lower not in found and (value := settings.get(name)) and value.strip():
            found[lower] = value
    return found


def _setting(settings: Mapping[str, str], name: str) -> str | None:
    return settings.get(name.lower())


def _check_connection_string(connection: str) -> None:
    # Only the shape: the SDK parses the rest. The value holds a key, so no message quotes it.
    parts = [part for part in connection.split(";") if part.strip()]
    if not parts or any(not part.partition("=")[0].strip() or "=" not in part for part in parts):
        raise AmlPipeError(
            f"The app setting '{STORAGE_SETTING}' is not a storage connection string (Key=Value pairs separated"
            " by ';', e.g. 'UseDevelopmentStorage=true')."
        )


def _identity_account(settings: Mapping[str, str]) -> StorageAccount:
    for name, instead in _UNSUPPORTED_SETTINGS.items():
        if _setting(settings, name):
            raise AmlPipeError(f"The app setting '{name}' is not supported: {instead}.")
    account_name = _setting(settings, ACCOUNT_NAME_SETTING)
    given: dict[str, tuple[str, str]] = {}  # service: (value, the setting it came from)
    for service, name in SERVICE_URI_SETTINGS.items():
        value, source = _setting(settings, name), name
        if value is None and service == "blob":
            value, source = _setting(settings, BLOB_ALIAS_SETTING), BLOB_ALIAS_SETTING
        if value is not None:
            given[service] = (value, source)
    if account_name is None and not given:
        raise AmlPipeError(
            f"Storage is not configured: set the app setting '{STORAGE_SETTING}' (a connection string) or"
            f" '{ACCOUNT_NAME_SETTING}' (an identity-based connection; or the service URIs"
            f" {', '.join(repr(n) for n in SERVICE_URI_SETTINGS.values())})."
        )
    if account_name is not None and not _ACCOUNT_NAME.fullmatch(account_name):
        raise AmlPipeError(
            f"The app setting '{ACCOUNT_NAME_SETTING}' must be a storage account name: 3-24 lower-case letters"
            " and digits."
        )
    urls: dict[str, str] = {}
    for service, name in SERVICE_URI_SETTINGS.items():
        if service in given:
            urls[service] = _service_url(*given[service])
        elif account_name is not None:
            urls[service] = f"https://{account_name}.{service}.core.windows.net"
        else:
            raise AmlPipeError(
                f"The app setting '{name}' is not set: an identity-based connection needs the blob, queue and"
                f" table service URIs, or '{ACCOUNT_NAME_SETTING}' to infer them."
            )
    credential = _setting(settings, CREDENTIAL_SETTING)
    if credential is not None and credential.lower() != "managedidentity":
        raise AmlPipeError(
            f"The app setting '{CREDENTIAL_SETTING}' must be 'managedidentity' (or unset: DefaultAzureCredential"
            f" then also tries a developer's Azure CLI login); it is {credential!r}."
        )
    return StorageAccount(
        blob_url=urls["blob"],
        queue_url=urls["queue"],
        table_url=urls["table"],
        client_id=_setting(settings, CLIENT_ID_SETTING),
        managed_identity=credential is not None,
    )


def _service_url(value: str, setting: str) -> str:
    parts = urlsplit(value)
    # Bearer tokens go over TLS only (azure-core refuses otherwise), and a URL with a query would be
    # a SAS: neither works with an identity.
    if parts.scheme.lower() != "https" or not parts.hostname or parts.query or parts.fragment:
        raise AmlPipeError(
            f"The app setting '{setting}' must be an https URL of a storage service, without a query"
            " (e.g. https://<account>.blob.core.windows.net)."
        )
    return value.rstrip("/")


def table_name(base: str, settings: Mapping[str, str] | None = None) -> str:
    """``base`` with the ``AMLPIPE_TABLE_PREFIX`` prefix applied, checked against Azure's naming rules.

    Raises:
        ValueError: the result is not a valid table name (alphanumeric, starts with a letter, 3-63 chars).
    """
    prefix = (os.environ if settings is None else settings).get(TABLE_PREFIX_SETTING, "")
    name = f"{prefix}{base}"
    if not _TABLE_NAME.match(name):
        raise ValueError(
            f"'{name}' is not a valid table name: use letters and digits only, start with a letter, 3-63 characters"
            f" (check {TABLE_PREFIX_SETTING})."
        )
    return name


class LazyTable:
    """One table, created (if absent) the first time it is used; shared by every store.

    Args:
        tables: the account's table service client (the caller owns it).
        name: the table's full name, prefix applied: ``table_name(base, settings)``.
    """

    def __init__(self, tables: TableServiceClient, name: str) -> None:
        self._tables = tables
        self.name = name
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_base(cls, tables: TableServiceClient, base: str, settings: Mapping[str, str] | None = None) -> LazyTable:
        """The table ``base`` with ``AMLPIPE_TABLE_PREFIX`` from ``settings`` (default: the environment)."""
        return cls(tables, table_name(base, settings))

    def client(self) -> TableClient:
        """The table's client; the table exists once this returns."""
        with self._lock:
            if self._client is None:
                self._client = self._tables.create_table_if_not_exists(self.name)
            return self._client


_credentials: dict[tuple[bool, str | None], TokenCredential] = {}
_credentials_lock = threading.Lock()


def identity_credential(client_id: str | None = None, *, managed_identity: bool = False) -> TokenCredential:
    """The process's token credential for an identity-based connection.

    ``managed_identity`` (``__credential`` = ``managedidentity``): a ``ManagedIdentityCredential`` of
    ``client_id`` (None: the system-assigned identity), as the Functions host authenticates; it never
    signs in as a service principal from ``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET`` variables (as
    ``DefaultAzureCredential``'s first link, ``EnvironmentCredential``, does), so those cannot switch
    the principal.
    Otherwise a ``DefaultAzureCredential`` with ``client_id`` as its managed identity (its chain also
    tries environment variables and a developer's ``az login``).

    One per process per (kind, ``client_id``), because it caches its tokens: a new one per client would
    ask the identity endpoint again. Creating it makes no network call; the first token request does.
    """
    with _credentials_lock:
        found = _credentials.get((managed_identity, client_id))
        if found is None:
            # Only identity-based connections need azure.identity.
            if managed_identity:
                from azure.identity import ManagedIdentityCredential

                found = ManagedIdentityCredential(client_id=client_id)
            else:
                from azure.identity import DefaultAzureCredential

                found = DefaultAzureCredential(managed_identity_client_id=client_id)
            _credentials[(managed_identity, client_id)] = found
        return found


def _account_credential(account: StorageAccount) -> TokenCredential:
    return identity_credential(account.client_id, managed_identity=account.managed_identity)


def blob_service(
    account: StorageAccount, *, credential: TokenCredential | None = None, **options: Any
) -> BlobServiceClient:
    """A new blob service client of ``account`` (``options`` go to the client: retries, timeouts)."""
    if account.connection_string is not None:
        return BlobServiceClient.from_connection_string(account.connection_string, **options)
    assert account.blob_url is not None
    return BlobServiceClient(account.blob_url, credential=credential or _account_credential(account), **options)


@dataclass
class StorageClients:
    """Table, Blob and Queue service clients for one storage account."""

    tables: TableServiceClient
    blobs: BlobServiceClient
    queues: QueueServiceClient

    @classmethod
    def from_connection_string(cls, connection: str) -> StorageClients:
        return cls.for_account(StorageAccount(connection_string=connection))

    @classmethod
    def for_account(cls, account: StorageAccount, *, credential: TokenCredential | None = None) -> StorageClients:
        """New clients for ``account``; the caller closes them.

        Args:
            account: a connection string, or service URLs and an identity.
            credential: for an identity-based account, the token credential to use instead of the
                process's (:func:`identity_credential`; tests, tools with a credential of their own).
        """
        if account.connection_string is not None:
            return cls(
                tables=TableServiceClient.from_connection_string(account.connection_string),
                blobs=BlobServiceClient.from_connection_string(account.connection_string),
                queues=QueueServiceClient.from_connection_string(account.connection_string),
            )
        assert account.table_url is not None and account.queue_url is not None
        token = credential or _account_credential(account)
        return cls(
            tables=TableServiceClient(account.table_url, credential=token),
            blobs=blob_service(account, credential=token),
            queues=QueueServiceClient(account.queue_url, credential=token),
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, str] | None = None) -> StorageClients:
        """New clients for the storage account of ``settings`` (default: the environment); the caller
        closes them. See :meth:`StorageAccount.from_settings` for the settings and their errors."""
        return cls.for_account(StorageAccount.from_settings(settings))

    def close(self) -> None:
        # Closes the clients' connections only: the shared token credential stays usable.
        self.tables.close()
        self.blobs.close()
        self.queues.close()

    def __enter__(self) -> StorageClients:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_shared: dict[StorageAccount, StorageClients] = {}
_shared_lock = threading.Lock()


def clients() -> StorageClients:
    """The process-wide clients for the environment's storage account (do not close them).

    Raises:
        AmlPipeError: the storage settings are missing or malformed (:meth:`StorageAccount.from_settings`).
    """
    account = StorageAccount.from_settings()
    with _shared_lock:
        found = _shared.get(account)
        if found is None:
            found = _shared[account] = StorageClients.for_account(account)
        return found


def replace_if_unchanged(table: TableClient, entity: Mapping[str, Any], etag: str) -> str | None:
    """Replace ``entity`` only if its row still has ``etag``; the new ETag, or None if someone wrote first.

    This is the one guarded write every state transition goes through: callers re-read and decide
    again on None (a 412), so a duplicate or late message can never overwrite a newer state.
    """
    try:
        meta = table.update_entity(
            dict(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return None
        raise
    return str(meta.get("etag"))
