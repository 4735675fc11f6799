"""Health of the service: the version, and whether Azure Storage answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError

from shared import storage
from shared.errors import AmlPipeError
from shared.version import VERSION

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
    """Probe Blob storage once, without retries, so an outage answers within ``timeout`` seconds.

    The account comes from the same settings as every other client (``shared.storage.StorageAccount``):
    a connection string, or an identity. The probe lists at most one container, which the identity's
    data role (Storage Blob Data Owner) allows; reading the service properties would need a management role.
    """
    try:
        account = storage.StorageAccount.from_settings()
    except AmlPipeError as exc:  # names the settings, never a value
        return HealthReport(VERSION, False, exc.message)
    try:
        client = storage.blob_service(account, retry_total=0, connection_timeout=timeout, read_timeout=timeout)
        with client:
            next(client.list_containers(results_per_page=1, timeout=int(timeout)).by_page(), None)
    except (AzureError, ValueError) as exc:
        # The client sees only "storage is not reachable"; the details are for the operator.
        log.warning("Storage health probe failed", exc_info=True)
        return HealthReport(VERSION, False, type(exc).__name__)
    return HealthReport(VERSION, True)
