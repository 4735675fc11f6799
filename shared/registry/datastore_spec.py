"""What a datastore registration asks for, checked field by field (azureml's rules, and AWS's for S3).

``parse_datastore_spec`` reads a request body's ``datastoreType`` (``AzureBlob``, the default, or
``AmazonS3``, our addition) and turns the body into a :class:`BlobDatastoreSpec` (``parse_blob_spec``)
or an :class:`S3DatastoreSpec` (``parse_s3_spec``). Every problem is a ``BadRequestError`` naming the
field, and no message ever echoes a credential.

Endpoints are where the server will send requests, so they are checked against server-side request
forgery: a blob endpoint must be Azure Storage; an S3 endpoint any public https host (S3-compatible
services live anywhere), never an address of a private network, and a loopback URL only when the app
itself runs on development storage (the store checks that, it knows the app's storage).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequestError

AZURE_BLOB = "AzureBlob"
AMAZON_S3 = "AmazonS3"
#: The values of ``datastoreType``; the first is the default.
DATASTORE_TYPES = (AZURE_BLOB, AMAZON_S3)
DEFAULT_ENDPOINT = "core.windows.net"
#: The region an S3 datastore without one signs for (AWS's default region; S3-compatible services accept it).
DEFAULT_S3_REGION = "us-east-1"

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
_S3_FIELDS = ("bucketName", "endpointUrl", "region", "accessKeyId", "secretAccessKey", "createIfNotExists")

# AWS's bucket naming rules (general purpose buckets). The S3 patterns are used with fullmatch: ``$`` would
# let a trailing newline through.
_BUCKET = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_DOTTED_QUAD = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
#: An AWS region (us-east-1, eu-central-2, us-gov-west-1): the AWS endpoint's host is built from it.
_AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$")
#: An S3-compatible service's region name ("auto", "nyc3", "us-west-004", "default").
_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_S3_URL = re.compile(r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?/?")
#: Special-use DNS names that only ever mean this machine or a private network.
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "localdomain", "arpa")
# Printable ASCII without spaces: what key ids and secrets of AWS and S3-compatible services look like.
_ACCESS_KEY_ID = re.compile(r"^[\x21-\x7e]{3,128}$")
_SECRET_ACCESS_KEY = re.compile(r"^[\x21-\x7e]{1,1024}$")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a datastore (azureml's rules), or None."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
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


@dataclass(frozen=True)
class S3DatastoreSpec:
    """An S3 bucket registration; the key pair is kept out of ``repr`` so it never reaches a log.

    ``endpoint_url`` None means AWS itself; ``region`` None means ``us-east-1``.
    """

    bucket_name: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    create_if_not_exists: bool = False

    @property
    def credential_type(self) -> str:
        """``AccessKey`` with a key pair, ``None`` for anonymous access (a public bucket)."""
        return "None" if self.access_key_id is None else "AccessKey"

    @property
    def signing_region(self) -> str:
        """The region requests are signed for."""
        return self.region or DEFAULT_S3_REGION

    @property
    def where(self) -> str:
        """The service, for messages: the endpoint URL, or AWS (the URL never holds a credential)."""
        return self.endpoint_url or f"AWS S3 ({self.signing_region})"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is an http(s) URL on this machine (127.0.0.1, localhost or [::1])."""
    match = _URL.fullmatch(url)
    return match is not None and match["host"].lower() in LOOPBACK_HOSTS


def _is_storage_endpoint(endpoint: str) -> bool:
    """A storage DNS suffix, an https Azure blob URL, or a loopback URL (the caller checks loopback is allowed).

    Anything else would let a Contributor make the server send requests (createIfNotExists, SAS
    checks) to a host of their choosing.
    """
    if endpoint.lower() in AZURE_STORAGE_SUFFIXES:
        return True
    match = _URL.fullmatch(endpoint)
    if match is None:
        return False
    host = match["host"].lower()
    if host in LOOPBACK_HOSTS:
        return True
    if match["scheme"] != "https" or match["port"] not in (None, "443"):
        return False
    for suffix in AZURE_STORAGE_SUFFIXES:
        tail = ".blob." + suffix
        if host.endswith(tail) and all(_HOST_LABEL.fullmatch(label) for label in host[: -len(tail)].split(".")):
            return True
    return False


def _str(body: Mapping[str, Any], key: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"'{key}' is required: a non-empty string.", target=key)
    return value


