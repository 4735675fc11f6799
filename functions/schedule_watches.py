"""Triggers that fire datastore-watch schedules: a blob trigger on the default datastore's container,
and a timer that polls registered datastores.

The engine is :mod:`shared.schedules.watches`; these only adapt the triggers to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func

from shared import storage
from shared.pipelines.stores import default_stores
from shared.registry import DEFAULT_DATASTORE, default_registry
from shared.schedules.watches import BlobChange, DatastoreAccess, Poller, Watcher

bp = func.Blueprint()
STORAGE = "AzureWebJobsStorage"
# App settings (defaults in local.settings.json; infra sets them on Azure).
DEFAULT_CONTAINER_PATH = "%AMLPIPE_DEFAULT_CONTAINER%/{name}"
POLLER_SCHEDULE = "%AMLPIPE_DATASTORE_POLLER%"


def _watcher() -> Watcher:
    clients = storage.clients()
    return Watcher.of(default_stores(), clients.tables, clients.queues, default_registry())


@bp.blob_trigger(arg_name="blob", path=DEFAULT_CONTAINER_PATH, connection=STORAGE)
def watch_default_datastore(blob: func.InputStream) -> None:
    """A blob version landed on the default datastore: fire the schedules watching its folder."""
    change = change_of(blob)
    if change is not None:
        _watcher().handle(change)


@bp.timer_trigger(arg_name="timer", schedule=POLLER_SCHEDULE)
def datastore_poller(timer: func.TimerRequest) -> None:
    """Poll the folders of the datastore schedules due for a poll (registered datastores; the default
    one's to reconcile what its blob trigger missed), and close overdue debounce windows."""
    access = DatastoreAccess(default_registry(), storage.clients().blobs)
    Poller(default_stores(), access, _watcher()).poll()


def change_of(blob: func.InputStream) -> BlobChange | None:
    """The blob version a trigger reports (``name`` is ``container/blob``); None without an ETag."""
    properties: dict[str, Any] = dict(getattr(blob, "blob_properties", None) or {})
    etag = properties.get("ETag")
    if not blob.name or not etag:
        return None
    name = blob.name.split("/", 1)[1] if "/" in blob.name else blob.name
    modified = properties.get("LastModified")
    return BlobChange(
        datastore=DEFAULT_DATASTORE,
        name=name,
        etag=str(etag).strip('"'),
        last_modified=datetime.fromisoformat(str(modified).replace("Z", "+00:00")) if modified else None,
        content_md5=properties.get("ContentMD5") or None,
        metadata=dict(getattr(blob, "metadata", None) or {}),
    )
