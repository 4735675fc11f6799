"""Test session fixtures: one Azurite on free ports for the whole session (and, for the tests that ask,
one moto S3 server: ``moto_s3`` in ``tests/s3_support.py``), host processes per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import settings

from amlpipe.host.azurite import Azurite
from amlpipe.host.testing import HostProcess
from tests.s3_support import moto_s3  # noqa: F401 - the session's moto S3 server, for every test

# Property tests explore new cases on developer machines; CI (CI=true) replays a fixed set, so a red
# CI run is reproducible and never caused by a newly drawn example alone.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

ROOT = Path(__file__).resolve().parents[1]
APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Our own Azurite: free ports and a private data folder, never a developer's instance."""
    instance = Azurite(tmp_path_factory.mktemp("azurite")).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def storage(azurite: Azurite) -> str:
    """The connection string of the session's Azurite."""
    return azurite.connection_string


@pytest.fixture
def unique() -> str:
    """A short unique token for queue, container and host names of one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.jsonl"


HostFactory = Callable[..., HostProcess]


@pytest.fixture
def start_host(storage: str, journal: Path, unique: str) -> Iterator[HostFactory]:
    """Start host processes for a test app; every one is stopped (or killed) at teardown."""
    started: list[HostProcess] = []

    def factory(
        app: str,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = ("--shutdown-grace", "5"),
        host_id: str | None = None,
    ) -> HostProcess:
        environment = {
            "AzureWebJobsStorage": storage,
            "AzureFunctionsWebHost__hostid": host_id or f"test-{unique}",
            "AMLPIPE_TEST_JOURNAL": str(journal),
            "PYTHONPATH": str(APPS),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        host = HostProcess(APPS / app, env=environment, args=args)
        started.append(host)
        return host.start()

    yield factory
    for host in started:
        try:
            host.stop(timeout=15)
        except Exception:  # noqa: BLE001 - teardown must reach every host
            host.kill()
