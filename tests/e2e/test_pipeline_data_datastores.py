"""PipelineData on an S3 datastore through the SDK, on the real app: ``PipelineData("model",
datastore=s3)`` is written to the bucket (moto's server over HTTP) and read from there by the next step."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from amlpipe.core import Datastore
from amlpipe.core.workspace import Workspace
from amlpipe.pipeline.core import Pipeline, PipelineData
from amlpipe.pipeline.steps import PythonScriptStep
from shared.orchestration.files import output_prefix
from tests.e2e.conftest import PipelinesApp
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

TRAIN = """\
import os, sys
model = sys.argv[1]
os.makedirs(model, exist_ok=True)
open(os.path.join(model, "weights.txt"), "w").write("w=42")
"""

SCORE = """\
import os, sys
print("score read:", open(os.path.join(sys.argv[1], "weights.txt")).read())
"""


def test_a_pipeline_data_on_an_s3_datastore_is_written_to_the_bucket_and_read_from_it_by_the_next_step(
    pipelines_app: PipelinesApp, moto_s3: MotoS3, tmp_path: Path
) -> None:
    ws = Workspace.from_config(pipelines_app.config_path)
    u = uuid.uuid4().hex[:8]
    bucket = moto_s3.create_bucket("e2e-outputs")
    lake = Datastore.register_s3(
        ws, f"outputs_{u}", bucket, endpoint_url=moto_s3.endpoint_url,
        access_key_id=TEST_KEY_ID, secret_access_key=TEST_SECRET,
    )  # fmt: skip
    source = tmp_path / "scripts"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    (source / "score.py").write_text(SCORE)
    model = PipelineData("model", datastore=lake)
    train = PythonScriptStep(
        name="train", script_name="train.py", arguments=[model], outputs=[model], source_directory=str(source)
    )
    score = PythonScriptStep(
        name="score", script_name="score.py", arguments=[model], inputs=[model], source_directory=str(source)
    )
    published = Pipeline(ws, steps=[train, score]).publish(name=f"e2e-outputs-{u}", description="s3 outputs")
    response = requests.post(
        published.endpoint, json={"ExperimentName": "e2e-outputs"}, headers=pipelines_app.headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    run_id = str(response.json()["Id"])

    body = pipelines_app.wait_run_ended(run_id)
    assert body["Status"]["StatusCode"] == "Finished", (body["Status"], pipelines_app.step_log(run_id, "train"))
    assert "score read: w=42" in pipelines_app.step_log(run_id, "score")
    s3 = moto_s3.client()
    try:
        written = s3.get_object(Bucket=bucket, Key=output_prefix(run_id, "model") + "weights.txt")
        assert written["Body"].read() == b"w=42" and written["Metadata"] == {"amlpipe_run_id": run_id}
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert [item["Key"] for item in listed] == [output_prefix(run_id, "model") + "weights.txt"]  # no marker
    finally:
        s3.close()
