"""The DP-100 module 6 pipeline, end to end on amlpipe.

Prepare data → train with a ``reg_rate`` parameter → register the model; then publish the pipeline and
start it over REST with ``ExperimentName`` and ``ParameterAssignments``, as the module does. The code is
the module's, with ``azureml.`` replaced by ``amlpipe.``.

Run it against a running app (``make start`` in another terminal)::

    .venv/bin/python examples/dp100/pipeline.py

It reads ``.amlpipe/config.json`` (written by ``make start``) from the current folder or a parent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import requests

from amlpipe._config import find_config
from amlpipe.core import Dataset, Experiment, Workspace
from amlpipe.core.authentication import ServicePrincipalAuthentication
from amlpipe.core.compute import AmlCompute, ComputeTarget
from amlpipe.core.model import Model
from amlpipe.core.runconfig import RunConfiguration
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineRun
from amlpipe.pipeline.core.graph import PipelineParameter
from amlpipe.pipeline.steps import EstimatorStep, PythonScriptStep
from amlpipe.train.estimator import Estimator

HERE = Path(__file__).resolve().parent
SCRIPTS = str(HERE / "scripts")
DATA = HERE / "data" / "diabetes.csv"


def prerequisites(ws: Workspace) -> None:
    """What the module assumes exists: the raw dataset and the ``aml-cluster`` compute target."""
    datastore = ws.get_default_datastore()
    datastore.upload_files([str(DATA)], target_path="diabetes-data/", overwrite=True, show_progress=False)
    Dataset.Tabular.from_delimited_files(path=(datastore, "diabetes-data/*.csv")).register(
        ws, "raw_dataset", description="diabetes data", create_new_version=True
    )
    if "aml-cluster" not in ws.compute_targets:
        ComputeTarget.create(ws, "aml-cluster", AmlCompute.provisioning_configuration(max_nodes=2))


def build_pipeline(ws: Workspace) -> Pipeline:
    """The module's two steps, wired by the ``prepped`` PipelineData and the ``reg_rate`` parameter."""
    raw_ds = Dataset.get_by_name(ws, "raw_dataset")
    data_store = ws.get_default_datastore()
    prepped_data = PipelineData("prepped", datastore=data_store)
    run_config = RunConfiguration()

    step1 = PythonScriptStep(
        name="prepare data",
        source_directory=SCRIPTS,
        script_name="prep_diabetes.py",
        compute_target="aml-cluster",
        runconfig=run_config,
        inputs=[raw_ds.as_named_input("raw_data")],
        outputs=[prepped_data],
        arguments=["--folder", prepped_data],
    )

    reg_param = PipelineParameter(name="reg_rate", default_value=0.01)
    sk_estimator = Estimator(source_directory=SCRIPTS, entry_script="train_diabetes.py", compute_target="aml-cluster")
    step2 = EstimatorStep(
        name="train model",
        estimator=sk_estimator,
        compute_target="aml-cluster",
        inputs=[prepped_data],
        estimator_entry_script_arguments=["--folder", prepped_data, "--reg", reg_param],
    )
    return Pipeline(workspace=ws, steps=[step1, step2])


def show(run: PipelineRun) -> dict[str, Any]:
    """Print each step's status, reuse and metrics; the metrics by step name."""
    metrics: dict[str, Any] = {}
    for step in run.get_steps():
        metrics[step.name] = step.get_metrics()
        reused = f" (reused from run {step.reused_pipeline_run_id})" if step.is_reused else ""
        print(f"  {step.name}: {step.get_status()}{reused} {metrics[step.name]}")
    return metrics


def service_principal(config_path: Path) -> ServicePrincipalAuthentication:
    """The service principal of a config file: the module calls the REST endpoint with its token."""
    config = json.loads(config_path.read_text())
    return ServicePrincipalAuthentication(
        tenant_id=config["tenant_id"],
        service_principal_id=config["service_principal_id"],
        service_principal_password=config["service_principal_password"],
        endpoint=config["endpoint"],
    )


def main(config_path: Path, *, timeout: float = 600) -> dict[str, Any]:
    """Run the module on the workspace of ``config_path``; a summary (for the test that runs this example)."""
    auth = service_principal(config_path)
    ws = Workspace.from_config(config_path, auth=auth)
    prerequisites(ws)
    train_pipeline = build_pipeline(ws)

    # Create an experiment and run the pipeline
    experiment = Experiment(workspace=ws, name="training-pipeline")
    pipeline_run = experiment.submit(train_pipeline)
    pipeline_run.wait_for_completion(show_output=True, timeout_seconds=timeout)
    first = show(pipeline_run)

    # Publish it, and start it over REST with a new regularisation rate.
    published_pipeline = train_pipeline.publish(
        name="training_pipeline", description="Model training pipeline", version="1.0"
    )
    auth_header = auth.get_authentication_header()
    response = requests.post(
        published_pipeline.endpoint,
        headers=auth_header,
        json={"ExperimentName": "run_training_pipeline", "ParameterAssignments": {"reg_rate": 0.1}},
        timeout=60,
    )
    response.raise_for_status()
    run_id = response.json()["Id"]
    print("REST run:", run_id)
    rest_run = PipelineRun(Experiment(ws, "run_training_pipeline"), run_id)
    rest_run.wait_for_completion(show_output=True, timeout_seconds=timeout)
    second = show(rest_run)

    models = Model.list(ws, name="diabetes_model")
    for model in models:
        print(f"  model {model.name} version {model.version}: {model.properties}")
    return {
        "runs": [pipeline_run.id, run_id],
        "statuses": [pipeline_run.get_status(), rest_run.get_status()],
        "metrics": [first, second],
        "reused": {s.name: s.is_reused for s in rest_run.get_steps()},
        "training_runs": [run.find_step_run("train model")[0].id for run in (pipeline_run, rest_run)],
        "model_versions": sorted(m.version for m in models),
    }


if __name__ == "__main__":
    found = find_config()
    if found is None:
        sys.exit("No .amlpipe/config.json here or in a parent folder: run `make start` first.")
    summary = main(found)
    print(json.dumps(summary, indent=2))
    sys.exit(0 if summary["statuses"] == ["Finished", "Finished"] else 1)
