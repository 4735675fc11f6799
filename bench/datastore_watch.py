"""How soon a datastore watch's run is created after a blob lands, on the real app.

One schedule of one published pipeline watches ``data/in`` on the default datastore (no debounce);
twenty blobs are uploaded with ``azure-storage-blob`` one after another, each after the previous
one's run exists and a random pause of 0-2 s (so uploads land at every phase of the host's scan,
not just after one). The host scans the container every 2 s (the Functions host's development-storage
default, unchanged here). Figure: run CreationTime − when the upload started, p50 and max over
the 20 uploads (the upload's start, by the same machine's clock). Target: p50 ≤ 3 s (azureml polls
every 5 minutes; the Functions polling blob trigger can take 10 minutes on Consumption).

Run with ``python -m bench.datastore_watch``; results go to ``bench/results/datastore_watch.json``.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobServiceClient

from amlpipe.pipeline.core import Pipeline, Schedule
from bench.figures import lag_figures, save
from bench.pipeline_steps import _step, stack

UPLOADS = 20
RESULTS = "datastore_watch"
DEFAULT_CONTAINER = "azureml-blobstore"  # local.settings.json's AMLPIPE_DEFAULT_CONTAINER


def measure() -> dict[str, Any]:
    with stack(1) as s:
        published = Pipeline(s.workspace, steps=[_step(s, "noop")]).publish(name="watched", description="bench")
        schedule = Schedule.create(
            s.workspace, "landing", published.id, "bench-watch", datastore="workspaceblobstore",
            path_on_datastore="data/in",
        )  # fmt: skip
        service = BlobServiceClient.from_connection_string(s.hosts[0].env["AzureWebJobsStorage"])
        container = service.get_container_client(DEFAULT_CONTAINER)
        if not container.exists():
            container.create_container()
        lags: list[float] = []
        pauses = random.Random(5)
        for i in range(UPLOADS):
            time.sleep(pauses.uniform(0, 2))
            sent = datetime.now(UTC)  # Last-Modified has whole seconds: the clock before the upload is closer
            container.upload_blob(f"data/in/part-{i:02}.csv", f"{i},{time.time()}\n".encode())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.05)  # a benchmark polling the service it measures, not a test
                runs = Schedule.get(s.workspace, schedule.id).get_pipeline_runs()
                if len(runs) > i:
                    created = datetime.fromisoformat(
                        str(runs[0]._details()["Status"]["CreationTime"]).replace("Z", "+00:00")
                    )
                    lags.append((created - sent).total_seconds())
                    break
    return {"uploads": UPLOADS, "fired": len(lags), **lag_figures(lags)}


def main() -> None:
    figures = measure()
    save(RESULTS, figures)
    print(
        f"Datastore watch: {figures['fired']}/{figures['uploads']} uploads started a run; upload → run created "
        f"p50 {figures['p50_seconds']:.2f} s, max {figures['max_seconds']:.2f} s (target p50 ≤ 3 s)"
    )


if __name__ == "__main__":
    main()
