"""What a blob datastore registration asks for, checked field by field (azureml's rules).

``parse_blob_spec`` turns a request body into a :class:`BlobDatastoreSpec`; every problem is a
``BadRequestError`` naming the field, and no message ever echoes a credential.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequestError

AZURE_BLOB = "AzureBlob"
DEFAULT_ENDPOINT = "core.windows.net"

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
#: The storage DNS suffixes of Azure's clouds: public, China, US Government, Germany (legacy).
AZURE_STORAGE_SUFFIXES = ("core.windows.net", "core.chinacloudapi.cn", "core.usgovcloudapi.net", "core.cloudapi.de")
#: Hosts that mean "this machine": allowed only when the app itself runs on development storage (Azurite).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
_URL = re.compile(
    r"^(?P<scheme>https?)://(?P<host>[A-Za-z0-9.\-]+|\[::1\])(?::(?P<port>[0-9]{1,5}))?(?:/[A-Za-z0-9._\-]+)*/?$"
)
_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_FIELDS = ("containerName", "accountName", "accountKey", "sasToken", "protocol", "endpoint", "createIfNotExists")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a datastore (azureml's rules), or None."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return (
            f"Datastore name {name!r} is invalid: use 1-255 letters, digits and underscores"
            " (names are case-insensitive)."
        )
    return None


@dataclass(frozen=True)
class BlobDatastoreSpec:
    """A blob container registration; ``credential`` is kept out of ``repr`` so it never reaches a log."""

    container_name: str
    account_name: str
    protocol: str = "https"
    endpoint: str = DEFAULT_ENDPOINT
    credential_type: str = "None"
    credential: str | None = field(default=None, repr=False)
    create_if_not_exists: bool = False

    @property
    def account_url(self) -> str:
        """The account's blob URL; ``endpoint`` may be a full URL (Azurite, private endpoints)."""
        if self.endpoint.startswith(("http://", "https://")):
            return self.endpoint.rstrip("/")
        return f"{self.protocol}://{self.account_name}.blob.{self.endpoint}"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL on this machine (127.0.0.1, localhost or [::1])."""
    match = _URL.match(url)
    return match is not None and match["host"].lower() in LOOPBACK_HOSTS


def _is_storage_endpoint(endpoint: str) -> bool:
    """A storage DNS suffix, an https Azure blob URL, or a loopback URL (the caller checks loopback is allowed).

    Anything else would let a Contributor make the server send requests (createIfNotExists, SAS
    checks) to a host of their choosing.
    """
    if endpoint.lower() in AZURE_STORAGE_SUFFIXES:
        return True
    match = _URL.match(endpoint)
    if match is None:
        return False
    host = match["host"].lower()
    if host in LOOPBACK_HOSTS:
        return True
    if match["scheme"] != "https" or match["port"] not in (None, "443"):
        return False
    for suffix in AZURE_STORAGE_SUFFIXES:
        tail = ".blob." + suffix
        if host.endswith(tail) and all(_HOST_LABEL.match(label) for label in host[: -len(tail)].split(".")):
            return True
    return False


def _str(body: Mapping[str, Any], key: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"'{key}' is required: a non-empty string.", target=key)
    return value


def parse_blob_spec(body: Mapping[str, Any]) -> BlobDatastoreSpec:
    """The registration a request body asks for (keys: ``containerName``, ``accountName``, ``accountKey``
    or ``sasToken``, ``protocol``, ``endpoint``, ``createIfNotExists``).

    Raises:
        BadRequestError: a missing, unknown or invalid field; the message names it and never echoes a
            credential.
    """
    unknown = sorted(set(body) - set(_FIELDS) - {"datastoreType", "overwrite"})
    if unknown:
        raise BadRequestError(
            f"Unknown field(s): {', '.join(unknown)}; valid: {', '.join(_FIELDS)}.", target=unknown[0]
        )
    kind = body.get("datastoreType", AZURE_BLOB)
    if kind != AZURE_BLOB:
        raise BadRequestError(f"'datastoreType' must be '{AZURE_BLOB}'; got {kind!r}.", target="datastoreType")
    container = _str(body, "containerName", required=True) or ""
    if not _CONTAINER.match(container):
        raise BadRequestError(
            f"Container name {container!r} is invalid: use 3-63 lower-case letters, digits and single hyphens,"
            " starting and ending with a letter or digit.",
            target="containerName",
        )
    account = _str(body, "accountName", required=True) or ""
    if not _ACCOUNT.match(account):
        raise BadRequestError(
            f"Account name {account!r} is invalid: use 3-24 lower-case letters and digits.", target="accountName"
        )
    protocol = _str(body, "protocol", default="https") or "https"
    if protocol not in ("https", "http"):
        raise BadRequestError(f"'protocol' must be 'https' or 'http'; got {protocol!r}.", target="protocol")
    endpoint = _str(body, "endpoint", default=DEFAULT_ENDPOINT) or DEFAULT_ENDPOINT
    if not _is_storage_endpoint(endpoint):
        raise BadRequestError(
            f"'endpoint' {endpoint[:300]!r} is invalid: give an Azure storage DNS suffix"
            f" ({', '.join(AZURE_STORAGE_SUFFIXES)}), an account URL such as"
            " 'https://myaccount.blob.core.windows.net', or, when the app runs on Azurite, a loopback URL"
            " such as 'http://127.0.0.1:10000/devstoreaccount1'.",
            target="endpoint",
        )
    key = _str(body, "accountKey")
    sas = _str(body, "sasToken")
    if key is not None and sas is not None:
        raise BadRequestError("Give either 'accountKey' or 'sasToken', not both.", target="sasToken")
    credential_type, credential = "None", None
    if key is not None:
        try:
            if not base64.b64decode(key, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise BadRequestError("'accountKey' is not a base64 storage account key.", target="accountKey") from None
        credential_type, credential = "AccountKey", key
    elif sas is not None:
        sas = sas.lstrip("?")
        if "sig=" not in sas or any(c.isspace() for c in sas) or len(sas) > 4096:
            raise BadRequestError(
                "'sasToken' is not a SAS token: expected a query string such as 'sv=...&sig=...'.", target="sasToken"
            )
        credential_type, credential = "Sas", sas
    create = body.get("createIfNotExists", False)
    if not isinstance(create, bool):
        raise BadRequestError("'createIfNotExists' must be true or false.", target="createIfNotExists")
    return BlobDatastoreSpec(container, account, protocol, endpoint, credential_type, credential, create)
