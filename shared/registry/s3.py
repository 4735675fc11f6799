"""S3 buckets of registered datastores: boto3 clients set up for amlpipe, and the check at registration.

    with registry.datastores.bucket_access("s3_data") as access:     # a registered AmazonS3 datastore
        access.client.upload_file("model.pkl", access.bucket_name, "models/model.pkl")

A client uses what its datastore was registered with and none of the app's own AWS configuration: its
key pair, or unsigned requests when it has none (never the app's ambient credentials: a Contributor
must not borrow the app's identity through a datastore), its endpoint (``AWS_ENDPOINT_URL*`` settings
are ignored), its region. Timeouts are bounded; retries use botocore's standard mode (throttling,
5xx and connection errors, with back-off).

``check_bucket`` runs at registration: ``head_bucket``, after ``create_bucket`` when asked. A failure is
a ``BadRequestError`` naming the field to fix (``bucketName``, ``accessKeyId``, ``region``,
``endpointUrl``) and the datastore. Messages are built from the error's code and HTTP status only,
never from an exception's text, so they hold no credential and no signed URL.

boto3 is imported on first use: most of the app's requests never touch S3, and the import would add
to every cold start.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from shared.errors import BadRequestError
from shared.registry.datastore_spec import DEFAULT_S3_REGION, S3DatastoreSpec

if TYPE_CHECKING:
    import boto3.session
    from botocore.exceptions import BotoCoreError, ClientError
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType

__all__ = [
    "CHECK",
    "TRANSFER",
    "BucketAccess",
    "Timeouts",
    "check_bucket",
    "error_code",
    "error_status",
    "s3_client",
]

#: Error codes S3 services answer when the key pair is wrong or may not act on the bucket.
_CREDENTIAL_CODES = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AllAccessDisabled"}
)
#: Error codes meaning the bucket lives in another region than the one requests were signed for.
_REGION_CODES = frozenset(
    {"301", "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_CODE = re.compile(r"[A-Za-z0-9.]{1,64}")


@dataclass(frozen=True)
class Timeouts:
    """How long a client waits (seconds) and how many times it tries a request in all."""

    connect: float
    read: float
    attempts: int


#: At registration: one HEAD (and maybe a PUT) while the caller's HTTP request waits.
CHECK = Timeouts(connect=5, read=10, attempts=2)
#: Moving data (step inputs and outputs, DataTransferStep): patient, retrying throttling and 5xx.
TRANSFER = Timeouts(connect=10, read=120, attempts=5)


@dataclass(frozen=True)
class BucketAccess:
    """A ready client of a datastore's bucket; close it (or use ``with``) when done.

    Attributes:
        datastore: the datastore's name as registered.
        bucket_name: its bucket.
        client: a boto3 S3 client with the datastore's endpoint, region and credentials.
    """

    datastore: str
    bucket_name: str
    client: S3Client = field(repr=False)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> BucketAccess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SESSION_LOCK = threading.Lock()
_session: boto3.session.Session | None = None


def s3_client(spec: S3DatastoreSpec, *, timeouts: Timeouts = TRANSFER) -> S3Client:
    """A boto3 S3 client for ``spec``'s endpoint, region and key pair (unsigned requests without one).

    Clients come from one process-wide boto3 session (its loaded service model makes a client ~3 ms
    instead of ~130 ms); the key pair is the client's own, so clients of different datastores never
    share credentials.
    """
    import boto3.session
    from botocore import UNSIGNED
    from botocore.config import Config

    options: dict[str, Any] = {
        "region_name": spec.signing_region,
        "connect_timeout": timeouts.connect,
        "read_timeout": timeouts.read,
        "retries": {"mode": "standard", "total_max_attempts": timeouts.attempts},
        "ignore_configured_endpoint_urls": True,
        "user_agent_appid": "amlpipe",
    }
    # SigV4 always: botocore would presign SigV2 URLs wherever a region still allows it, which AWS
    # refuses for buckets created since 2020, and S3-compatible services refuse altogether.
    options["signature_version"] = UNSIGNED if spec.access_key_id is None else "s3v4"
    if spec.endpoint_url is None and "." not in spec.bucket_name:
        # AWS: the bucket's regional host (a presigned URL on the global host is redirected for a new
        # bucket, and the redirect breaks its signature). Dotted names stay path-style (TLS wildcard).
        options["s3"] = {"addressing_style": "virtual"}
    if spec.endpoint_url is not None:
        # S3-compatible services: path-style addressing (no DNS name per bucket, and it works on IP and
        # loopback endpoints), and checksums only where the S3 API requires them (many such services
        # refuse the CRC trailers botocore sends AWS by default).
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    with _SESSION_LOCK:  # a boto3 session is not thread-safe; one shared session loads S3's model once
        global _session
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3",
            endpoint_url=spec.endpoint_url,
            region_name=spec.signing_region,
            aws_access_key_id=spec.access_key_id,
            aws_secret_access_key=spec.secret_access_key,
            config=Config(**options),
        )


def check_bucket(datastore: str, spec: S3DatastoreSpec) -> None:
    """Check that ``spec``'s bucket answers to its credentials; create it first with ``create_if_not_exists``.

    Raises:
        BadRequestError: the bucket is missing or taken (``bucketName``), the credentials are refused
            (``accessKeyId``), the bucket is in another region (``region``), or the service cannot be
            reached or fails (``endpointUrl``); the message names the datastore and the bucket.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(spec, timeouts=CHECK)
    try:
        try:
            client.head_bucket(Bucket=spec.bucket_name)
        except ClientError as exc:
            if not (spec.create_if_not_exists and error_status(exc) == 404):
                raise
            _create_bucket(client, datastore, spec)
    except ClientError as exc:
        # Not chained: the cause carries the service's own text and the request's details.
        raise _refused(datastore, spec, exc) from None
    except BotoCoreError as exc:
        raise _unreachable(datastore, spec, exc) from None
    finally:
        client.close()


