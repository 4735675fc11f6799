"""An S3 datastore's bucket as :class:`~amlpipe.data._transfer.Files`, through presigned URLs.

The service keeps the bucket's key pair; it signs one URL per object for an hour
(``POST /api/datastores/{name}/presign``), and the bytes go straight between this machine and the
bucket with plain HTTP: a ``GET`` per file downloaded, a ``PUT`` per file uploaded, sending exactly the
headers the service signed (``If-None-Match: *`` keeps an existing object, the writer metadata of a
pipeline run). A single ``PUT`` holds at most 5 GiB, S3's limit for one request: larger files are
refused before anything is uploaded.

Errors never show a signed URL (it is a credential for an hour): they name the datastore, the object
and the service's error code and status.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import requests

from amlpipe._client import ServiceClient, api_path
from amlpipe.exceptions import AzureMLException, ServiceException, UserErrorException

#: S3 stores at most 5 GiB with one PUT.
MAX_SINGLE_PUT = 5 * 1024**3
#: Names signed per request (the service's limit).
BATCH = 1000
#: Objects listed per request (the service's limit).
PAGE = 1000
#: (connect, read) seconds for one object's request.
TIMEOUT = (10.0, 300.0)
_CHUNK = 1024 * 1024
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class S3Files:
    """The bucket of S3 datastore ``datastore``, reached with URLs the service signs.

    Args:
        client: the workspace's service client.
        datastore: the datastore's name.
        overwrite: whether :meth:`put` replaces an existing object (else it keeps it and returns False).
    """

    def __init__(self, client: ServiceClient, datastore: str, *, overwrite: bool = False) -> None:
        self._client = client
        self._datastore = datastore
        self._overwrite = overwrite
        self._urls: dict[str, str] = {}
        self._writes: dict[str, tuple[str, dict[str, str]]] = {}
        self._local = threading.local()

    def _path(self) -> str:
        return api_path("datastores", self._datastore, "presign")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    # -- uploading

    def prepare(self, names: list[str], metadata: Mapping[str, str] | None) -> None:
        """Have the service sign a PUT URL for each of ``names`` (in batches), before any upload starts."""
        run_id = (metadata or {}).get("amlpipe_run_id")
        for start in range(0, len(names), BATCH):
            body: dict[str, Any] = {
                "permission": "write",
                "names": names[start : start + BATCH],
                "overwrite": self._overwrite,
            }
            if run_id:
                body["runId"] = run_id
            answer = self._client.post(self._path(), body)
            for item in answer["objects"]:
                self._writes[item["name"]] = (item["url"], dict(item.get("headers") or {}))

    def put(self, local: Path, name: str, metadata: Mapping[str, str] | None) -> bool:
        if name not in self._writes:
            self.prepare([name], metadata)
        url, headers = self._writes[name]
        with open(local, "rb") as data:
            try:
                response = self._session().put(url, data=data, headers=headers, timeout=TIMEOUT)
            except requests.RequestException as exc:
                raise self._unreachable("upload", name, exc) from None
        with response:
            if response.status_code == 412 and not self._overwrite:
                return False  # If-None-Match: the object exists and is kept
            if response.status_code >= 300:
                raise self._refused("upload", name, response)
        return True

    # -- downloading

    def names(self, prefix: str) -> list[str]:
        token: str | None = None
        found: list[str] = []
        while True:
            body: dict[str, Any] = {"permission": "read", "prefix": prefix, "pageSize": PAGE}
            if token is not None:
                body["continuationToken"] = token
            answer = self._client.post(self._path(), body)
            for item in answer["objects"]:
                self._urls[item["name"]] = item["url"]
                found.append(item["name"])
            token = answer.get("continuationToken")
            if not token:
                return found

    def fetch(self, name: str, out: BinaryIO) -> None:
        if name not in self._urls:
            raise UserErrorException(f"Object '{name}' was not listed on datastore '{self._datastore}'.")
        try:
            response = self._session().get(self._urls[name], stream=True, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise self._unreachable("download", name, exc) from None
        with response:
            if response.status_code >= 300:
                raise self._refused("download", name, response)
            try:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
            except requests.RequestException as exc:
                raise self._unreachable("download", name, exc) from None

    def close(self) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    # -- errors (never with the URL: it is signed)

    def _refused(self, doing: str, name: str, response: requests.Response) -> AzureMLException:
        status = response.status_code
        found = _CODE.search(response.content[:4096]) if response.content else None
        code = found.group(1).decode("ascii") if found else ""
        seen = f"{code}, HTTP {status}" if code else f"HTTP {status}"
        where = f"'{name}' on datastore '{self._datastore}'"
        if status in (401, 403):
            return UserErrorException(
                f"The S3 service refused to {doing} {where} ({seen}): the signed URL expired (a transfer longer"
                " than an hour), or the datastore's key pair may not do it.",
            )
        if status == 404:
            return UserErrorException(f"Could not {doing} {where}: it is not there ({seen}).")
        return ServiceException(f"Could not {doing} {where}: the S3 service failed ({seen}).", status_code=status)

    def _unreachable(self, doing: str, name: str, exc: requests.RequestException) -> ServiceException:
        return ServiceException(
            f"Could not {doing} '{name}' on datastore '{self._datastore}': the S3 service could not be reached"
            f" ({type(exc).__name__}).",
            status_code=0,
        )


def check_sizes(files: list[tuple[Path, str]]) -> None:
    """Refuse files S3 cannot take in one PUT, before anything is uploaded.

    Raises:
        UserErrorException: a file is larger than :data:`MAX_SINGLE_PUT`.
    """
    for local, _ in files:
        if local.stat().st_size > MAX_SINGLE_PUT:
            raise UserErrorException(
                f"File '{local}' is larger than 5 GiB, the most one upload to an S3 datastore holds;"
                " split it, or copy it with a DataTransferStep (which uses multipart uploads)."
            )
