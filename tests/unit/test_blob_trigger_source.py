"""The default datastore's blob trigger takes its ``source`` from ``AMLPIPE_BLOB_TRIGGER_SOURCE`` when
the app is indexed (Flex Consumption loads only Event Grid blob triggers)."""

from __future__ import annotations

import azure.functions as func
import pytest

from functions.schedule_watches import BLOB_TRIGGER_SOURCE_SETTING, blob_trigger_source


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, func.BlobSource.LOGS_AND_CONTAINER_SCAN),
        ("", func.BlobSource.LOGS_AND_CONTAINER_SCAN),
        ("EventGrid", func.BlobSource.EVENT_GRID),
        (" eventgrid ", func.BlobSource.EVENT_GRID),
        ("LogsAndContainerScan", func.BlobSource.LOGS_AND_CONTAINER_SCAN),
    ],
)
def test_the_setting_chooses_the_source_and_scanning_is_the_default(
    value: str | None, expected: func.BlobSource
) -> None:
    settings = {} if value is None else {BLOB_TRIGGER_SOURCE_SETTING: value}
    assert blob_trigger_source(settings) is expected


def test_an_unknown_source_names_the_setting_and_the_valid_values() -> None:
    with pytest.raises(ValueError, match=r"AMLPIPE_BLOB_TRIGGER_SOURCE='Events'.*EventGrid or LogsAndContainerScan"):
        blob_trigger_source({BLOB_TRIGGER_SOURCE_SETTING: "Events"})
