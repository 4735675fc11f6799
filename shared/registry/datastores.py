"""Datastores: named blob containers and S3 buckets, and short-lived SAS URLs so clients move bytes to
blob containers directly.

Table ``amlpipedatastores`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per registered datastore:

    PartitionKey    <name, lower case>   names are case-insensitive; one partition per datastore
    RowKey          "datastore"
    Name            the name as registered
    DatastoreType   "AzureBlob" | "AmazonS3"
    AzureBlob:      ContainerName, AccountName, Protocol, Endpoint
                    CredentialType  "AccountKey" | "Sas" | "None"
                    Credential      the key or SAS token, sealed by ``credentials.CredentialSealer``
    AmazonS3:       BucketName, EndpointUrl ("" for AWS), Region ("" for us-east-1)
                    CredentialType  "AccessKey" | "None"
                    Credential      {"accessKeyId", "secretAccessKey"} as JSON, sealed likewise
    CreatedTime     datetime (UTC)

Credentials are never in clear in the table, never in a record, never in a message. An S3 datastore
is checked when registered (its bucket must answer to its credentials, see ``shared.registry.s3``);
``bucket_access`` hands the engine a ready boto3 client of its bucket.

The default datastore ``workspaceblobstore`` is never stored: it always exists and cannot be
re-registered. Its container, on the app's own account (``AzureWebJobsStorage``), is the app setting
``AMLPIPE_DEFAULT_CONTAINER`` (default ``azureml-blobstore``, see :func:`default_container`): a
blob trigger watches it, so apps sharing one account (tests) each need their own.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient, ContainerSasPermissions, generate_container_sas

from shared import storage
from shared.errors import AmlPipeError, BadRequestError, ConflictError, NotFoundError
from shared.registry import s3
from shared.registry._table import LazyTable
from shared.registry.credentials import CredentialSealer
from shared.registry.datastore_spec import (
    AMAZON_S3,
    AZURE_BLOB,
    DEFAULT_ENDPOINT,
    NAME_PATTERN,
    BlobDatastoreSpec,
    S3DatastoreSpec,
    is_loopback_url,
    name_problem,
    parse_blob_spec,
    parse_datastore_spec,
    parse_s3_spec,
)
from shared.registry.s3 import BucketAccess
from shared.sas import signer_for

TABLE = "amlpipedatastores"
__all__ = [
    "AMAZON_S3",
    "AZURE_BLOB",
    "DEFAULT_CONTAINER",
    "DEFAULT_CONTAINER_SETTING",
    "DEFAULT_DATASTORE",
    "DEFAULT_ENDPOINT",
    "BlobDatastoreSpec",
    "BucketAccess",
    "ContainerAccess",
    "DatastoreRecord",
    "DatastoreSpec",
    "DatastoreStore",
    "S3DatastoreSpec",
    "default_container",
    "name_problem",
    "parse_blob_spec",
    "parse_datastore_spec",
    "parse_s3_spec",
]

#: What ``DatastoreStore.register`` takes.
DatastoreSpec = BlobDatastoreSpec | S3DatastoreSpec

ROW = "datastore"
DEFAULT_DATASTORE = "workspaceblobstore"
#: The default datastore's container when ``AMLPIPE_DEFAULT_CONTAINER`` is not set.
DEFAULT_CONTAINER = "azureml-blobstore"
DEFAULT_CONTAINER_SETTING = "AMLPIPE_DEFAULT_CONTAINER"
SAS_LIFETIME = timedelta(hours=1)

# Azure's container names: 3-63 of a-z, 0-9 and "-", a letter or digit at each end, no "--".
_CONTAINER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def default_container(settings: Mapping[str, str] | None = None) -> str:
    """The default datastore's container: app setting ``AMLPIPE_DEFAULT_CONTAINER`` in ``settings``
    (default: the environment), else ``azureml-blobstore``.

    Raises:
        AmlPipeError: the setting is not a valid container name (a deployment fault, so a 500).
    """
    name = (os.environ if settings is None else settings).get(DEFAULT_CONTAINER_SETTING) or DEFAULT_CONTAINER
    if not _CONTAINER_NAME.match(name):
        raise AmlPipeError(
            f"The app setting '{DEFAULT_CONTAINER_SETTING}' is {name!r}, not a valid blob container name:"
            " use 3-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit,"
            " with no two hyphens in a row.",
            target=DEFAULT_CONTAINER_SETTING,
        )
    return name


@dataclass(frozen=True)
class DatastoreRecord:
    """A datastore as the API shows it: no credential, only its type.

    A blob datastore has ``container_name``, ``account_name``, ``protocol`` and ``endpoint``; an S3 one
    (``datastore_type`` ``AmazonS3``) has ``bucket_name``, ``endpoint_url`` (None: AWS) and ``region``
    (None: us-east-1), and empty blob fields.
    """

    name: str
    container_name: str
    account_name: str
    protocol: str
    endpoint: str
    credential_type: str
    created_time: datetime | None = None
    is_default: bool = False
    datastore_type: str = AZURE_BLOB
    etag: str | None = None
    bucket_name: str | None = None
    endpoint_url: str | None = None
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.datastore_type == AMAZON_S3:
            return {
                "name": self.name,
                "datastoreType": self.datastore_type,
                "bucketName": self.bucket_name,
                "endpointUrl": self.endpoint_url,
                "region": self.region,
                "credentialType": self.credential_type,
                "isDefault": self.is_default,
                "createdTime": None if self.created_time is None else self.created_time.isoformat(),
            }
        return {
            "name": self.name,
            "datastoreType": self.datastore_type,
            "containerName": self.container_name,
            "accountName": self.account_name,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "credentialType": self.credential_type,
            "isDefault": self.is_default,
            "createdTime": None if self.created_time is None else self.created_time.isoformat(),
        }


@dataclass(frozen=True)
class ContainerAccess:
    """A short-lived way into a datastore's container: ``container_url`` + ``?`` + ``sas_token``."""

    datastore: str
    container_url: str
    sas_token: str = field(repr=False)
    permissions: str
    expires_on: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "datastore": self.datastore,
            "containerUrl": self.container_url,
            "sasToken": self.sas_token,
            "permissions": self.permissions,
            "expiresOn": self.expires_on.isoformat(),
        }