def parse_datastore_spec(body: Mapping[str, Any]) -> BlobDatastoreSpec | S3DatastoreSpec:
    """The registration a request body asks for: ``datastoreType`` ``AzureBlob`` (the default) or ``AmazonS3``.

    Raises:
        BadRequestError: an unknown ``datastoreType``, or a missing, unknown or invalid field of that
            type; the message names the field and never echoes a credential.
    """
    kind = body.get("datastoreType", AZURE_BLOB)
    if kind == AZURE_BLOB:
        s3_only = sorted(set(body) & (set(_S3_FIELDS) - set(_FIELDS)))
        if s3_only and "datastoreType" not in body:
            raise BadRequestError(
                f"'{s3_only[0]}' is a field of Amazon S3 datastores: set 'datastoreType' to '{AMAZON_S3}'"
                f" (the default is '{AZURE_BLOB}').",
                target="datastoreType",
            )
        return parse_blob_spec(body)
    if kind == AMAZON_S3:
        return parse_s3_spec(body)
    shown = repr(kind) if isinstance(kind, str) else type(kind).__name__
    raise BadRequestError(
        f"'datastoreType' must be one of {', '.join(repr(t) for t in DATASTORE_TYPES)}; got {shown[:100]}.",
        target="datastoreType",
    )


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an S3 bucket (AWS's rules), or None."""
    rules = (
        "use 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit,"
        " with no two dots in a row, not shaped like an IP address"
    )
    if not _BUCKET.fullmatch(name) or ".." in name or _DOTTED_QUAD.fullmatch(name):
        return f"Bucket name {name[:100]!r} is invalid: {rules}."
    if name.startswith(_BUCKET_PREFIXES) or name.endswith(_BUCKET_SUFFIXES):
        return (
            f"Bucket name {name!r} is invalid: AWS reserves the prefixes {', '.join(_BUCKET_PREFIXES)}"
            f" and the suffixes {', '.join(_BUCKET_SUFFIXES)}."
        )
    return None


def s3_endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint, or None: it must be ``https://<public host>[:port]``, or
    a loopback URL (http or https; allowed only on development storage, which the store checks).

    A private, link-local or reserved address (169.254.169.254, 10.0.0.1...), a single-label host or a
    special-use name (``*.internal``, ``*.local``) would let a Contributor aim the server's requests
    into the network it runs in.
    """
    match = _S3_URL.fullmatch(url)
    if match is None:
        return "give a URL such as 'https://s3.eu-west-1.amazonaws.com' (no path, query or user)"
    host = match["host"].lower()
    if match["port"] is not None and not 0 < int(match["port"]) < 65536:
        return "the port must be 1-65535"
    if host in LOOPBACK_HOSTS:
        return None
    if match["scheme"] != "https":
        return "use https (http only for a loopback URL, when the app runs on Azurite)"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        labels = host.split(".")
        if len(labels) < 2 or len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
            return "the host must be a fully qualified DNS name or a public IP address"
        if labels[-1].isdigit() or labels[-1] in _PRIVATE_SUFFIXES or host.endswith(".home.arpa"):
            return "the host must be a public DNS name"
        return None
    if not address.is_global:
        return "the host is a private, loopback or reserved address"
    return None


def parse_s3_spec(body: Mapping[str, Any]) -> S3DatastoreSpec:
    """The S3 registration a request body asks for (keys: ``bucketName``, ``endpointUrl``, ``region``,
    ``accessKeyId`` with ``secretAccessKey``, ``createIfNotExists``).

    Raises:
        BadRequestError: a missing, unknown or invalid field; the message names it and never echoes
            ``accessKeyId`` or ``secretAccessKey``.
    """
    unknown = sorted(set(body) - set(_S3_FIELDS) - {"datastoreType", "overwrite"})
    if unknown:
        raise BadRequestError(
            f"Unknown field(s) for an {AMAZON_S3} datastore: {', '.join(u[:60] for u in unknown)};"
            f" valid: {', '.join(_S3_FIELDS)}.",
            target=unknown[0],
        )
    if body.get("datastoreType", AMAZON_S3) != AMAZON_S3:
        raise BadRequestError(f"'datastoreType' must be '{AMAZON_S3}'.", target="datastoreType")
    bucket = _str(body, "bucketName", required=True) or ""
    problem = bucket_name_problem(bucket)
    if problem:
        raise BadRequestError(problem, target="bucketName")
    endpoint = _str(body, "endpointUrl")
    if endpoint is not None:
        problem = s3_endpoint_problem(endpoint)
        if problem:
            raise BadRequestError(f"'endpointUrl' {endpoint[:300]!r} is invalid: {problem}.", target="endpointUrl")
        endpoint = endpoint.rstrip("/")
    region = _str(body, "region")
    if region is not None:
        pattern, example = (_REGION, "'us-east-1' or 'auto'") if endpoint else (_AWS_REGION, "'eu-west-1'")
        if not pattern.fullmatch(region):
            raise BadRequestError(
                f"'region' {region[:100]!r} is invalid: give a region name such as {example}.", target="region"
            )
    key_id = _str(body, "accessKeyId")
    secret = _str(body, "secretAccessKey")
    if key_id is not None and secret is None:
        raise BadRequestError(
            "Give 'secretAccessKey' with 'accessKeyId' (or neither, for a public bucket).", target="secretAccessKey"
        )
    if secret is not None and key_id is None:
        raise BadRequestError(
            "Give 'accessKeyId' with 'secretAccessKey' (or neither, for a public bucket).", target="accessKeyId"
        )
    if key_id is not None and not _ACCESS_KEY_ID.fullmatch(key_id):
        raise BadRequestError(
            "'accessKeyId' is not an access key id: 3-128 printable ASCII characters, no spaces.",
            target="accessKeyId",
        )
    if secret is not None and not _SECRET_ACCESS_KEY.fullmatch(secret):
        raise BadRequestError(
            "'secretAccessKey' is not a secret access key: printable ASCII characters, no spaces.",
            target="secretAccessKey",
        )
    create = body.get("createIfNotExists", False)
    if not isinstance(create, bool):
        raise BadRequestError("'createIfNotExists' must be true or false.", target="createIfNotExists")
    return S3DatastoreSpec(bucket, endpoint, region, key_id, secret, create)


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
    if not _CONTAINER.fullmatch(container):
        raise BadRequestError(
            f"Container name {container!r} is invalid: use 3-63 lower-case letters, digits and single hyphens,"
            " starting and ending with a letter or digit.",
            target="containerName",
        )
    account = _str(body, "accountName", required=True) or ""
    if not _ACCOUNT.fullmatch(account):
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
