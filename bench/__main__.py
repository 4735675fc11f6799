"""Run every benchmark: ``python -m bench`` (``make bench``)."""

from __future__ import annotations

from bench import data_transfer, datastore_watch, host_hops, pipeline_steps, schedule_firing

if __name__ == "__main__":
    host_hops.main()
    pipeline_steps.main()
    schedule_firing.main()
    datastore_watch.main()
    data_transfer.main()
