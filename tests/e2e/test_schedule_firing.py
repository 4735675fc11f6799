"""Recurrence schedules fire on the real app: two hosts of one app, one run per due time.

The planner timer ticks every 2 seconds here (``AMLPIPE_SCHEDULE_PLANNER``); both hosts run the
app, so both take fire messages from one queue. A minute schedule whose first due time is a few
seconds ahead must start exactly one run for it, carrying the schedule's parameters, and the
schedule must show it (``last_fired``, ``last_run_id``, ``next_due``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from amlpipe.host.testing import HostProcess, wait_for
from amlpipe.pipeline.core import Pipeline, PipelineParameter, Schedule, ScheduleRecurrence
from amlpipe.pipeline.steps import PythonScriptStep
from shared.pipelines._storage import utcnow
from shared.schedules.firing import fire_run_id
from tests.conftest import ROOT
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration


@pytest.fixture
def two_hosts(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealApp, HostProcess]]:
    folder = tmp_path_factory.mktemp("firing")
    with real_app(storage, folder, "firing", AMLPIPE_SCHEDULE_PLANNER="*/2 * * * * *") as app:
        second = HostProcess(ROOT, env=app.env, args=["--shutdown-grace", "5"]).start()
        try:
            yield app, second
        finally:
            second.stop(timeout=20)


def test_a_due_schedule_starts_exactly_one_run_with_two_hosts(
    two_hosts: tuple[RealApp, HostProcess], tmp_path: Path
) -> None:
    app, second = two_hosts
    ws = app.owner()
    (tmp_path / "train.py").write_text("import sys\nprint('reg', sys.argv[-1])\n")
    step = PythonScriptStep(
        name="train",
        script_name="train.py",
        source_directory=str(tmp_path),
        arguments=["--reg", PipelineParameter("reg_rate", 0.01)],
    )
    published = Pipeline(ws, steps=[step]).publish(name="scheduled", description="firing e2e", version="1")
    due = (utcnow() + timedelta(seconds=6)).replace(microsecond=0)
    recurrence = ScheduleRecurrence(frequency="Minute", interval=1, start_time=due.strftime("%Y-%m-%dT%H:%M:%S"))
    schedule = Schedule.create(
        ws, "every-minute", published.id, "e2e-firing", recurrence=recurrence, pipeline_parameters={"reg_rate": 0.5}
    )
    assert isinstance(schedule.next_due, datetime) and schedule.next_due > due  # planned when created

    def fired() -> Schedule | None:
        current = Schedule.get(ws, schedule.id)
        return current if current.last_run_id is not None else None

    after = wait_for(fired, timeout=60, interval=0.5, what="the schedule to fire")
    assert after.last_fired == due and after.last_run_id == fire_run_id(schedule.id, due)
    assert isinstance(after.next_due, datetime) and after.next_due > due
    # Both hosts plan and fire; let the planner tick again on both before counting.
    ticks = [host.log.count("Executed 'Functions.schedule_planner'") for host in (app.host, second)]
    wait_for(
        lambda: sum(h.log.count("Executed 'Functions.schedule_planner'") for h in (app.host, second)) >= sum(ticks) + 2,
        timeout=30,
        what="two more planner ticks",
    )
    (run,) = after.get_pipeline_runs()  # one run, however many hosts and planner ticks
    assert run.id == fire_run_id(schedule.id, due)
    run.wait_for_completion(show_output=False, timeout_seconds=60)
    assert run.get_status() == "Finished"
    body = requests.get(f"{app.url}/api/PipelineRuns/{run.id}", headers=app.headers(), timeout=30).json()
    assert body["ParameterAssignments"] == {"reg_rate": "0.5"}  # the schedule's pipeline_parameters
    created = datetime.fromisoformat(body["Status"]["CreationTime"].replace("Z", "+00:00"))
    assert created >= due  # never before its due time (the queue delay is rounded up)
