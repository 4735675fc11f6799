"""HTTP triggers on the local host, over a real socket."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from amlpipe.host.testing import HostProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def host(start_host) -> HostProcess:  # type: ignore[no-untyped-def]
    return start_host("http_app")


def test_str_return_is_a_200_text_body(host: HostProcess) -> None:
    response = httpx.get(f"{host.url}/api/hello")
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["content-type"].startswith("text/plain")


def test_int_constraint_route_params_and_query(host: HostProcess) -> None:
    response = httpx.get(f"{host.url}/api/items/42?q=x")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "42" and body["q"] == "x"
    assert body["url"].endswith("/api/items/42?q=x")
    assert httpx.get(f"{host.url}/api/items/abc").status_code == 404


def test_literal_segment_wins_over_parameter(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/items/new").text == "literal route wins"


def test_method_filter_answers_405_with_allow(host: HostProcess) -> None:
    response = httpx.put(f"{host.url}/api/items/1")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"DELETE", "GET"}
    assert httpx.delete(f"{host.url}/api/items/1").status_code == 204


def test_catch_all_route_keeps_slashes(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/files/a/b/c.txt").text == "a/b/c.txt"
    assert httpx.get(f"{host.url}/api/files").text == ""


def test_optional_parameter(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/products/books/7").json() == {"category": "books", "id": "7"}
    assert httpx.get(f"{host.url}/api/products/books").json() == {"category": "books"}
    assert httpx.get(f"{host.url}/api/products/123").status_code == 404


def test_http_response_status_headers_and_json_body(host: HostProcess) -> None:
    response = httpx.post(f"{host.url}/api/echo", json={"a": 1}, headers={"X-Custom": "c"})
    assert response.status_code == 201
    assert response.headers["x-echo"] == "yes"
    assert response.json() == {"body": {"a": 1}, "header": "c", "method": "POST"}


def test_unknown_route_and_missing_prefix_are_404(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/nothing-here").status_code == 404
    assert httpx.get(f"{host.url}/hello").status_code == 404


def test_unhandled_exception_is_a_bare_500_and_traceback_is_logged(host: HostProcess) -> None:
    response = httpx.get(f"{host.url}/api/boom")
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    host.wait_for_log("RuntimeError: secret internal detail")
    assert "Traceback (most recent call last)" in host.log
    assert "Executed 'Functions.boom' (Failed" in host.log


def test_timeout_error_raised_by_the_function_is_an_ordinary_failure(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/user-timeout").status_code == 500
    host.wait_for_log("TimeoutError: upstream API timed out")
    failed = [line for line in host.log.splitlines() if "Executed 'Functions.user_timeout' (Failed" in line]
    assert failed and "Timeout value exceeded" not in host.log.split(failed[0], 1)[1].splitlines()[1]


def test_encoded_slash_stays_inside_a_segment(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/files/a%2Fb/c").text == "a%2Fb/c"
    assert httpx.get(f"{host.url}/api/items/1%2F2").status_code == 404


def test_function_timeout_is_enforced(host: HostProcess) -> None:
    response = httpx.get(f"{host.url}/api/slow?s=10", timeout=15)
    assert response.status_code == 500
    host.wait_for_log("Timeout value exceeded")
    assert httpx.get(f"{host.url}/api/slow?s=0").text == "done"


def test_host_json_log_level_filters_a_function_logs(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/chatty").text == "said things"
    host.wait_for_log("Executed 'Functions.chatty' (Succeeded")
    assert "chatty warning line" in host.log
    assert "chatty info line" not in host.log  # host.json: "Function.chatty": "Warning"


def test_context_parameter_is_bound(host: HostProcess) -> None:
    # thread_local_storage carries the invocation id in the worker thread, as the worker sets it.
    assert httpx.get(f"{host.url}/api/context").text == "with_context:True:True"


def test_disabled_function_is_not_served(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/disabled").status_code == 404
    assert "Function 'disabled_fn' is disabled" in host.log


def test_keys_are_not_checked_without_enable_auth(host: HostProcess) -> None:
    assert httpx.get(f"{host.url}/api/secured").text == "function level"
    assert httpx.get(f"{host.url}/api/adminonly").text == "admin level"


def test_cors_allows_configured_origin_only(host: HostProcess) -> None:
    allowed = httpx.get(f"{host.url}/api/hello", headers={"Origin": "http://allowed.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    other = httpx.get(f"{host.url}/api/hello", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_host_status_reports_running(host: HostProcess) -> None:
    status = httpx.get(f"{host.url}/admin/host/status").json()
    assert status["state"] == "Running" and status["id"] == host.host_id


def test_enable_auth_enforces_function_and_admin_keys(start_host, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keys_file = tmp_path / "keys.json"
    host = start_host("http_app", args=["--enable-auth", "--keys-file", str(keys_file), "--shutdown-grace", "5"])
    keys = json.loads(keys_file.read_text())
    master, default = keys["masterKey"], keys["functionKeys"]["default"]
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    url = f"{host.url}/api/secured"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"x-functions-key": "wrong"}).status_code == 401
    assert httpx.get(url, headers={"x-functions-key": default}).status_code == 200
    assert httpx.get(url, params={"code": default}).status_code == 200
    assert httpx.get(url, params={"code": master}).status_code == 200
    admin = f"{host.url}/api/adminonly"
    assert httpx.get(admin, headers={"x-functions-key": default}).status_code == 401
    assert httpx.get(admin, headers={"x-functions-key": master}).status_code == 200
    assert httpx.get(f"{host.url}/api/hello").status_code == 200  # anonymous stays open
    status = f"{host.url}/admin/host/status"
    assert httpx.get(status).status_code == 401
    assert httpx.get(status, headers={"x-functions-key": default}).status_code == 401
    assert httpx.get(status, headers={"x-functions-key": master}).status_code == 200
    assert master not in host.log and default not in host.log


def test_keys_are_stored_hashed_and_survive_restart(start_host, tmp_path: Path, storage: str) -> None:  # type: ignore[no-untyped-def]
    from azure.storage.blob import BlobServiceClient

    keys_file = tmp_path / "keys.json"
    first = start_host("http_app", args=["--enable-auth", "--keys-file", str(keys_file)])
    master = json.loads(keys_file.read_text())["masterKey"]
    first.stop()
    blob = BlobServiceClient.from_connection_string(storage).get_blob_client(
        "azure-webjobs-secrets", f"{first.host_id}/amlpipe-keys.json"
    )
    stored = blob.download_blob().readall().decode()
    assert master not in stored and "sha256" in stored
    keys_file.unlink()
    second = start_host("http_app", args=["--enable-auth", "--keys-file", str(keys_file)])
    assert not keys_file.exists()  # existing keys are not re-issued
    assert httpx.get(f"{second.url}/api/adminonly", params={"code": master}).status_code == 200
