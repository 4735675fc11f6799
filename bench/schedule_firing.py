"""How late a recurrence schedule's run is created after its due time, on the real app.

Twenty schedules of one published pipeline, each a Minute recurrence whose first due time is a
second apart from the next, 40-60 s ahead; the planner ticks every 15 s (``AMLPIPE_SCHEDULE_PLANNER``;
by default once a minute, which changes nothing here: each fire waits in the queue for its due time).
Figure: run CreationTime − due time, p50 and max, over the 20 first fires. Target: within 2 s.

Run with ``python -m bench.schedule_firing``; results go to ``bench/results/schedule_firing.json``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from amlpipe.pipeline.core import Pipeline, Schedule, ScheduleRecurrence
from bench.figures import lag_figures, save
from bench.pipeline_steps import _step, stack
from shared.pipelines._storage import utcnow

SCHEDULES = 20
RESULTS = "schedule_firing"


def measure() -> dict[str, Any]:
    with stack(1, AMLPIPE_SCHEDULE_PLANNER="*/15 * * * * *") as s:
        published = Pipeline(s.workspace, steps=[_step(s, "noop")]).publish(name="timed", description="bench")
        first = (utcnow() + timedelta(seconds=40)).replace(microsecond=0)
        dues: dict[str, datetime] = {}
        for i in range(SCHEDULES):
            due = first + timedelta(seconds=i)
            recurrence = ScheduleRecurrence("Minute", 1, start_time=due.strftime("%Y-%m-%dT%H:%M:%S"))
            schedule = Schedule.create(s.workspace, f"timed-{i}", published.id, "bench-firing", recurrence=recurrence)
            dues[schedule.id] = due
        lags: list[float] = []
        deadline = time.monotonic() + 180
        pending = dict(dues)
        while pending and time.monotonic() < deadline:
            time.sleep(0.5)  # a benchmark polling the service it measures, not a test
            for schedule_id, due in list(pending.items()):
                last = Schedule.get(s.workspace, schedule_id).get_last_pipeline_run()
                if last is not None:
                    created = datetime.fromisoformat(
                        str(last._details()["Status"]["CreationTime"]).replace("Z", "+00:00")
                    )
                    lags.append((created - due).total_seconds())
                    del pending[schedule_id]
    return {"schedules": SCHEDULES, "fired": len(lags), **lag_figures(lags)}


def main() -> None:
    figures = measure()
    save(RESULTS, figures)
    print(
        f"Schedule firing: {figures['fired']}/{figures['schedules']} fired; due → run created "
        f"p50 {figures['p50_seconds']:.2f} s, max {figures['max_seconds']:.2f} s (target ≤ 2 s)"
    )


if __name__ == "__main__":
    main()