def _record(entity: Any, etag: str | None = None) -> DatastoreRecord:
    if _type(entity) == AMAZON_S3:
        return DatastoreRecord(
            name=entity["Name"],
            container_name="",
            account_name="",
            protocol="https",
            endpoint="",
            credential_type=entity["CredentialType"],
            created_time=entity["CreatedTime"],
            datastore_type=AMAZON_S3,
            etag=etag if etag is not None else entity.metadata.get("etag"),
            bucket_name=entity["BucketName"],
            endpoint_url=entity.get("EndpointUrl") or None,
            region=entity.get("Region") or None,
        )
    return DatastoreRecord(
        name=entity["Name"],
        container_name=entity["ContainerName"],
        account_name=entity["AccountName"],
        protocol=entity["Protocol"],
        endpoint=entity["Endpoint"],
        credential_type=entity["CredentialType"],
        created_time=entity["CreatedTime"],
        etag=etag if etag is not None else entity.metadata.get("etag"),
    )


def write_problem(record: DatastoreRecord | None) -> str | None:
    """Why the engine cannot write to datastore ``record`` (None: not registered), as a predicate of
    "datastore 'x' ..." (``was registered with a SAS token; ...``), or None when its registration
    allows it (its credential is tried when it is written).

    A blob datastore registered with a SAS token cannot be written (amlpipe writes to registered
    containers through SAS tokens it mints from the account key, and never uses or hands out the
    registered token), nor one registered without a credential (anonymous access to a blob container is
    read-only). An S3 datastore may always be: even without a key pair, a bucket's policy may allow
    anonymous writes.
    """
    if record is None:
        return "is not registered in the workspace"
    if record.is_default or record.datastore_type != AZURE_BLOB:
        return None
    if record.credential_type == "Sas":
        return "was registered with a SAS token; amlpipe writes only to blob datastores registered with account_key"
    if record.credential_type == "None":
        return (
            "was registered without a credential (anonymous access to a blob container is read-only);"
            " amlpipe writes only to blob datastores registered with account_key"
        )
    return None


