"""Health of the service: the version, and whether Azure Storage answers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.version import VERSION

STORAGE_SETTING = "AzureWebJobsStorage"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthReport:
    version: str
    storage_reachable: bool
    storage_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.storage_reachable

    def to_json(self) -> dict[str, Any]:
        storage: dict[str, Any] = {"reachable": self.storage_reachable}
        if self.storage_error:
            storage["error"] = self.storage_error
        return {
            "status": "Healthy" if self.healthy else "Unhealthy",
            "version": self.version,
            "storage": storage,
        }


def check(*, timeout: float = 3.0) -> HealthReport:
    """Probe Blob storage once, without retries, so an outage answers within ``timeout`` seconds."""
    connection = os.environ.get(STORAGE_SETTING)
    if not connection:
        return HealthReport(VERSION, False, f"app setting '{STORAGE_SETTING}' is not set")
    try:
        client = BlobServiceClient.from_connection_string(
            connection, retry_total=0, connection_timeout=timeout, read_timeout=timeout
        )
        with client:
            client.get_service_properties(timeout=int(timeout))
    except (AzureError, ValueError) as exc:
        # The client sees only "storage is not reachable"; the details are for the operator.
        log.warning("Storage health probe failed", exc_info=True)
        return HealthReport(VERSION, False, type(exc).__name__)
    return HealthReport(VERSION, True)
