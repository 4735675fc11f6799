"""The real app (function_app.py at the repo root) on the local host: /api/health."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from amlpipe.host.azurite import connection_string
from amlpipe.host.testing import HostProcess, WaitTimeout
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def app_env(storage: str, unique: str) -> dict[str, str]:
    """A host of its own, and a default container of its own (its blob trigger sees no other app's blobs)."""
    return {
        "AzureWebJobsStorage": storage,
        "AzureFunctionsWebHost__hostid": f"e2e-{unique}",
        "AMLPIPE_DEFAULT_CONTAINER": f"blobs-{unique}",
    }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def app_host(storage: str, unique: str) -> Iterator[HostProcess]:
    host = HostProcess(ROOT, env=app_env(storage, unique)).start()
    yield host
    host.stop()


def test_health_is_anonymous_and_reports_version_and_storage(app_host: HostProcess) -> None:
    response = httpx.get(f"{app_host.url}/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Healthy" and body["storage"] == {"reachable": True}
    assert body["version"]


def test_health_is_503_when_storage_is_unreachable(unique: str) -> None:
    port = closed_port()
    host = HostProcess(
        ROOT,
        env={
            "AzureWebJobsStorage": connection_string(port, port, port),
            "AzureFunctionsWebHost__hostid": f"e2e-{unique}",
        },
    ).start()
    try:
        response = httpx.get(f"{host.url}/api/health", timeout=20)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "Unhealthy" and body["storage"]["reachable"] is False
        assert "AccountKey" not in response.text
    finally:
        host.stop()


def test_health_with_enable_auth_needs_no_key(storage: str, unique: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = HostProcess(
        ROOT,
        env=app_env(storage, unique),
        args=["--enable-auth", "--keys-file", str(tmp_path / "keys.json")],
    ).start()
    try:
        assert httpx.get(f"{host.url}/api/health").status_code == 200
    finally:
        host.stop()


def test_a_host_that_does_not_start_in_time_is_not_left_running(storage: str, unique: str) -> None:
    host = HostProcess(ROOT, env={"AzureWebJobsStorage": storage, "AzureFunctionsWebHost__hostid": f"e2e-{unique}"})
    with pytest.raises(WaitTimeout):
        host.start(timeout=0.01)  # far too short for any start
    assert host.exited
