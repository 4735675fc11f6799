"""The SDK's S3 transport over a real socket: the requests it sends with presigned URLs, its retries,
its byte-exact downloads, and errors that never carry a signed URL.

moto's server accepts what AWS refuses (a chunked empty PUT) and never fails on purpose, so these
tests put a small scripted HTTP server on loopback where the bucket would be and record every
request. The service's side (the presign route, with moto) is covered end to end in
tests/e2e/test_registry_api.py.
"""

from __future__ import annotations

import gzip
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from amlpipe.data import _s3, _transfer
from amlpipe.exceptions import ServiceException

SIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123456789abcdef"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedBucket:
    """Answers each request with the next scripted (status, headers, body), else 200; records requests."""

    url: str
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def bucket() -> Iterator[ScriptedBucket]:
    state: dict[str, ScriptedBucket] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            scripted = state["bucket"]
            with scripted.lock:
                scripted.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                status, headers, payload = scripted.script.pop(0) if scripted.script else (200, {}, b"")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["bucket"] = ScriptedBucket(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["bucket"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class PresignService:
    """The service's presign answers, as the route gives them, for objects of ``bucket``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.bodies: list[dict[str, Any]] = []

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if body["permission"] == "write":
            headers = {} if body["overwrite"] else {"If-None-Match": "*"}
            objects = [{"name": n, "url": f"{self.base_url}/{n}?{SIGNED}", "headers": headers} for n in body["names"]]
            return {"objects": objects}
        return {"objects": [{"name": "a.bin", "url": f"{self.base_url}/a.bin?{SIGNED}"}], "continuationToken": None}


def files_for(bucket: ScriptedBucket, *, overwrite: bool = False) -> tuple[_s3.S3Files, PresignService]:
    service = PresignService(bucket.url)
    return _s3.S3Files(service, "s3_data", overwrite=overwrite), service  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3, "BACKOFF", 0.01)


def test_an_empty_file_is_put_with_a_content_length_of_zero_never_chunked(
    bucket: ScriptedBucket, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "__init__.py").write_bytes(b"")
    (tmp_path / "src" / "data.csv").write_bytes(b"x\n1\n")
    files, _ = files_for(bucket)
    pairs = [(p, p.name) for p in _transfer.walk(tmp_path / "src")]
    files.prepare([name for _, name in pairs], None)
    assert _transfer.upload(files, pairs, show_progress=False) == 2
    files.close()
    by_name = {seen.path.split("?")[0]: seen for seen in bucket.seen}
    empty = by_name["/__init__.py"]
    assert empty.headers.get("Content-Length") == "0" and "Transfer-Encoding" not in empty.headers
    assert by_name["/data.csv"].headers.get("Content-Length") == "4" and by_name["/data.csv"].body == b"x\n1\n"
    assert all(seen.headers.get("If-None-Match") == "*" for seen in bucket.seen)


def test_a_put_is_tried_again_after_throttling_and_a_412_keeps_the_object(
    bucket: ScriptedBucket, tmp_path: Path
) -> None:
    local = tmp_path / "a.csv"
    local.write_bytes(b"abc")
    files, _ = files_for(bucket)
    bucket.script = [(503, {}, b"<Error><Code>SlowDown</Code></Error>"), (200, {}, b"")]
    assert files.put(local, "a.csv", None) is True
    assert [s.body for s in bucket.seen] == [b"abc", b"abc"]  # the file is sent whole again
    bucket.script = [(412, {}, b"<Error><Code>PreconditionFailed</Code></Error>")]
    assert files.put(local, "a.csv", None) is False
    files.close()


def test_a_download_is_byte_exact_even_when_the_object_is_stored_gzip_encoded(
    bucket: ScriptedBucket, tmp_path: Path
) -> None:
    stored = gzip.compress(b"hello, world\n" * 100)
    bucket.script = [
        (500, {}, b"<Error><Code>InternalError</Code></Error>"),
        (200, {"Content-Encoding": "gzip", "Content-Type": "text/csv"}, stored),
    ]
    files, _ = files_for(bucket)
    assert _transfer.download(files, tmp_path / "out", "", overwrite=False, show_progress=False) == 1
    files.close()
    assert (tmp_path / "out" / "a.bin").read_bytes() == stored  # as stored, after one retry
    assert [s.method for s in bucket.seen] == ["GET", "GET"]


def test_a_redirect_is_not_followed_and_a_refusal_names_the_object_not_the_url(
    bucket: ScriptedBucket, tmp_path: Path
) -> None:
    bucket.script = [(307, {"Location": f"{bucket.url}/elsewhere"}, b"")]
    files, _ = files_for(bucket)
    with pytest.raises(ServiceException) as caught:
        _transfer.download(files, tmp_path / "out", "", overwrite=False, show_progress=False)
    files.close()
    assert [s.path.split("?")[0] for s in bucket.seen] == ["/a.bin"]
    assert "'a.bin' on datastore 's3_data'" in str(caught.value) and "Signature" not in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left behind


def test_an_unreachable_bucket_fails_after_its_tries_without_the_signed_url_anywhere(tmp_path: Path) -> None:
    closed = ScriptedBucket("http://127.0.0.1:9")  # the discard port: nothing listens
    local = tmp_path / "a.csv"
    local.write_bytes(b"abc")
    files, _ = files_for(closed)
    with pytest.raises(ServiceException) as caught:
        files.put(local, "a.csv", None)
    files.close()
    error = caught.value
    text = str(error) + "".join(traceback.format_exception(error))
    assert f"{_s3.ATTEMPTS} tries" in str(error) and "a.csv" in str(error)
    assert "Signature" not in text and error.__context__ is None and error.__cause__ is None


def test_names_are_signed_in_batches_by_count_and_by_size(
    bucket: ScriptedBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_s3, "BATCH", 3)
    monkeypatch.setattr(_s3, "BATCH_BYTES", 100)
    files, service = files_for(bucket)
    names = ["a", "b", "c", "d", "x" * 60, "y" * 60, "z"]
    files.prepare(names, {"amlpipe_run_id": "1b7e7a4c-0000-4000-8000-000000000001"})
    files.close()
    assert [body["names"] for body in service.bodies] == [["a", "b", "c"], ["d", "x" * 60], ["y" * 60, "z"]]
    assert {body["runId"] for body in service.bodies} == {"1b7e7a4c-0000-4000-8000-000000000001"}
