"""What publishing and submitting share: snapshot upload, the wire graph, the submit body."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import requests

from amlpipe._client import api_path
from amlpipe.data.datapath import DataPath
from amlpipe.exceptions import ServiceException
from shared.graph import model as m
from shared.graph.snapshot import build_snapshot

if TYPE_CHECKING:
    from amlpipe._client import ServiceClient
    from amlpipe.pipeline.core._pipeline import Pipeline

log = logging.getLogger("amlpipe.pipeline")
UPLOAD_TIMEOUT = 600.0


def graph_with_snapshots(pipeline: Pipeline, client: ServiceClient) -> m.PipelineGraph:
    """The pipeline's wire graph, each step's source folder uploaded (once per distinct folder)."""
    graph, sources = pipeline.to_graph()
    refs: dict[str, m.SnapshotRef] = {}
    steps: list[m.Step] = []
    for step in graph.steps:
        folder = sources.get(step.name)
        if folder is None:
            steps.append(step)
            continue
        if folder not in refs:
            refs[folder] = upload_snapshot(folder, client)
        steps.append(step.model_copy(update={"snapshot": refs[folder]}))
    return graph.model_copy(update={"steps": tuple(steps)})


def upload_snapshot(folder: str, client: ServiceClient) -> m.SnapshotRef:
    """Zip ``folder`` and upload it unless the service already has those bytes.

    The zip goes to the staging blob the service names (a write-only SAS URL), then the service is
    asked to commit it: it checks the bytes and entries and stores them under their sha256.
    """
    snapshot = build_snapshot(folder)
    ticket = client.post(api_path("snapshots", snapshot.sha256))
    if not ticket.get("exists"):
        log.info("Uploading snapshot %s of %s (%d bytes).", snapshot.sha256[:12], folder, snapshot.size_bytes)
        try:
            response = requests.put(
                ticket["upload_url"],
                data=snapshot.data,
                headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/zip"},
                timeout=UPLOAD_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ServiceException(f"Uploading the snapshot of {folder} failed: {exc}", status_code=0) from exc
        if response.status_code >= 300:
            raise ServiceException(
                f"Uploading the snapshot of {folder} failed: {response.status_code} {response.reason}",
                status_code=response.status_code,
            )
        client.post(api_path("snapshots", snapshot.sha256, "commit"), {"StagingId": ticket["staging_id"]})
    return snapshot.ref()


def parameter_assignments(pipeline_parameters: dict[str, Any] | None) -> dict[str, Any]:
    """``ParameterAssignments`` and ``DataPathAssignments`` as azureml's SDK sends them (values as strings)."""
    scalars: dict[str, str] = {}
    paths: dict[str, dict[str, str]] = {}
    for name, value in (pipeline_parameters or {}).items():
        if isinstance(value, str | int | float | bool):
            scalars[name] = str(value)
        elif isinstance(value, DataPath):
            paths[name] = {"DataStoreName": value.datastore_name, "RelativePath": value.path_on_datastore}
        else:
            raise Exception(f"Invalid parameter type {type(value)}")  # noqa: TRY002 - azureml's exception
    body: dict[str, Any] = {"ParameterAssignments": scalars}
    if paths:
        body["DataPathAssignments"] = paths
    return body


def submit_body(
    experiment_name: str,
    pipeline_parameters: dict[str, Any] | None,
    *,
    continue_on_step_failure: bool | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a submit request."""
    body: dict[str, Any] = {"ExperimentName": experiment_name, "RunSource": "SDK", "RunType": "SDK"}
    body.update(parameter_assignments(pipeline_parameters))
    if continue_on_step_failure is not None:
        body["ContinueRunOnStepFailure"] = bool(continue_on_step_failure)
    if parent_run_id is not None:
        body["ParentRunId"] = parent_run_id
    if tags:
        body["tags"] = dict(tags)
    if description is not None:
        body["Description"] = description
    return body
