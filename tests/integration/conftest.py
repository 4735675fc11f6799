"""Integration fixtures: the engine's storage clients on the session's Azurite, isolated per test.

Each test gets its own table prefix and queue names (through the app settings the engine reads), so
tests never see each other's rows or messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.graph.snapshot import build_snapshot
from shared.pipelines import submit
from shared.pipelines.stores import Stores
from shared.storage import StorageClients


@pytest.fixture
def clients(storage: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageClients]:
    unique = uuid.uuid4().hex[:10]
    monkeypatch.setenv("AMLPIPE_TABLE_PREFIX", f"i{unique}")
    monkeypatch.setenv("AMLPIPE_RUN_QUEUE", f"runs-{unique}")
    monkeypatch.setenv("AMLPIPE_STEP_QUEUE", f"steps-{unique}")
    monkeypatch.setenv("AMLPIPE_SCHEDULE_QUEUE", f"fires-{unique}")
    with StorageClients.from_connection_string(storage) as opened:
        yield opened


@pytest.fixture
def stores(clients: StorageClients) -> Stores:
    return Stores.from_clients(clients)


def upload_snapshot(stores: Stores, files: Mapping[str, str], folder: Path) -> dict[str, Any]:
    """Write ``files`` into ``folder``, upload it as a snapshot as the SDK does (staging SAS, then
    commit); its graph reference ``{"sha256", "size_bytes"}``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    snap = build_snapshot(folder)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        assert put.status_code == 201, put.text
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    return {"sha256": snap.sha256, "size_bytes": snap.size_bytes}


def submit_steps(stores: Stores, steps: list[dict[str, Any]], experiment: str = "integration") -> str:
    """Submit a graph of ``steps`` (no registry checks); the run id."""
    return submit.submit_graph(stores, {"ExperimentName": experiment, "Graph": {"steps": steps}}, None).id
