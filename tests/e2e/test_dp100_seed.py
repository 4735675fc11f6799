"""The DP-100 module 6 code, with ``azureml.`` replaced by ``amlpipe.``, against the real app.

Each call below is the module's own (seed/dp100-module6-pipelines.md), in its order; only the
prerequisites the module assumes (a compute target 'aml-cluster', a dataset 'raw_dataset' and the
scripts folder) are set up first. Here every call must be accepted, validated and stored, and the REST
submissions must answer 200 with a run Id; ``examples/dp100`` (``test_dp100_example.py``) runs the
module's pipeline to the end with real scripts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from amlpipe.core.authentication import ServicePrincipalAuthentication
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

DATA_PREP = """\
import argparse, os
from amlpipe.core import Run  # noqa: F401  (the module's scripts use Run.get_context())
parser = argparse.ArgumentParser()
parser.add_argument('--folder', type=str, dest='folder')
args = parser.parse_args()
output_folder = args.folder
os.makedirs(output_folder, exist_ok=True)
"""

TRAIN = """\
import argparse
parser = argparse.ArgumentParser()
parser.add_argument('--folder', type=str, dest='folder')
parser.add_argument('--reg', type=float, dest='reg')
args = parser.parse_args()
"""


def test_the_dp100_module_code_runs_with_imports_renamed(
    pipelines_app: PipelinesApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module's working folder: config.json found from here, and its scripts/ folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".amlpipe").mkdir()
    (tmp_path / ".amlpipe" / "config.json").write_text(pipelines_app.config_path.read_text())
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "data_prep.py").write_text(DATA_PREP)
    (tmp_path / "scripts" / "train.py").write_text(TRAIN)
    (tmp_path / "raw.csv").write_text("col1,col2,col3,col4\n1,2,3,4\n")

    from amlpipe.core import Dataset, Experiment, Workspace
    from amlpipe.core.compute import AmlCompute, ComputeTarget
    from amlpipe.core.runconfig import RunConfiguration

    ws = Workspace.from_config()

    # Prerequisites the module takes for granted.
    ComputeTarget.create(ws, "aml-cluster", AmlCompute.provisioning_configuration(max_nodes=4))
    ws.get_default_datastore().upload_files(["raw.csv"], target_path="dp100/raw", overwrite=True)
    Dataset.Tabular.from_delimited_files(path=(ws.get_default_datastore(), "dp100/raw/raw.csv")).register(
        ws, "raw_dataset", create_new_version=True
    )
    run_config = RunConfiguration()

    # --- the module, imports renamed -------------------------------------------------------------
    from amlpipe.pipeline.core import Pipeline, PipelineData
    from amlpipe.pipeline.core.graph import PipelineParameter
    from amlpipe.pipeline.steps import EstimatorStep, PythonScriptStep
    from amlpipe.train.estimator import Estimator

    # Get a dataset for the initial data
    raw_ds = Dataset.get_by_name(ws, "raw_dataset")

    # Define a PipelineData object to pass data between steps
    data_store = ws.get_default_datastore()
    prepped_data = PipelineData("prepped", datastore=data_store)

    step1 = PythonScriptStep(
        name="prepare data",
        source_directory="scripts",
        script_name="data_prep.py",
        compute_target="aml-cluster",
        runconfig=run_config,
        inputs=[raw_ds.as_named_input("raw_data")],
        outputs=[prepped_data],
        arguments=["--folder", prepped_data],
        # Disable step reuse
        allow_reuse=False,
    )

    reg_param = PipelineParameter(name="reg_rate", default_value=0.01)
    sk_estimator = Estimator(source_directory="scripts", entry_script="train.py", compute_target="aml-cluster")
    step2 = EstimatorStep(
        name="train model",
        estimator=sk_estimator,
        compute_target="aml-cluster",
        inputs=[prepped_data],
        estimator_entry_script_arguments=["--folder", prepped_data, "--reg", reg_param],
    )

    # Construct the pipeline
    train_pipeline = Pipeline(workspace=ws, steps=[step1, step2])
    assert train_pipeline.validate() == []

    # Create an experiment and run the pipeline
    experiment = Experiment(workspace=ws, name="training-pipeline")
    pipeline_run = experiment.submit(train_pipeline)
    assert pipeline_run.id
    pipeline_run = experiment.submit(train_pipeline, regenerate_outputs=True)

    published_pipeline = train_pipeline.publish(
        name="training_pipeline", description="Model training pipeline", version="1.0"
    )

    # Or Publish on Successful run
    # Get the most recent run of the pipeline
    pipeline_experiment = ws.experiments.get("training-pipeline")
    run = list(pipeline_experiment.get_runs())[0]
    assert run.id == pipeline_run.id

    # Publish the pipeline from the run
    published_pipeline = run.publish_pipeline(
        name="training_pipeline", description="Model training pipeline", version="1.0"
    )

    rest_endpoint = published_pipeline.endpoint
    config = pipelines_app.config
    auth = ServicePrincipalAuthentication(
        tenant_id=config["tenant_id"],
        service_principal_id=config["service_principal_id"],
        service_principal_password=config["service_principal_password"],
    )
    auth_header = auth.get_authentication_header()

    response = requests.post(rest_endpoint, headers=auth_header, json={"ExperimentName": "run_training_pipeline"})
    run_id = response.json()["Id"]
    print(run_id)
    assert response.status_code == 200 and run_id

    response = requests.post(
        rest_endpoint,
        headers=auth_header,
        json={"ExperimentName": "run_training_pipeline", "ParameterAssignments": {"reg_rate": 0.1}},
    )
    # --- end of the module --------------------------------------------------------------------------
    assert response.status_code == 200, response.text
    assert response.json()["ParameterAssignments"] == {"reg_rate": "0.1"}

    # What azureml silently ignored is a clear 400 here: a parameter the pipeline does not declare.
    wrong = requests.post(
        rest_endpoint,
        headers=auth_header,
        json={"ExperimentName": "run_training_pipeline", "ParameterAssignments": {"reg_rat": 0.1}},
    )
    assert wrong.status_code == 400
    assert "reg_rat" in wrong.json()["Error"]["Message"] and "reg_rate" in wrong.json()["Error"]["Message"]
