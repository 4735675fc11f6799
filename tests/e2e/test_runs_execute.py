"""Runs execute on the real app: the orchestrator queues steps, the worker runs their scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from amlpipe.core.workspace import Workspace
from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineParameter
from amlpipe.pipeline.steps import PythonScriptStep
from shared.orchestration.files import LOG_CONTAINER, log_blob_name
from shared.storage import StorageClients
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

PRODUCE = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--out")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "data.txt"), "w") as f:
    f.write("payload-from-step-one")
print("produced")
"""

CONSUME = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--in", dest="src")
p.add_argument("--greeting")
a = p.parse_args()
print("read:", open(os.path.join(a.src, "data.txt")).read())
print("greeting:", a.greeting, os.environ["AML_PARAMETER_greeting"])
"""


@pytest.fixture(scope="module")
def ws(pipelines_app: PipelinesApp) -> Workspace:
    return Workspace.from_config(pipelines_app.config_path)


def _submit(app: PipelinesApp, pipeline: Pipeline, name: str, body: dict[str, Any]) -> str:
    published = pipeline.publish(name=name, description="run execution e2e", version="1")
    response = requests.post(published.endpoint, json=body, headers=app.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["Id"])


def _finished_run(app: PipelinesApp, run_id: str) -> dict[str, Any]:
    token = app.token()

    def terminal() -> dict[str, Any] | None:
        response = requests.get(f"{app.url}/api/PipelineRuns/{run_id}", headers=app.headers(token), timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") else None

    return wait_for(terminal, timeout=90, interval=0.2, what=f"run {run_id} to end")


def _log(app: PipelinesApp, run_id: str, step: str) -> str:
    """The step's log so far; empty until the worker has created it (the step row turns Running first)."""
    with StorageClients.from_settings(app.env) as clients:
        blob = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, step, 1))
        try:
            return blob.download_blob().readall().decode("utf-8")
        except ResourceNotFoundError:
            return ""


def test_a_two_step_pipeline_passes_data_and_parameters_and_finishes(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "produce.py").write_text(PRODUCE)
    (tmp_path / "consume.py").write_text(CONSUME)
    data = PipelineData("handover", datastore=ws.get_default_datastore())
    produce = PythonScriptStep(
        name="produce",
        script_name="produce.py",
        source_directory=str(tmp_path),
        outputs=[data],
        arguments=["--out", data],
    )
    consume = PythonScriptStep(
        name="consume",
        script_name="consume.py",
        source_directory=str(tmp_path),
        inputs=[data],
        arguments=["--in", data, "--greeting", PipelineParameter("greeting", "hello")],
    )
    run_id = _submit(
        pipelines_app,
        Pipeline(ws, steps=[produce, consume]),
        "e2e-execute",
        {"ExperimentName": "e2e-execute", "ParameterAssignments": {"greeting": "bonjour"}},
    )
    body = _finished_run(pipelines_app, run_id)
    assert body["Status"]["StatusCode"] == "Finished", body["Status"]
    assert body["Status"]["EndTime"] is not None and body["Status"]["StatusDetail"] == "All 2 steps finished."
    steps = {s["Name"]: s for s in body["StepRuns"]}
    assert {name: s["Status"]["StatusCode"] for name, s in steps.items()} == {
        "produce": "Finished",
        "consume": "Finished",
    }
    for s in steps.values():
        assert s["Status"]["StartTime"] is not None and s["Status"]["EndTime"] is not None
    assert steps["produce"]["Status"]["EndTime"] <= steps["consume"]["Status"]["StartTime"]
    assert "produced" in _log(pipelines_app, run_id, "produce")
    text = _log(pipelines_app, run_id, "consume")
    assert "read: payload-from-step-one" in text and "greeting: bonjour bonjour" in text


def test_a_failing_step_fails_the_run_and_cancels_its_dependents(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "boom.py").write_text("import sys\nprint('about to fail')\nsys.exit('kaboom: bad input')\n")
    (tmp_path / "after.py").write_text("print('never')\n")
    boom = PythonScriptStep(name="boom", script_name="boom.py", source_directory=str(tmp_path))
    after = PythonScriptStep(name="after", script_name="after.py", source_directory=str(tmp_path))
    after.run_after(boom)
    run_id = _submit(pipelines_app, Pipeline(ws, steps=[after]), "e2e-execute-fail", {"ExperimentName": "e2e-execute"})
    body = _finished_run(pipelines_app, run_id)
    assert body["Status"]["StatusCode"] == "Failed" and body["Status"]["EndTime"] is not None
    assert "boom" in body["Status"]["StatusDetail"]
    steps = {s["Name"]: s["Status"]["StatusCode"] for s in body["StepRuns"]}
    assert steps == {"boom": "Failed", "after": "Canceled"}
    assert "about to fail" in _log(pipelines_app, run_id, "boom")


def test_cancel_kills_a_running_step_and_cancels_the_run(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('woke')\n")
    slow = PythonScriptStep(name="slow", script_name="slow.py", source_directory=str(tmp_path))
    run_id = _submit(pipelines_app, Pipeline(ws, steps=[slow]), "e2e-execute-cancel", {"ExperimentName": "e2e-execute"})
    token = pipelines_app.token()
    url = f"{pipelines_app.url}/api/PipelineRuns/{run_id}"

    def step_status() -> str:
        response = requests.get(url, headers=pipelines_app.headers(token), timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["StepRuns"][0]["Status"]["StatusCode"])

    wait_for(lambda: step_status() == "Running", timeout=30, interval=0.2, what="the step to run")
    wait_for(lambda: "started" in _log(pipelines_app, run_id, "slow"), timeout=30, interval=0.2, what="its output")
    canceled = requests.post(f"{url}/cancel", headers=pipelines_app.headers(token), timeout=30)
    assert canceled.status_code == 200, canceled.text

    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = requests.get(url, headers=pipelines_app.headers(token), timeout=30).json()
        return body if body["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") else None

    body = wait_for(ended, timeout=45, interval=0.2, what="the run to end well before the step's 60 s")
    assert body["Status"]["StatusCode"] == "Canceled", body["Status"]
    assert [s["Status"]["StatusCode"] for s in body["StepRuns"]] == ["Canceled"]
    assert "woke" not in _log(pipelines_app, run_id, "slow")
