"""Integration fixtures: the engine's storage clients on the session's Azurite, isolated per test.

Each test gets its own table prefix and queue names (through the app settings the engine reads), so
tests never see each other's rows or messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shared.pipelines.stores import Stores
from shared.storage import StorageClients


@pytest.fixture
def clients(storage: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageClients]:
    unique = uuid.uuid4().hex[:10]
    monkeypatch.setenv("AMLPIPE_TABLE_PREFIX", f"i{unique}")
    monkeypatch.setenv("AMLPIPE_RUN_QUEUE", f"runs-{unique}")
    monkeypatch.setenv("AMLPIPE_STEP_QUEUE", f"steps-{unique}")
    with StorageClients.from_connection_string(storage) as opened:
        yield opened


@pytest.fixture
def stores(clients: StorageClients) -> Stores:
    return Stores.from_clients(clients)
