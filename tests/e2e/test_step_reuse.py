"""Step reuse on the real app: a resubmitted published pipeline is reused end to end, over REST and
through the SDK, and a changed parameter re-runs only the step that reads it, saying why."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.core.workspace import Workspace
from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineParameter, PipelineRun
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

PREP = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--out")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "rows.csv"), "w").write("a,b\\n1,2\\n")
"""

TRAIN = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--in", dest="src")
p.add_argument("--reg")
a = p.parse_args()
print("trained on", open(os.path.join(a.src, "rows.csv")).read().splitlines()[1], "reg", a.reg)
"""


def _run(app: PipelinesApp, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Submit over REST and wait for the end; the final body and seconds from submit to the end."""
    token = app.token()
    started = time.perf_counter()
    response = requests.post(endpoint, json=body, headers=app.headers(token), timeout=30)
    assert response.status_code == 200, response.text
    url = f"{app.url}/api/PipelineRuns/{response.json()['Id']}"

    def ended() -> dict[str, Any] | None:
        found: dict[str, Any] = requests.get(url, headers=app.headers(token), timeout=30).json()
        return found if found["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") else None

    found = wait_for(ended, timeout=90, interval=0.05, what="the run to end")
    return found, time.perf_counter() - started


def test_a_resubmitted_pipeline_is_reused_and_a_changed_parameter_reruns_only_its_step(
    pipelines_app: PipelinesApp, tmp_path: Path
) -> None:
    ws = Workspace.from_config(pipelines_app.config_path)
    unique = uuid.uuid4().hex  # no other test's execution shares these fingerprints
    for name, text in (("prep", PREP), ("train", TRAIN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.py").write_text(f"# {unique}\n{text}")
    prepped = PipelineData("prepped", datastore=ws.get_default_datastore())
    prep = PythonScriptStep(
        name="prep",
        script_name="prep.py",
        source_directory=str(tmp_path / "prep"),
        outputs=[prepped],
        arguments=["--out", prepped],
    )
    train = PythonScriptStep(
        name="train",
        script_name="train.py",
        source_directory=str(tmp_path / "train"),
        inputs=[prepped],
        arguments=["--in", prepped, "--reg", PipelineParameter("reg", default_value=0.1)],
    )
    published = Pipeline(ws, steps=[prep, train]).publish(name=f"reuse-{unique[:8]}", version="1")
    body = {"ExperimentName": f"e2e-reuse-{unique[:8]}"}

    first, _ = _run(pipelines_app, published.endpoint, body)
    assert first["Status"]["StatusCode"] == "Finished", first["Status"]
    assert not any(s["IsReused"] for s in first["StepRuns"])

    second, seconds = _run(pipelines_app, published.endpoint, body)
    assert second["Status"]["StatusCode"] == "Finished", second["Status"]
    assert second["Status"]["StatusDetail"] == "All 2 steps finished (2 reused)."
    for step in second["StepRuns"]:
        assert step["IsReused"] and step["ReusedPipelineRunId"] == first["Id"]
        assert step["ReusedRunId"] == f"{first['Id']}:{step['Name']}:1"
        assert step["ReuseReason"].startswith(f"Reused step {step['Name']!r} of run {first['Id']}")
        assert len(step["ReuseFingerprint"]) == 64 and "snapshot" in step["ReuseFingerprintParts"]
    assert seconds < 10, seconds  # no step message, no compute: bounded by the host's queue polling

    third, _ = _run(pipelines_app, published.endpoint, {**body, "ParameterAssignments": {"reg": 0.5}})
    assert third["Status"]["StatusCode"] == "Finished", third["Status"]
    run = PipelineRun.get(ws, third["Id"])
    steps = {s.name: s for s in run.get_steps()}
    assert steps["prep"].is_reused and steps["prep"].reused_pipeline_run_id == first["Id"]
    details = steps["prep"].get_details()
    assert details["properties"]["azureml.isreused"] == "true"
    assert details["properties"]["azureml.reusedpipelinerunid"] == first["Id"]
    assert not steps["train"].is_reused
    assert steps["train"].reuse_reason == f"Not reused: the arguments changed since run {first['Id']}."
    assert steps["train"].get_details()["reuse"]["reason"] == steps["train"].reuse_reason
