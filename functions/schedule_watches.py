"""Triggers that fire datastore-watch schedules: a blob trigger on the default datastore's container,
and a timer that polls registered datastores.

The engine is :mod:`shared.schedules.watches`; these only adapt the triggers to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import cast

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties

from shared import storage
from shared.pipelines.stores import default_stores
from shared.registry import DEFAULT_DATASTORE, default_registry
from shared.schedules.watches import BlobChange, DatastoreAccess, Poller, Watcher

bp = func.Blueprint()
STORAGE = "AzureWebJobsStorage"
# App settings (defaults in local.settings.json; infra sets them on Azure).
DEFAULT_CONTAINER_PATH = "%AMLPIPE_DEFAULT_CONTAINER%/{name}"
POLLER_SCHEDULE = "%AMLPIPE_DATASTORE_POLLER%"
#: How the host learns of new blobs on the default datastore. The binding's ``source`` is not resolved
#: from app settings by the host, so it is read here, when the app is indexed: Flex Consumption loads
#: only ``EventGrid`` blob triggers (infra/main.bicep sets it), other plans and ``func start`` scan.
BLOB_TRIGGER_SOURCE_SETTING = "AMLPIPE_BLOB_TRIGGER_SOURCE"


def blob_trigger_source(settings: Mapping[str, str]) -> func.BlobSource:
    """The default datastore trigger's source from ``AMLPIPE_BLOB_TRIGGER_SOURCE`` (default: scan).

    Raises:
        ValueError: the setting names no source; indexing fails with this message, naming the setting.
    """
    raw = (settings.get(BLOB_TRIGGER_SOURCE_SETTING) or "").strip()
    if not raw:
        return func.BlobSource.LOGS_AND_CONTAINER_SCAN
    for source in func.BlobSource:
        if raw.lower() == source.value.lower():
            return source
    valid = " or ".join(s.value for s in func.BlobSource)
    raise ValueError(
        f"The app setting {BLOB_TRIGGER_SOURCE_SETTING}={raw!r} is not a blob trigger source; use {valid}."
    )


def _watcher() -> Watcher:
    clients = storage.clients()
    return Watcher.of(default_stores(), clients.tables, clients.queues, default_registry())


@bp.blob_trigger(
    arg_name="client", path=DEFAULT_CONTAINER_PATH, connection=STORAGE, source=blob_trigger_source(os.environ)
)
def watch_default_datastore(client: blob.BlobClient) -> None:
    """A blob version landed on the default datastore: fire the schedules watching its folder.

    An SDK-type binding: the host hands over a client, not the blob's content, which the watch does
    not need (every PipelineData output lands in this container, models and datasets included).
    """
    sdk_client = cast(BlobClient, client)
    try:
        change = change_from_properties(sdk_client.get_blob_properties())
    except ResourceNotFoundError:
        return  # deleted since it landed: nothing to fire for
    finally:
        # The worker keeps this client for the blob's name; let go of its connections now.
        sdk_client.close()
    _watcher().handle(change)


@bp.timer_trigger(arg_name="timer", schedule=POLLER_SCHEDULE)
def datastore_poller(timer: func.TimerRequest) -> None:
    """Poll the folders of the datastore schedules due for a poll (registered datastores; the default
    one's to reconcile what its blob trigger missed), and close overdue debounce windows."""
    access = DatastoreAccess(default_registry(), storage.clients().blobs)
    Poller(default_stores(), access, _watcher()).poll()


def change_from_properties(properties: BlobProperties) -> BlobChange:
    """The blob version the trigger's client reads (its current one: a newer version than the one
    that triggered is fine, as that version's own trigger is then a duplicate)."""
    return BlobChange.from_properties(DEFAULT_DATASTORE, properties)
