"""Presigned URLs for an S3 datastore: how the SDK uploads to and downloads from a bucket.

A blob datastore hands out a container SAS (``POST /api/datastores/{name}/sas``). S3 has no
bucket-wide token, so the service signs one URL per object instead, with the key pair it keeps sealed
(the key pair itself never leaves the service). Both expire after :data:`LIFETIME`::

    POST /api/datastores/s3_data/presign
    {"permission": "read", "prefix": "data/train", "pageSize": 1000, "continuationToken": null}
    -> {"datastore", "bucketName", "expiresOn",
        "objects": [{"name": "data/train/a.csv", "size": 12, "etag": "\\"…\\"", "url": "https://…"}],
        "continuationToken": "…" | null}

    {"permission": "write", "names": ["data/train/a.csv"], "overwrite": false, "runId": "<guid>"}
    -> {"datastore", "bucketName", "expiresOn",
        "objects": [{"name": "data/train/a.csv", "url": "https://…", "method": "PUT",
                     "headers": {"If-None-Match": "*", "x-amz-meta-amlpipe_run_id": "<guid>"}}]}

A read lists the objects under ``prefix`` (the object named ``prefix`` itself and those under the folder
``prefix/``; ``data`` never matches ``database/…``), one page at a time. A write signs a ``PUT`` per
name; the client must send exactly the ``headers`` returned, which are part of the signature:
``If-None-Match: *`` unless ``overwrite`` (the service refuses with 412 when the object exists, so
``overwrite=False`` keeps existing objects even under a race), and the writer metadata of a pipeline
run (``runId``: the SDK sends it inside a step, so a datastore watch does not fire for a run's own
files). Readers may read; writing needs a Contributor (the route checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import BadRequestError
from shared.graph.validate import path_problem
from shared.pipelines.ids import is_guid
from shared.registry import s3

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

    from shared.registry.datastores import DatastoreStore

__all__ = ["LIFETIME", "MAX_OBJECTS", "WRITER_METADATA", "PresignRequest", "parse_presign_request", "presign"]

#: How long a presigned URL works (as long as a datastore SAS).
LIFETIME = timedelta(hours=1)
#: Most objects one request lists or signs (S3's own page size).
MAX_OBJECTS = 1000
#: S3 keys are at most 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
#: The object metadata naming the pipeline run an object was written for (the engine's and SDK's name).
WRITER_METADATA = "amlpipe_run_id"
_READ_KEYS = frozenset({"permission", "prefix", "pageSize", "continuationToken"})
_WRITE_KEYS = frozenset({"permission", "names", "overwrite", "runId"})


@dataclass(frozen=True)
class PresignRequest:
    """A checked presign request (see the module docstring)."""

    permission: Literal["read", "write"]
    prefix: str = ""
    page_size: int = MAX_OBJECTS
    continuation_token: str | None = None
    names: tuple[str, ...] = ()
    overwrite: bool = False
    run_id: str | None = None


def parse_presign_request(body: Mapping[str, Any]) -> PresignRequest:
    """``body`` as a :class:`PresignRequest`.

    Raises:
        BadRequestError: an unknown field or a bad value, naming the field and what would be valid.
    """
    permission = body.get("permission", "read")
    if permission not in ("read", "write"):
        raise BadRequestError(f'permission must be "read" or "write", not {permission!r}.', target="permission")
    allowed = _READ_KEYS if permission == "read" else _WRITE_KEYS
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(
            f"Unknown field {unknown[0]!r} for permission {permission!r}; the fields are {', '.join(sorted(allowed))}.",
            target=unknown[0],
        )
    if permission == "read":
        return PresignRequest(
            "read",
            prefix=_prefix(body.get("prefix")),
            page_size=_page_size(body.get("pageSize", MAX_OBJECTS)),
            continuation_token=_token(body.get("continuationToken")),
        )
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise BadRequestError("overwrite must be true or false.", target="overwrite")
    return PresignRequest(
        "write", names=_names(body.get("names")), overwrite=overwrite, run_id=_run_id(body.get("runId"))
    )


def presign(store: DatastoreStore, datastore: str, request: PresignRequest) -> dict[str, Any]:
    """The answer to ``request`` for S3 datastore ``datastore`` (the JSON body of the route).

    Raises:
        NotFoundError: no such datastore.
        BadRequestError: it is not an S3 datastore; (reads) its bucket is missing or refuses its
            credentials, or the continuation token is not one the listing gave.
    """
    expires = datetime.now(UTC).replace(microsecond=0) + LIFETIME
    seconds = int(LIFETIME.total_seconds())
    with store.bucket_access(datastore, timeouts=s3.CHECK) as access:
        answer: dict[str, Any] = {
            "datastore": access.datastore,
            "bucketName": access.bucket_name,
            "expiresOn": expires.isoformat().replace("+00:00", "Z"),
        }
        if request.permission == "read":
            objects, token = _list(access, request)
            answer["objects"] = [
                {**item, "url": _sign(access, "get_object", {"Key": item["name"]}, seconds)} for item in objects
            ]
            answer["continuationToken"] = token
            return answer
        headers: dict[str, str] = {}
        params: dict[str, Any] = {}
        if not request.overwrite:
            headers["If-None-Match"] = "*"
            params["IfNoneMatch"] = "*"
        if request.run_id is not None:
            headers[f"x-amz-meta-{WRITER_METADATA}"] = request.run_id
            params["Metadata"] = {WRITER_METADATA: request.run_id}
        answer["objects"] = [
            {
                "name": name,
                "url": _sign(access, "put_object", {"Key": name, **params}, seconds),
                "method": "PUT",
                "headers": headers,
            }
            for name in request.names
        ]
        return answer


# -- helpers ----------------------------------------------------------------------------------------


def _sign(access: s3.BucketAccess, operation: str, params: dict[str, Any], seconds: int) -> str:
    url: str = access.client.generate_presigned_url(
        operation, Params={"Bucket": access.bucket_name, **params}, ExpiresIn=seconds
    )
    return url


def _list(access: s3.BucketAccess, request: PresignRequest) -> tuple[list[dict[str, Any]], str | None]:
    from botocore.exceptions import BotoCoreError, ClientError

    options: dict[str, Any] = {"Bucket": access.bucket_name, "MaxKeys": request.page_size}
    if request.prefix:
        options["Prefix"] = request.prefix
    if request.continuation_token is not None:
        options["ContinuationToken"] = request.continuation_token
    where = f"bucket '{access.bucket_name}' of datastore '{access.datastore}'"
    try:
        page = access.client.list_objects_v2(**options)
    except ClientError as exc:
        raise _refused(where, exc, request) from None
    except BotoCoreError as exc:  # connection, timeout: the endpoint the datastore names
        raise BadRequestError(
            f"Could not list the {where} ({type(exc).__name__}): check that its endpoint is reachable from the app.",
            target="name",
        ) from None
    folder = request.prefix.rstrip("/") + "/"
    found = [
        {"name": item["Key"], "size": item.get("Size", 0), "etag": item.get("ETag")}
        for item in page.get("Contents", [])
        if not item["Key"].endswith("/")
        and (not request.prefix or item["Key"] == request.prefix or item["Key"].startswith(folder))
    ]
    if not page.get("IsTruncated"):
        return found, None
    token = page.get("NextContinuationToken")
    if not token or token == request.continuation_token:
        # A listing that says there is more but gives no new way to it would end a download early
        # (or loop): the service does not implement ListObjectsV2 as S3 does.
        raise BadRequestError(
            f"The S3 service of the {where} answered a truncated listing without a new continuation token;"
            " it does not list as S3 does.",
            target="name",
        )
    return found, token


def _refused(where: str, exc: ClientError, request: PresignRequest) -> BadRequestError:
    """What the user can act on, from the error's code and status only (never the service's text)."""
    status, code = s3.error_status(exc), s3.error_code(exc)
    seen = f"HTTP {status}" if code in ("", str(status)) else f"{code}, HTTP {status}"
    if code == "NoSuchBucket" or status == 404:
        return BadRequestError(f"The {where} does not exist ({seen}).", target="name")
    if status in (401, 403):
        return BadRequestError(
            f"The S3 service refused to list the {where} ({seen}): register the datastore again with a key"
            " pair that may list and read the bucket.",
            target="name",
        )
    if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        return BadRequestError(
            f"The {where} is in another region than the datastore's ({seen}): register it again with its region.",
            target="name",
        )
    if request.continuation_token is not None and status == 400:
        return BadRequestError(
            f"continuationToken was refused by the {where} ({seen}): give the token the previous page returned.",
            target="continuationToken",
        )
    if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
        return BadRequestError(
            f"The S3 service failed to list the {where} ({seen}) after retries; try again later.", target="name"
        )
    return BadRequestError(f"The S3 service refused to list the {where} ({seen}).", target="name")


def _prefix(value: object) -> str:
    if value is None or value in ("", ".", "/"):
        return ""
    if not isinstance(value, str):
        raise BadRequestError("prefix must be a string: a path relative to the bucket's root.", target="prefix")
    problem = path_problem(value)
    if problem is not None:
        raise BadRequestError(f"prefix {value!r} is invalid: {problem}.", target="prefix")
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequestError(f"prefix is longer than {MAX_KEY_BYTES} bytes.", target="prefix")
    return "/".join(p for p in value.split("/") if p not in ("", ".")) + ("/" if value.endswith("/") else "")


def _page_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OBJECTS:
        raise BadRequestError(f"pageSize must be a whole number from 1 to {MAX_OBJECTS}.", target="pageSize")
    return value


def _token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 4096 or not value.isprintable():
        raise BadRequestError(
            "continuationToken must be the string the previous page returned.", target="continuationToken"
        )
    return value


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_OBJECTS:
        raise BadRequestError(
            f"names must be a list of 1 to {MAX_OBJECTS} object names (paths relative to the bucket's root).",
            target="names",
        )
    names: list[str] = []
    for index, name in enumerate(value):
        where = f"names[{index}]"
        if not isinstance(name, str) or name == "":
            raise BadRequestError(f"{where} must be a non-empty path such as 'data/a.csv'.", target=where)
        problem = path_problem(name)
        if problem is None and (name.endswith("/") or any(p in ("", ".") for p in name.split("/"))):
            problem = "it names a folder or has an empty or '.' segment; give a file's path such as 'data/a.csv'"
        if problem is None and len(name.encode("utf-8")) > MAX_KEY_BYTES:
            problem = f"it is longer than {MAX_KEY_BYTES} bytes"
        if problem is not None:
            raise BadRequestError(f"{where} {name!r} is invalid: {problem}.", target=where)
        names.append(name)
    if len(set(names)) != len(names):
        raise BadRequestError("names lists the same object twice.", target="names")
    return tuple(names)


def _run_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_guid(value):
        raise BadRequestError("runId must be a pipeline run's id (a GUID).", target="runId")
    return value
