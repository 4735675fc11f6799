"""DataTransferStep on the real app, through the SDK: data lands from an S3 bucket (moto's server over
HTTP) into PipelineData, a script step reads ``get_output()``, and its result is exported back to S3."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from amlpipe.core import Datastore
from amlpipe.core.workspace import Workspace
from amlpipe.pipeline.core import Pipeline, PipelineData
from amlpipe.pipeline.steps import DataTransferStep, PythonScriptStep
from tests.e2e.conftest import PipelinesApp
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

TRAIN = """\
import os, sys
landed, model = sys.argv[1], sys.argv[2]
rows = sorted(open(os.path.join(top, n)).read().strip() for top, _, names in os.walk(landed) for n in names)
os.makedirs(model, exist_ok=True)
open(os.path.join(model, "model.txt"), "w").write("+".join(rows))
print("train saw:", rows)
"""


def test_data_lands_from_s3_feeds_a_script_through_get_output_and_goes_back_to_s3(
    pipelines_app: PipelinesApp, moto_s3: MotoS3, tmp_path: Path
) -> None:
    ws = Workspace.from_config(pipelines_app.config_path)
    u = uuid.uuid4().hex[:8]
    bucket = moto_s3.create_bucket("e2e-transfer")
    s3 = moto_s3.client()
    s3.put_object(Bucket=bucket, Key=f"landing/{u}/a.csv", Body=b"1,2")
    s3.put_object(Bucket=bucket, Key=f"landing/{u}/more/b.csv", Body=b"3,4")
    lake = Datastore.register_s3(
        ws, f"lake_{u}", bucket, endpoint_url=moto_s3.endpoint_url,
        access_key_id=TEST_KEY_ID, secret_access_key=TEST_SECRET,
    )  # fmt: skip

    source = tmp_path / "scripts"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    land = DataTransferStep(
        name="land",
        source_data_reference=lake.path(f"landing/{u}", data_reference_name="landing"),
        destination_data_reference=PipelineData("landed", datastore=ws.get_default_datastore()),
        source_reference_type="directory",
    )
    model = PipelineData("model", datastore=ws.get_default_datastore())
    train = PythonScriptStep(
        name="train",
        script_name="train.py",
        arguments=[land.get_output(), model],
        inputs=[land.get_output()],
        outputs=[model],
        source_directory=str(source),
    )
    export = DataTransferStep(
        name="export",
        source_data_reference=model,
        destination_data_reference=lake.path(f"models/{u}"),
        destination_reference_type="directory",
    )
    published = Pipeline(ws, steps=[land, train, export]).publish(name=f"e2e-transfer-{u}", description="s3")
    response = requests.post(
        published.endpoint, json={"ExperimentName": "e2e-transfer"}, headers=pipelines_app.headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    run_id = str(response.json()["Id"])

    body = pipelines_app.wait_run_ended(run_id)
    assert body["Status"]["StatusCode"] == "Finished", (body["Status"], pipelines_app.step_log(run_id, "land"))
    assert "train saw: ['1,2', '3,4']" in pipelines_app.step_log(run_id, "train")
    assert "Copied 2 object(s)" in pipelines_app.step_log(run_id, "land")
    exported = s3.get_object(Bucket=bucket, Key=f"models/{u}/model.txt")
    assert exported["Body"].read() == b"1,2+3,4" and exported["Metadata"] == {"amlpipe_run_id": run_id}
    s3.close()
