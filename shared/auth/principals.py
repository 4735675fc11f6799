"""Service principals: stored in an Azure Table with hashed secrets.

Table ``amlpipeprincipals`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per principal:

    PartitionKey  <principal id>      a GUID, the OAuth2 client_id (lower case)
    RowKey        "principal"
    DisplayName   str
    Role          "Reader" | "Operator" | "Contributor" | "Owner"
    CreatedTime   datetime (UTC)
    CreatedBy     principal id of the creator, or "bootstrap"
    Disabled      bool
    SecretHash    base64 scrypt digest of the secret
    SecretSalt    base64 16 random bytes, one per secret
    ScryptN/R/P   the scrypt cost the digest was made with (so the cost can rise for new secrets)

The secret itself is never stored or logged: it is shown once, when the principal is created.

Each principal is its own partition because every authenticated request reads one: a shared partition
would be a hot partition capping the whole API's request rate. Listing scans the table, which is fine
for the few principals a workspace has. There is no cache, so a delete or a disable takes effect on
the very next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient

from shared.auth.roles import Role
from shared.errors import BadRequestError, NotFoundError

TABLE = "amlpipeprincipals"
ROW = "principal"
BOOTSTRAP_CREATOR = "bootstrap"

#: scrypt cost for new secrets: N=2^14, r=8, p=1 needs 16 MiB and ~50 ms, paid once per token request.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32


@dataclass(frozen=True)
class SecretHash:
    """An scrypt digest of a secret, with its salt and cost."""

    digest: bytes
    salt: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def new_secret() -> str:
    """A new client secret: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_secret(
    secret: str, *, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> SecretHash:
    """scrypt ``secret`` with a fresh random salt (or ``salt``)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=_DKLEN
    )
    return SecretHash(digest=digest, salt=salt, n=n, r=r, p=p)


def verify_secret(secret: str, hashed: SecretHash) -> bool:
    """Whether ``secret`` hashes to ``hashed`` (compared in constant time)."""
    candidate = hash_secret(secret, salt=hashed.salt, n=hashed.n, r=hashed.r, p=hashed.p)
    return hmac.compare_digest(candidate.digest, hashed.digest)


def is_principal_id(value: str) -> bool:
    """Whether ``value`` is a GUID (the shape of every principal id)."""
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class ServicePrincipal:
    """A stored principal, without its secret."""

    id: str
    display_name: str
    role: Role
    created_time: datetime
    created_by: str
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "role": self.role.value,
            "createdTime": self.created_time.isoformat(),
            "createdBy": self.created_by,
            "disabled": self.disabled,
        }


MAX_DISPLAY_NAME = 256


def parse_new_principal(body: dict[str, Any]) -> tuple[str, Role]:
    """``displayName`` and ``role`` of a create request (``{"displayName": ..., "role": ...}``).

    Raises:
        BadRequestError: a missing or invalid field, or a field that is not one of these two.
    """
    unknown = sorted(set(body) - {"displayName", "role"})
    if unknown:
        raise BadRequestError(
            f"Unknown field(s): {', '.join(unknown)}; a principal has 'displayName' and 'role'.", target=unknown[0]
        )
    role = body.get("role")
    if not isinstance(role, str):
        raise BadRequestError(f"'role' is required: one of {', '.join(r.value for r in Role)}.", target="role")
    try:
        parsed = Role.parse(role)
    except ValueError as exc:
        raise BadRequestError(str(exc), target="role") from exc
    name = body.get("displayName", "")
    if not isinstance(name, str) or len(name) > MAX_DISPLAY_NAME:
        raise BadRequestError(
            f"'displayName' must be a string of at most {MAX_DISPLAY_NAME} characters.", target="displayName"
        )
    return name.strip(), parsed


class PrincipalStore:
    """Create, read, list, delete and authenticate service principals in one table.

    Args:
        tables: the account's table service client (the caller owns and closes it).
        table_name: the table's name, prefix applied (``shared.storage.table_name(TABLE)``).
    """

    def __init__(self, tables: TableServiceClient, *, table_name: str):
        self._tables = tables
        self.table_name = table_name
        self._table: TableClient | None = None

    def _client(self) -> TableClient:
        if self._table is None:
            self._table = self._tables.create_table_if_not_exists(self.table_name)
        return self._table

    def create_principal(self, *, display_name: str, role: Role, created_by: str) -> tuple[ServicePrincipal, str]:
        """Create a principal with a new secret; return it and the secret (the only time it is seen)."""
        secret = new_secret()
        hashed = hash_secret(secret)
        principal = ServicePrincipal(
            id=str(uuid.uuid4()),
            display_name=display_name,
            role=role,
            created_time=datetime.now(UTC).replace(microsecond=0),
            created_by=created_by,
        )
        entity = {
            "PartitionKey": principal.id,
            "RowKey": ROW,
            "DisplayName": principal.display_name,
            "Role": principal.role.value,
            "CreatedTime": principal.created_time,
            "CreatedBy": principal.created_by,
            "Disabled": False,
            "SecretHash": base64.b64encode(hashed.digest).decode("ascii"),
            "SecretSalt": base64.b64encode(hashed.salt).decode("ascii"),
            "ScryptN": hashed.n,
            "ScryptR": hashed.r,
            "ScryptP": hashed.p,
        }
        try:
            self._client().create_entity(entity)
        except ResourceExistsError as exc:  # a GUID collision: practically impossible, never silently overwrite
            raise RuntimeError("principal id collision; try again") from exc
        return principal, secret

    def find_principal(self, principal_id: str) -> ServicePrincipal | None:
        """The principal with ``principal_id``, or None (also for ids that are not GUIDs)."""
        entity = self._entity(principal_id)
        return None if entity is None else _principal(entity)

    def get_principal(self, principal_id: str) -> ServicePrincipal:
        """The principal with ``principal_id``.

        Raises:
            NotFoundError: there is none.
        """
        found = self.find_principal(principal_id)
        if found is None:
            raise NotFoundError(f"Service principal '{principal_id}' was not found.", target="id")
        return found

    def list_principals(self) -> list[ServicePrincipal]:
        """Every principal, oldest first."""
        entities = self._client().query_entities("RowKey eq @row", parameters={"row": ROW}, select=_PUBLIC_FIELDS)
        return sorted((_principal(e) for e in entities), key=lambda p: (p.created_time, p.id))

    def delete_principal(self, principal_id: str) -> None:
        """Delete the principal; deleting one that does not exist is not an error."""
        if not is_principal_id(principal_id):
            return
        try:
            self._client().delete_entity(str(uuid.UUID(principal_id)), ROW)
        except ResourceNotFoundError:
            pass

    def authenticate(self, client_id: str, client_secret: str) -> ServicePrincipal | None:
        """The enabled principal whose id and secret these are, or None.

        Unknown ids cost one scrypt like known ones, so timing does not tell which ids exist.
        """
        entity = self._entity(client_id)
        if entity is None:
            verify_secret(client_secret, _dummy_hash())
            return None
        hashed = SecretHash(
            digest=base64.b64decode(entity["SecretHash"]),
            salt=base64.b64decode(entity["SecretSalt"]),
            n=int(entity["ScryptN"]),
            r=int(entity["ScryptR"]),
            p=int(entity["ScryptP"]),
        )
        if not verify_secret(client_secret, hashed):
            return None
        principal = _principal(entity)
        return None if principal.disabled else principal

    def _entity(self, principal_id: str) -> dict[str, Any] | None:
        if not is_principal_id(principal_id):
            return None
        try:
            return dict(self._client().get_entity(str(uuid.UUID(principal_id)), ROW))
        except ResourceNotFoundError:
            return None


_PUBLIC_FIELDS = ["PartitionKey", "RowKey", "DisplayName", "Role", "CreatedTime", "CreatedBy", "Disabled"]


def _principal(entity: Any) -> ServicePrincipal:
    created = entity["CreatedTime"]
    return ServicePrincipal(
        id=entity["PartitionKey"],
        display_name=entity.get("DisplayName") or "",
        role=Role.parse(entity["Role"]),
        created_time=_utc(created),
        created_by=entity.get("CreatedBy") or "",
        disabled=bool(entity.get("Disabled", False)),
    )


def _utc(value: datetime) -> datetime:
    # The Tables SDK gives back a timezone-aware datetime subclass; normalise to a plain UTC datetime.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value.timestamp()), UTC)


_DUMMY: list[SecretHash] = []


def _dummy_hash() -> SecretHash:
    if not _DUMMY:
        _DUMMY.append(hash_secret(new_secret()))
    return _DUMMY[0]
