"""Step inputs on the real app: a pipeline reads registered datasets through a command step and a
script step, and each script sees the data (downloaded, passed as a path, listed in its run context)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from amlpipe.core import Dataset
from amlpipe.core.workspace import Workspace
from amlpipe.pipeline.core import Pipeline, PipelineData
from amlpipe.pipeline.steps import CommandStep, PythonScriptStep
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

PREP = """\
import os, sys
source, out = sys.argv[1], sys.argv[2]
names = sorted(os.path.relpath(os.path.join(top, n), source) for top, _, files in os.walk(source) for n in files)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write(",".join(names))
print("prep saw:", names, open(os.path.join(source, "notes", "readme.txt")).read())
"""

TRAIN = """\
import json, os, sys
context = json.load(open(os.environ["AMLPIPE_RUN_CONTEXT"]))
table = context["inputs"]["table"]
rows = [line for path in table["tabular"]["files"] for line in open(path).read().splitlines()[1:]]
summary = open(os.path.join(sys.argv[1], "summary.txt")).read()
print("train saw rows:", rows, "separator", table["tabular"]["options"]["separator"], "summary", summary)
"""


def test_a_pipeline_with_dataset_inputs_and_a_command_step_finishes_and_its_scripts_see_the_data(
    pipelines_app: PipelinesApp, tmp_path: Path
) -> None:
    ws = Workspace.from_config(pipelines_app.config_path)
    u = uuid.uuid4().hex[:8]
    data = tmp_path / "data"
    (data / "notes").mkdir(parents=True)
    (data / "notes" / "readme.txt").write_text("hello from the datastore")
    (data / "a.csv").write_text("x;y\n1;2\n")
    (data / "b.csv").write_text("x;y\n3;4\n")
    store = ws.get_default_datastore()
    store.upload(str(data), target_path=f"e2e-inputs/{u}", overwrite=True, show_progress=False)
    files = Dataset.File.from_files(path=[(store, f"e2e-inputs/{u}/**")]).register(ws, f"files_{u}")
    table = Dataset.Tabular.from_delimited_files(path=[(store, f"e2e-inputs/{u}/*.csv")], separator=";")
    table = table.register(ws, f"table_{u}")

    source = tmp_path / "scripts"
    source.mkdir()
    (source / "prep.py").write_text(PREP)
    (source / "train.py").write_text(TRAIN)
    summary = PipelineData("summary", datastore=store)
    prep = CommandStep(
        name="prep",
        command=["python", "prep.py", files.as_named_input("raw").as_download(), summary],
        outputs=[summary],
        source_directory=str(source),
    )
    train = PythonScriptStep(
        name="train",
        script_name="train.py",
        arguments=[summary],
        inputs=[summary, table.as_named_input("table")],
        source_directory=str(source),
    )
    published = Pipeline(ws, steps=[prep, train]).publish(name=f"e2e-inputs-{u}", description="inputs", version="1")
    response = requests.post(
        published.endpoint, json={"ExperimentName": "e2e-inputs"}, headers=pipelines_app.headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    run_id = str(response.json()["Id"])

    body = pipelines_app.wait_run_ended(run_id)
    assert body["Status"]["StatusCode"] == "Finished", (body["Status"], pipelines_app.step_log(run_id, "prep"))
    assert "prep saw: ['a.csv', 'b.csv', 'notes/readme.txt'] hello from the datastore" in pipelines_app.step_log(
        run_id, "prep"
    )
    trained = pipelines_app.step_log(run_id, "train")
    assert "train saw rows: ['1;2', '3;4'] separator ; summary a.csv,b.csv,notes/readme.txt" in trained
