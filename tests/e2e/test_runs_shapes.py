"""Pipeline shapes on the real app: a diamond, continue_on_step_failure, a step timeout, and a wide
fan-out shared by two hosts of the same app (scale-out: both take step messages from one queue)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.core.runconfig import RunConfiguration
from amlpipe.core.workspace import Workspace
from amlpipe.host.testing import HostProcess, wait_for
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineRun
from amlpipe.pipeline.steps import PythonScriptStep
from tests.conftest import ROOT
from tests.e2e.conftest import PipelinesApp, RealApp, real_app

pytestmark = pytest.mark.integration

COPY = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--name")
p.add_argument("--inputs", nargs="*", default=[])
p.add_argument("--out")
a = p.parse_args()
parts = [a.name] + [open(os.path.join(i, "v.txt")).read() for i in a.inputs]
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "v.txt"), "w").write("(" + "+".join(parts) + ")")
print("wrote", "(" + "+".join(parts) + ")")
"""


def _submit(app: RealApp, pipeline: Pipeline, body: dict[str, Any]) -> str:
    published = pipeline.publish(name=f"shapes-{uuid.uuid4().hex[:6]}", description="shapes e2e", version="1")
    response = requests.post(published.endpoint, json=body, headers=app.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["Id"])


def _ended(app: RealApp, run_id: str, timeout: float = 90) -> dict[str, Any]:
    token = app.token()

    def terminal() -> dict[str, Any] | None:
        response = requests.get(f"{app.url}/api/PipelineRuns/{run_id}", headers=app.headers(token), timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") else None

    return wait_for(terminal, timeout=timeout, interval=0.2, what=f"run {run_id} to end")


def _steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in body["StepRuns"]}


def ws_steps(ws: Workspace, run_id: str) -> list[Any]:
    """The run's step runs through the SDK."""
    return PipelineRun.get(ws, run_id).get_steps()


@pytest.fixture(scope="module")
def ws(pipelines_app: PipelinesApp) -> Workspace:
    return Workspace.from_config(pipelines_app.config_path)


def test_a_diamond_runs_each_step_once_after_both_of_its_inputs(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "copy.py").write_text(COPY)
    store = ws.get_default_datastore()
    top, left, right, bottom = (PipelineData(n, datastore=store) for n in ("top", "left", "right", "bottom"))

    def step(name: str, reads: list[PipelineData], writes: PipelineData) -> PythonScriptStep:
        arguments: list[Any] = ["--name", name, "--out", writes]
        if reads:
            arguments += ["--inputs", *reads]
        return PythonScriptStep(
            name=name,
            script_name="copy.py",
            source_directory=str(tmp_path),
            inputs=reads,
            outputs=[writes],
            arguments=arguments,
            allow_reuse=False,
        )

    steps = [step("a", [], top), step("b", [top], left), step("c", [top], right), step("d", [left, right], bottom)]
    run_id = _submit(pipelines_app, Pipeline(ws, steps=steps), {"ExperimentName": "e2e-shapes"})
    body = _ended(pipelines_app, run_id)
    assert body["Status"]["StatusCode"] == "Finished", body["Status"]
    found = _steps(body)
    assert {n: s["Status"]["StatusCode"] for n, s in found.items()} == dict.fromkeys("abcd", "Finished")
    assert {n: s["Attempt"] for n, s in found.items()} == dict.fromkeys("abcd", 1)
    for later, earlier in (("b", "a"), ("c", "a"), ("d", "b"), ("d", "c")):
        assert found[earlier]["Status"]["EndTime"] <= found[later]["Status"]["StartTime"]
    logs = pipelines_app.host.log
    assert f"Execution {run_id}:d:1:" in logs
    step_d = next(s for s in ws_steps(ws, run_id) if s.name == "d")
    assert step_d.get_details()["runId"] == f"{run_id}:d:1"


def test_with_continue_on_step_failure_independent_steps_go_on_and_dependents_are_bypassed(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "boom.py").write_text("import sys\nsys.exit('kaboom')\n")
    (tmp_path / "ok.py").write_text("print('fine')\n")
    boom = PythonScriptStep(name="boom", script_name="boom.py", source_directory=str(tmp_path), allow_reuse=False)
    after = PythonScriptStep(name="after", script_name="ok.py", source_directory=str(tmp_path), allow_reuse=False)
    after.run_after(boom)
    alone = PythonScriptStep(name="alone", script_name="ok.py", source_directory=str(tmp_path), allow_reuse=False)
    body = {"ExperimentName": "e2e-shapes", "ContinueRunOnStepFailure": True}
    run_id = _submit(pipelines_app, Pipeline(ws, steps=[after, alone]), body)
    ended = _ended(pipelines_app, run_id)
    assert ended["Status"]["StatusCode"] == "Failed"  # as azureml reports a pipeline with a failed step
    found = _steps(ended)
    assert {n: s["Status"]["StatusCode"] for n, s in found.items()} == {
        "boom": "Failed",
        "after": "Bypassed",
        "alone": "Finished",
    }
    assert "kaboom" in found["boom"]["Status"]["StatusDetail"]
    assert "boom" in found["after"]["Status"]["StatusDetail"]


def test_a_step_past_its_max_run_duration_is_stopped_and_fails_with_the_reason(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    config = RunConfiguration()
    config.max_run_duration_seconds = 2
    slow = PythonScriptStep(
        name="slow", script_name="slow.py", source_directory=str(tmp_path), runconfig=config, allow_reuse=False
    )
    run_id = _submit(pipelines_app, Pipeline(ws, steps=[slow]), {"ExperimentName": "e2e-shapes"})
    ended = _ended(pipelines_app, run_id, timeout=40)
    assert ended["Status"]["StatusCode"] == "Failed"
    (step,) = ended["StepRuns"]
    assert step["Status"]["StatusCode"] == "Failed"
    assert "ran longer than 2 seconds" in step["Status"]["StatusDetail"]


@pytest.fixture
def two_hosts(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealApp, HostProcess]]:
    with real_app(storage, tmp_path_factory.mktemp("scaleout"), "scaleout") as app:
        second = HostProcess(ROOT, env=app.env, args=["--shutdown-grace", "5"]).start()
        try:
            yield app, second
        finally:
            second.stop(timeout=20)


def test_two_hosts_of_one_app_share_a_wide_fan_out(two_hosts: tuple[RealApp, HostProcess], tmp_path: Path) -> None:
    app, second = two_hosts
    ws = app.owner()
    (tmp_path / "nap.py").write_text("import time\ntime.sleep(4)\nprint('rested')\n")
    # More steps than one host takes at once (two batches of 16 in flight), each long enough that
    # the other host polls the queue meanwhile.
    steps = [
        PythonScriptStep(name=f"s{i:02d}", script_name="nap.py", source_directory=str(tmp_path), allow_reuse=False)
        for i in range(40)
    ]
    run_id = _submit(app, Pipeline(ws, steps=steps), {"ExperimentName": "e2e-scaleout"})
    ended = _ended(app, run_id, timeout=120)
    assert ended["Status"]["StatusCode"] == "Finished", ended["Status"]
    assert {s["Attempt"] for s in ended["StepRuns"]} == {1}  # each step ran once
    ran = [host.log.count(f"Execution {run_id}:") for host in (app.host, second)]
    assert sum(ran) == 40 and min(ran) > 0, ran
