"""Metrics and artifacts of a run on the real app: the REST routes and the SDK's get_metrics, get_file_names,
download_file. The run executes for real; its metric rows and artifact blobs are written with the stores
(what the worker's RunJournal writes), since a script's journal is not yet drained by the worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from amlpipe.core import Experiment, Workspace
from amlpipe.exceptions import UserErrorException
from amlpipe.pipeline.core import Pipeline, PipelineRun
from amlpipe.pipeline.steps import PythonScriptStep
from shared.pipelines.artifacts import ArtifactStore
from shared.pipelines.metrics import MetricRow, MetricStore
from shared.storage import StorageClients
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

STEP = "train model"  # a space: the step name is one URL segment, percent-encoded


@dataclass
class Recorded:
    run_id: str
    app: PipelinesApp
    reader: Workspace

    def get(self, path: str, token: str | None = "reader", **params: str) -> requests.Response:
        headers = {} if token is None else self.reader._auth.get_authentication_header()
        return requests.get(f"{self.app.url}/api/{path}", params=params, headers=headers, timeout=30)

    def post(self, path: str, body: Any) -> requests.Response:
        headers = self.reader._auth.get_authentication_header()
        return requests.post(f"{self.app.url}/api/{path}", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def recorded(pipelines_app: PipelinesApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A finished one-step run, then what its script would have recorded, written through the stores."""
    ws = pipelines_app.owner()
    source = tmp_path_factory.mktemp("history-src")
    (source / "train.py").write_text("print('training')\n")
    step = PythonScriptStep(name=STEP, script_name="train.py", source_directory=str(source))
    run = Experiment(ws, "e2e-run-history").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False, timeout_seconds=90) == "Finished"
    with StorageClients.from_settings(pipelines_app.env) as clients:
        metrics = MetricStore(clients.tables, settings=pipelines_app.env)
        rows = [("acc", "scalar", 0.5), ("acc", "scalar", 0.75), ("rows", "scalar", 12),
                ("losses", "list", [0.3, 0.2]), ("Y over X", "row", {"x": 1, "y": 0.4}),
                ("Y over X", "row", {"x": 2, "y": 0.5})]  # fmt: skip
        metrics.upsert_metrics(run.id, [MetricRow(STEP, 1, i, n, t, v) for i, (n, t, v) in enumerate(rows)])
        metrics.upsert_metrics(run.id, [MetricRow(STEP, 1, 6, "best_auc", "scalar", 0.9, target="parent")])
        folder = tmp_path_factory.mktemp("history-artifacts")
        (folder / "model.pkl").write_bytes(b"pickled model")
        (folder / "data.csv").write_bytes(b"a,b\n1,2\n")
        ArtifactStore(clients.blobs).upload_artifacts(
            run.id, STEP, 1, {"outputs/model.pkl": folder / "model.pkl", "outputs/sub/data.csv": folder / "data.csv"}
        )
    yield Recorded(run.id, pipelines_app, pipelines_app.workspace_as("Reader"))


STEP_METRICS = {"acc": [0.5, 0.75], "rows": 12, "losses": [0.3, 0.2], "Y over X": {"x": [1, 2], "y": [0.4, 0.5]}}


