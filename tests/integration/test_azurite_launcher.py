"""make start's Azurite handling: start when nothing listens, reuse a running one, refuse a half-taken set."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from azure.storage.queue import QueueServiceClient

from amlpipe.host.azurite import Azurite, start_or_reuse
from amlpipe.host.errors import HostConfigError

pytestmark = pytest.mark.integration


def free_ports() -> dict[str, int]:
    sockets = [socket.socket() for _ in range(3)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return dict(zip(("blob", "queue", "table"), (s.getsockname()[1] for s in sockets), strict=True))
    finally:
        for s in sockets:
            s.close()


def test_running_azurite_is_reused(azurite: Azurite, tmp_path: Path) -> None:
    assert start_or_reuse(tmp_path / "unused", ports=dict(azurite.ports)) is None
    assert not (tmp_path / "unused").exists()


def test_azurite_is_started_with_its_data_in_the_given_folder(tmp_path: Path) -> None:
    ports = free_ports()
    started = start_or_reuse(tmp_path / "data", ports=ports)
    assert started is not None
    try:
        assert started.ports == ports
        with QueueServiceClient.from_connection_string(started.connection_string) as client:
            client.create_queue("launcher-check")
        assert any((tmp_path / "data").iterdir())
    finally:
        started.stop()


def test_half_taken_ports_are_refused_with_the_ports_named(tmp_path: Path) -> None:
    ports = free_ports()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["queue"]))
        squatter.listen()
        with pytest.raises(HostConfigError, match=f"{ports['queue']} \\(queue\\) are in use"):
            start_or_reuse(tmp_path / "data", ports=ports)