def _create_bucket(client: S3Client, datastore: str, spec: S3DatastoreSpec) -> None:
    from botocore.exceptions import ClientError

    try:
        if spec.signing_region == DEFAULT_S3_REGION:
            client.create_bucket(Bucket=spec.bucket_name)
        else:
            region = cast("BucketLocationConstraintType", spec.signing_region)
            client.create_bucket(Bucket=spec.bucket_name, CreateBucketConfiguration={"LocationConstraint": region})
        return
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":
            return
        if error_code(exc) != "BucketAlreadyExists":
            raise
    # Taken: by a registration racing this one (then it answers to our key), or by someone else.
    try:
        client.head_bucket(Bucket=spec.bucket_name)
    except ClientError as exc:
        if error_status(exc) != 403:
            raise
        raise BadRequestError(
            f"Bucket '{spec.bucket_name}' of datastore '{datastore}' already exists at {spec.where} and belongs"
            " to someone else: bucket names are global; choose another.",
            target="bucketName",
        ) from None


def error_status(exc: ClientError) -> int:
    """The HTTP status of an S3 error (0 when the response has none)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def error_code(exc: ClientError) -> str:
    """The error's code when it looks like one (a service could answer anything)."""
    code = str(exc.response.get("Error", {}).get("Code") or "")
    return code if _CODE.fullmatch(code) else ""


def _refused(datastore: str, spec: S3DatastoreSpec, exc: ClientError) -> BadRequestError:
    status, code = error_status(exc), error_code(exc)
    bucket = f"bucket '{spec.bucket_name}' of datastore '{datastore}'"
    seen = f"HTTP {status}" if code in ("", str(status)) else f"{code}, HTTP {status}"
    if status == 404 or code == "NoSuchBucket":
        return BadRequestError(
            f"Bucket '{spec.bucket_name}' of datastore '{datastore}' does not exist at {spec.where}: create it,"
            " or register with create_if_not_exists=True.",
            target="bucketName",
        )
    if code in _REGION_CODES or status == 301:
        return BadRequestError(
            f"The {bucket} is not in region '{spec.signing_region}' ({seen}): give the bucket's region.",
            target="region",
        )
    if code in _CREDENTIAL_CODES or status == 403:
        if spec.access_key_id is None:
            return BadRequestError(
                f"{spec.where} refused anonymous access to the {bucket} ({seen}): register it with"
                " access_key_id and secret_access_key.",
                target="accessKeyId",
            )
        return BadRequestError(
            f"{spec.where} refused the access key of datastore '{datastore}' for bucket '{spec.bucket_name}'"
            f" ({seen}): check accessKeyId and secretAccessKey, and that the key may use the bucket.",
            target="accessKeyId",
        )
    if code == "InvalidBucketName":
        return BadRequestError(f"{spec.where} refused the name of the {bucket} ({seen}).", target="bucketName")
    if status >= 500:
        return BadRequestError(
            f"{spec.where} failed while checking the {bucket} ({seen}); try again later.", target="endpointUrl"
        )
    return BadRequestError(f"{spec.where} refused the {bucket} ({seen}).", target="bucketName")


def _unreachable(datastore: str, spec: S3DatastoreSpec, exc: BotoCoreError) -> BadRequestError:
    from botocore.exceptions import ConnectionError, HTTPClientError

    check = "'endpointUrl'" if spec.endpoint_url else "'region' (no endpointUrl: AWS)"
    if isinstance(exc, ConnectionError | HTTPClientError):
        return BadRequestError(
            f"Could not reach {spec.where} to check bucket '{spec.bucket_name}' of datastore '{datastore}'"
            f" ({type(exc).__name__}): check {check}.",
            target="endpointUrl",
        )
    return BadRequestError(
        f"Could not check bucket '{spec.bucket_name}' of datastore '{datastore}' at {spec.where}"
        f" ({type(exc).__name__}).",
        target="bucketName",
    )