def error_of(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["Error"]
    assert set(body) >= {"Code", "Message", "Details"}
    return body


def test_the_metric_routes_answer_in_azureml_shapes(recorded: Recorded) -> None:
    step_path = f"PipelineRuns/{recorded.run_id}/steps/{quote(STEP)}/metrics"
    response = recorded.get(step_path)
    assert response.status_code == 200, response.text
    execution = {"runId": f"{recorded.run_id}:{STEP}:1", "pipelineRunId": recorded.run_id, "step": STEP,
                 "attempt": 1, "isReused": False}  # fmt: skip
    assert response.json() == {**execution, "metrics": STEP_METRICS}
    whole = recorded.get(f"PipelineRuns/{recorded.run_id}/metrics").json()
    assert whole["metrics"] == {"best_auc": 0.9}
    assert whole["steps"] == [{**execution, "name": STEP, "metrics": STEP_METRICS}]
    assert recorded.get(step_path, attempt="1").json()["metrics"] == STEP_METRICS


def test_the_sdk_get_metrics_of_a_pipeline_run_and_its_step(recorded: Recorded) -> None:
    run = PipelineRun.get(recorded.reader, recorded.run_id)
    assert run.get_metrics() == {"best_auc": 0.9}
    assert run.get_metrics(recursive=True) == {recorded.run_id: {"best_auc": 0.9},
                                               f"{recorded.run_id}:{STEP}:1": STEP_METRICS}  # fmt: skip
    (step,) = run.find_step_run(STEP)
    assert step.get_metrics() == STEP_METRICS
    assert step.get_metrics("acc") == {"acc": [0.5, 0.75]}


def test_artifacts_are_listed_and_downloaded_with_the_sdk(recorded: Recorded, tmp_path: Path) -> None:
    (step,) = PipelineRun.get(recorded.reader, recorded.run_id).find_step_run(STEP)
    assert step.get_file_names() == ["outputs/model.pkl", "outputs/sub/data.csv"]
    step.download_file("outputs/model.pkl", str(tmp_path / "m.pkl"))
    assert (tmp_path / "m.pkl").read_bytes() == b"pickled model"
    (tmp_path / "into").mkdir()
    step.download_file("outputs/sub/data.csv", str(tmp_path / "into"))
    assert (tmp_path / "into" / "data.csv").read_bytes() == b"a,b\n1,2\n"
    step.download_files(prefix="outputs/sub", output_directory=str(tmp_path / "all"))
    assert (tmp_path / "all" / "outputs" / "sub" / "data.csv").exists()
    with pytest.raises(UserErrorException, match="no artifact 'outputs/nope.pkl'"):
        step.download_file("outputs/nope.pkl", str(tmp_path / "x"))


def test_the_artifact_routes_list_and_grant_read_urls(recorded: Recorded) -> None:
    base = f"PipelineRuns/{recorded.run_id}/steps/{quote(STEP)}/artifacts"
    listed = recorded.get(base).json()
    assert [(a["name"], a["size"]) for a in listed["value"]] == [("outputs/model.pkl", 13), ("outputs/sub/data.csv", 8)]
    granted = recorded.post(f"{base}/sas", {"names": ["outputs/model.pkl"]})
    assert granted.status_code == 200 and granted.headers["Cache-Control"] == "no-store"
    (item,) = granted.json()["value"]
    assert requests.get(item["url"], timeout=30).content == b"pickled model"


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "target"),
    [
        ("GET", "PipelineRuns/{unknown}/metrics", {}, None, 404, "run_id"),
        ("GET", "PipelineRuns/{run}/steps/nope/metrics", {}, None, 404, "step"),
        ("GET", "PipelineRuns/{run}/steps/" + "s" * 2000 + "/artifacts", {}, None, 404, "step"),
        ("GET", "PipelineRuns/{run}/steps/{step}/metrics", {"attempt": "x"}, None, 400, "attempt"),
        ("GET", "PipelineRuns/{run}/steps/{step}/metrics", {"attempt": "2"}, None, 404, "attempt"),
        ("GET", "PipelineRuns/{run}/steps/{step}/artifacts", {"attempt": "0"}, None, 400, "attempt"),
        ("POST", "PipelineRuns/{run}/steps/{step}/artifacts/sas", {}, {"names": ["../x"]}, 400, "names[0]"),
        ("POST", "PipelineRuns/{run}/steps/{step}/artifacts/sas", {}, {"names": []}, 400, "names"),
        ("POST", "PipelineRuns/{run}/steps/{step}/artifacts/sas", {}, {"nam": ["a"]}, 400, "nam"),
        ("POST", "PipelineRuns/{run}/steps/{step}/artifacts/sas", {}, {"names": ["outputs/a", "no"]}, 404, "names[0]"),
    ],
)
def test_bad_requests_are_4xx_azureml_errors_naming_the_field(
    recorded: Recorded, method: str, path: str, params: dict[str, str], body: Any, status: int, target: str
) -> None:
    url = path.format(run=recorded.run_id, step=quote(STEP), unknown="00000000-0000-4000-8000-000000000000")
    response = recorded.get(url, **params) if method == "GET" else recorded.post(url, body)
    assert response.status_code == status, response.text
    assert error_of(response)["Target"] == target


def test_the_routes_need_a_token(recorded: Recorded) -> None:
    response = recorded.get(f"PipelineRuns/{recorded.run_id}/metrics", token=None)
    assert response.status_code == 401