class DatastoreStore:
    """Register, read, list and unregister datastores; mint SAS URLs for blob datastores and hand out
    clients of S3 datastores' buckets.

    Args:
        tables: the account's table service client (the caller owns it).
        blobs: the app's blob service client: the default datastore's account, and the key store.
        settings: app settings (default: the environment).

    Raises:
        AmlPipeError: ``AMLPIPE_DEFAULT_CONTAINER`` is not a valid container name.
    """

    def __init__(
        self, tables: TableServiceClient, blobs: BlobServiceClient, *, settings: Mapping[str, str] | None = None
    ) -> None:
        self._table = LazyTable(tables, storage.table_name(TABLE, settings))
        self._blobs = blobs
        #: The default datastore's container (app setting ``AMLPIPE_DEFAULT_CONTAINER``).
        self.default_container = default_container(settings)
        # Loopback datastores (Azurite) make sense only when the app's own storage is loopback too;
        # on Azure they would let a Contributor aim the server's requests at the host it runs on.
        self._on_development_storage = is_loopback_url(blobs.url)
        self._sealer = CredentialSealer(blobs, settings=settings)
        self._default_ready = False
        self._lock = threading.Lock()

    def default(self) -> DatastoreRecord:
        """The built-in ``workspaceblobstore``."""
        return DatastoreRecord(
            name=DEFAULT_DATASTORE,
            container_name=self.default_container,
            account_name=self._blobs.account_name or "",
            protocol=self._blobs.scheme,
            endpoint=self._blobs.url.rstrip("/"),
            credential_type="AccountKey",
            is_default=True,
        )

    def exists(self, name: str) -> bool:
        """Whether ``name`` is the default or a registered datastore."""
        return self.find(name) is not None

    def find(self, name: str) -> DatastoreRecord | None:
        """Datastore ``name`` (case-insensitive), or None."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            return None
        if name.lower() == DEFAULT_DATASTORE:
            return self.default()
        entity = self._entity(name)
        return None if entity is None else _record(entity)

    def get(self, name: str) -> DatastoreRecord:
        """Datastore ``name``.

        Raises:
            NotFoundError: there is none.
        """
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"Datastore '{name}' not found in the workspace.", target="name")
        return found

    def list(self) -> list[DatastoreRecord]:
        """The default datastore, then every registered one by name."""
        entities = self._table.client().query_entities(f"RowKey eq '{ROW}'")
        return [self.default(), *sorted((_record(e) for e in entities), key=lambda r: r.name.lower())]

    def register(self, name: str, spec: DatastoreSpec, *, overwrite: bool = False) -> tuple[DatastoreRecord, bool]:
        """Register datastore ``name`` (a blob container or an S3 bucket); return it and whether
        anything was written.

        Registering the same definition again is a no-op; a different one (another type too) needs
        ``overwrite``. With ``spec.create_if_not_exists`` the container or bucket is created first; an
        S3 bucket is always checked with the spec's credentials. If that fails nothing is stored.

        Raises:
            BadRequestError: an invalid or reserved name, a loopback endpoint when the app is not on
                development storage, or the container could not be created / the bucket checked
                (the message names the field to fix).
            ConflictError: the datastore exists with another definition and ``overwrite`` is False,
                or it changed while being overwritten.
        """
        problem = name_problem(name)
        if problem:
            raise BadRequestError(problem, target="name")
        endpoint, field_name = (
            (spec.endpoint, "endpoint") if isinstance(spec, BlobDatastoreSpec) else (spec.endpoint_url, "endpointUrl")
        )
        if endpoint is not None and is_loopback_url(endpoint) and not self._on_development_storage:
            raise BadRequestError(
                f"'{field_name}' may be a loopback URL only when the app itself runs on development storage"
                " (Azurite); give the service's public URL.",
                target=field_name,
            )
        if name.lower() == DEFAULT_DATASTORE:
            raise BadRequestError(
                f"'{DEFAULT_DATASTORE}' is the workspace's built-in datastore; choose another name.", target="name"
            )
        existing = self._entity(name)
        if existing is not None and self._same(existing, spec):
            return _record(existing), False
        if existing is not None and not overwrite:
            raise ConflictError(
                f"Datastore '{existing['Name']}' already exists with a different definition;"
                " pass overwrite=True to replace it.",
                target="name",
            )
        if isinstance(spec, S3DatastoreSpec):
            s3.check_bucket(name if existing is None else existing["Name"], spec)
        elif spec.create_if_not_exists:
            self._create_container(name, spec)
        entity: dict[str, Any] = {
            "PartitionKey": name.lower(),
            "RowKey": ROW,
            "Name": name if existing is None else existing["Name"],
            **self._definition(name, spec),
            "CreatedTime": datetime.now(UTC).replace(microsecond=0),
        }
        client = self._table.client()
        try:
            if existing is None:
                meta = client.create_entity(entity)
            else:
                meta = client.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=existing.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            raise ConflictError(
                f"Datastore '{name}' was changed by another request meanwhile; read it and retry.", target="name"
            ) from None
        return _record(entity, etag=meta.get("etag") or ""), True

    def unregister(self, name: str) -> None:
        """Remove datastore ``name`` (its data stays); removing one that does not exist does nothing.

        Raises:
            BadRequestError: ``name`` is the default datastore.
        """
        if isinstance(name, str) and name.lower() == DEFAULT_DATASTORE:
            raise BadRequestError(
                f"The built-in datastore '{DEFAULT_DATASTORE}' cannot be unregistered.", target="name"
            )
        if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
            self._table.client().delete_entity(name.lower(), ROW)

    def container_access(self, name: str, *, write: bool) -> ContainerAccess:
        """A SAS URL for datastore ``name``'s container: read+list, plus add/create/write when ``write``.

        Raises:
            NotFoundError: no such datastore.
            BadRequestError: it was registered with a SAS token (amlpipe never hands that out, and
                cannot derive a shorter one from it).
        """
        record = self.get(name)
        if record.datastore_type != AZURE_BLOB:
            raise BadRequestError(
                f"Datastore '{record.name}' is an {record.datastore_type} datastore: SAS URLs exist only for"
                f" {AZURE_BLOB} datastores.",
                target="name",
            )
        permission = ContainerSasPermissions(read=True, list=True, add=write, create=write, write=write)
        now = datetime.now(UTC).replace(microsecond=0)
        expiry = now + SAS_LIFETIME
        if record.is_default:
            self._ensure_default_container()
            # Signed with the app's account key, or (a managed identity on Azure has none) a user
            # delegation key; valid on the app's own account only.
            token = signer_for(self._blobs).container_sas(
                record.container_name, permission, start=now - timedelta(minutes=5), expiry=expiry
            )
            url = self._blobs.url.rstrip("/")
            return ContainerAccess(record.name, f"{url}/{record.container_name}", token, str(permission), expiry)
        entity = self._entity(name)
        if entity is None:
            raise NotFoundError(f"Datastore '{name}' not found in the workspace.", target="name")
        if record.credential_type == "Sas":
            raise BadRequestError(
                f"Datastore '{record.name}' was registered with a SAS token, which amlpipe does not hand out;"
                " register it with account_key to upload or download through amlpipe.",
                target="name",
            )
        spec = _spec(entity)
        account, url = spec.account_name, spec.account_url
        key = None if record.credential_type == "None" else self._open(entity)
        container_url = f"{url}/{record.container_name}"
        token = ""
        if key is not None:
            token = generate_container_sas(
                account, record.container_name, account_key=key, permission=permission,
                start=now - timedelta(minutes=5), expiry=expiry,
            )  # fmt: skip
        return ContainerAccess(record.name, container_url, token, str(permission), expiry)

    def bucket_access(self, name: str, *, timeouts: s3.Timeouts = s3.TRANSFER) -> BucketAccess:
        """A ready boto3 client of S3 datastore ``name``'s bucket, with its endpoint, region and key pair.

        Close it when done (``with store.bucket_access(name) as access: ...``).

        Raises:
            NotFoundError: no such datastore.
            BadRequestError: it is not an S3 datastore.
        """
        record = self.get(name)
        if record.datastore_type != AMAZON_S3:
            raise BadRequestError(
                f"Datastore '{record.name}' is an {record.datastore_type} datastore, not an {AMAZON_S3} one.",
                target="name",
            )
        entity = self._entity(name)
        if entity is None:  # unregistered meanwhile
            raise NotFoundError(f"Datastore '{name}' not found in the workspace.", target="name")
        spec = self._s3_spec(entity, with_credentials=True)
        return BucketAccess(record.name, spec.bucket_name, s3.s3_client(spec, timeouts=timeouts))

    # -- helpers

    def _entity(self, name: str) -> Any:
        try:
            return self._table.client().get_entity(name.lower(), ROW)
        except ResourceNotFoundError:
            return None

    def _open(self, entity: Any) -> str:
        return self._sealer.open(entity["Credential"], bound_to=entity["PartitionKey"])

    def _definition(self, name: str, spec: DatastoreSpec) -> dict[str, Any]:
        """The entity's properties that define ``spec``, its credential sealed for ``name``."""
        if isinstance(spec, S3DatastoreSpec):
            pair = None
            if spec.access_key_id is not None:
                pair = json.dumps({"accessKeyId": spec.access_key_id, "secretAccessKey": spec.secret_access_key})
            return {
                "DatastoreType": AMAZON_S3,
                "BucketName": spec.bucket_name,
                "EndpointUrl": spec.endpoint_url or "",
                "Region": spec.region or "",
                "CredentialType": spec.credential_type,
                "Credential": "" if pair is None else self._sealer.seal(pair, bound_to=name.lower()),
            }
        return {
            "DatastoreType": AZURE_BLOB,
            "ContainerName": spec.container_name,
            "AccountName": spec.account_name,
            "Protocol": spec.protocol,
            "Endpoint": spec.endpoint,
            "CredentialType": spec.credential_type,
            "Credential": "" if spec.credential is None else self._sealer.seal(spec.credential, bound_to=name.lower()),
        }

    def _s3_spec(self, entity: Any, *, with_credentials: bool = False) -> S3DatastoreSpec:
        key_id = secret = None
        if with_credentials and entity["CredentialType"] != "None":
            try:
                pair = json.loads(self._open(entity))
                key_id, secret = str(pair["accessKeyId"]), str(pair["secretAccessKey"])
            except (ValueError, KeyError, TypeError):
                raise AmlPipeError(
                    f"The stored credential of datastore '{entity['PartitionKey']}' is not a key pair."
                ) from None
        return S3DatastoreSpec(
            bucket_name=entity["BucketName"],
            endpoint_url=entity.get("EndpointUrl") or None,
            region=entity.get("Region") or None,
            access_key_id=key_id,
            secret_access_key=secret,
        )

    def _same(self, entity: Any, spec: DatastoreSpec) -> bool:
        if isinstance(spec, S3DatastoreSpec):
            if _type(entity) != AMAZON_S3:
                return False
            stored_s3 = self._s3_spec(entity, with_credentials=spec.access_key_id is not None)
            if stored_s3.credential_type != entity["CredentialType"]:  # stored with a pair, asked without
                return False
            return stored_s3 == replace(spec, create_if_not_exists=False)
        if _type(entity) != AZURE_BLOB:
            return False
        stored = _spec(entity)
        if replace(stored, create_if_not_exists=False) != replace(spec, credential=None, create_if_not_exists=False):
            return False
        if spec.credential is None:
            return stored.credential_type == "None"
        return bool(entity["Credential"]) and self._open(entity) == spec.credential

    def _create_container(self, name: str, spec: BlobDatastoreSpec) -> None:
        if spec.credential_type == "AccountKey":
            credential: Any = {"account_name": spec.account_name, "account_key": spec.credential}
        else:
            credential = spec.credential
        client = ContainerClient(spec.account_url, spec.container_name, credential=credential)
        try:
            client.create_container()
        except ResourceExistsError:
            pass
        except AzureError as exc:  # the message of a storage error never holds the key
            raise BadRequestError(
                f"Could not create container '{spec.container_name}' for datastore '{name}':"
                f" {type(exc).__name__}. Check the account, endpoint and credential.",
                target="containerName",
            ) from None
        finally:
            client.close()

    def _ensure_default_container(self) -> None:
        with self._lock:
            if self._default_ready:
                return
            try:
                self._blobs.create_container(self.default_container)
            except ResourceExistsError:
                pass
            self._default_ready = True


def _type(entity: Any) -> str:
    return str(entity.get("DatastoreType") or AZURE_BLOB)


def _spec(entity: Any) -> BlobDatastoreSpec:
    return BlobDatastoreSpec(
        container_name=entity["ContainerName"],
        account_name=entity["AccountName"],
        protocol=entity["Protocol"],
        endpoint=entity["Endpoint"],
        credential_type=entity["CredentialType"],
    )
