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

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3

from amlpipe._client import ServiceClient, api_path
from amlpipe.exceptions import AzureMLException, ServiceException, UserErrorException

#: S3 stores at most 5 GiB with one PUT.
MAX_SINGLE_PUT = 5 * 1024**3
#: Names signed per request (the service's limit), and the most JSON they may take (under its 1 MiB body).
BATCH = 1000
BATCH_BYTES = 512 * 1024
#: Objects listed per request (the service's limit).
PAGE = 1000
#: (connect, read) seconds for one object's request.
TIMEOUT = (10.0, 300.0)
#: Tries per object: connection errors, throttling, 5xx and AWS's 409 ConditionalRequestConflict are
#: tried again after BACKOFF, 2×BACKOFF, ... seconds (with jitter).
ATTEMPTS = 4
BACKOFF = 0.5
_RETRY_STATUS = frozenset({409, 500, 502, 503, 504})
_CHUNK = 1024 * 1024
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class S3Files:
    """The bucket of S3 datastore ``datastore``, reached with URLs the service signs.

    Thread-safe: uploads and downloads run in a pool, one HTTP session per thread (all closed by
    :meth:`close`). Requests never follow redirects: a redirect would break the URL's signature.

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
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def _path(self) -> str:
        return api_path("datastores", self._datastore, "presign")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    # -- uploading

    def prepare(self, names: list[str], metadata: Mapping[str, str] | None) -> None:
        """Have the service sign a PUT URL for each of ``names`` (in batches), before any upload starts."""
        run_id = (metadata or {}).get("amlpipe_run_id")
        for batch in _batches(names):
            body: dict[str, Any] = {"permission": "write", "names": batch, "overwrite": self._overwrite}
            if run_id:
                body["runId"] = run_id
            answer = self._client.post(self._path(), body)
            with self._lock:
                for item in answer["objects"]:
                    self._writes[item["name"]] = (item["url"], dict(item.get("headers") or {}))

    def put(self, local: Path, name: str, metadata: Mapping[str, str] | None) -> bool:
        with self._lock:
            signed = self._writes.get(name)
        if signed is None:
            self.prepare([name], metadata)
            with self._lock:
                signed = self._writes[name]
        url, headers = signed
        size = local.stat().st_size

        def send() -> requests.Response:
            with open(local, "rb") as data:
                # An empty file goes as b"": requests would send a 0-byte file object chunked, which S3 refuses.
                body: BinaryIO | bytes = data if size else b""
                return self._session().put(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)

        response = self._attempts("upload", name, send)
        with response:
            if response.status_code == 412 and not self._overwrite:
                return False  # If-None-Match: the object exists and is kept
            if response.status_code >= 300:
                raise self._refused("upload", name, response)
        return True

    # -- downloading

    def names(self, prefix: str) -> list[str]:
        token: str | None = None
        seen: set[str] = set()
        found: list[str] = []
        while True:
            body: dict[str, Any] = {"permission": "read", "prefix": prefix, "pageSize": PAGE}
            if token is not None:
                body["continuationToken"] = token
            answer = self._client.post(self._path(), body)
            with self._lock:
                for item in answer["objects"]:
                    self._urls[item["name"]] = item["url"]
                    found.append(item["name"])
            token = answer.get("continuationToken")
            if not token:
                return found
            if token in seen:
                raise ServiceException(
                    f"Listing datastore '{self._datastore}' returned the same page twice.", status_code=0
                )
            seen.add(token)

    def fetch(self, name: str, out: BinaryIO) -> None:
        """Write the stored bytes of ``name`` to ``out`` (as stored: a ``Content-Encoding`` is not undone);
        a try that fails part-way starts ``out`` again from its beginning."""
        with self._lock:
            url = self._urls.get(name)
        if url is None:
            raise UserErrorException(f"Object '{name}' was not listed on datastore '{self._datastore}'.")
        failure = ""
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1:
                _pause(attempt)
            out.seek(0)
            out.truncate()
            try:
                response = self._session().get(url, stream=True, timeout=TIMEOUT, allow_redirects=False)
            except requests.RequestException as exc:
                failure = type(exc).__name__
                continue
            with response:
                if response.status_code in _RETRY_STATUS and attempt < ATTEMPTS:
                    failure = f"HTTP {response.status_code}"
                    continue
                if response.status_code >= 300:
                    raise self._refused("download", name, response)
                try:
                    for chunk in response.raw.stream(_CHUNK, decode_content=False):
                        out.write(chunk)
                    return
                except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                    failure = type(exc).__name__
        raise self._unreachable("download", name, failure)

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _attempts(self, doing: str, name: str, send: Callable[[], requests.Response]) -> requests.Response:
        """``send()``'s answer, tried again on connection errors and retryable statuses; the last answer
        when every try met a retryable status."""
        failure = ""
        for attempt in range(1, ATTEMPTS + 1):
            if attempt > 1:
                _pause(attempt)
            try:
                response = send()
            except requests.RequestException as exc:
                failure = type(exc).__name__  # raised below, outside this block: no signed URL in __context__
                continue
            if response.status_code not in _RETRY_STATUS or attempt == ATTEMPTS:
                return response
            response.close()
        raise self._unreachable(doing, name, failure)

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

    def _unreachable(self, doing: str, name: str, failure: str) -> ServiceException:
        return ServiceException(
            f"Could not {doing} '{name}' on datastore '{self._datastore}': the S3 service could not be reached"
            f" or kept failing ({failure}, {ATTEMPTS} tries).",
            status_code=0,
        )


def _pause(attempt: int) -> None:
    """Back off before try ``attempt`` (2, 3, ...): BACKOFF doubled each time, with jitter."""
    time.sleep(BACKOFF * 2 ** (attempt - 2) * (0.5 + random.random()))


def _batches(names: list[str]) -> Iterator[list[str]]:
    """``names`` in batches of at most BATCH names and about BATCH_BYTES of JSON."""
    batch: list[str] = []
    size = 0
    for name in names:
        cost = len(json.dumps(name)) + 2
        if batch and (len(batch) == BATCH or size + cost > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(name)
        size += cost
    if batch:
        yield batch


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
