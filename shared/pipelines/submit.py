"""Submitting runs: of a published pipeline, of a pipeline endpoint (a version), or of an ad-hoc graph.

Every path checks the whole request first (pipeline status, body, parameters, datastores, parent
run), then writes: the graph blob (ad-hoc only), the experiment if new, the run with its NotStarted
step rows, the run's index rows, and last the ``{"run_id": ...}`` message for the orchestrator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import BadRequestError
from shared.graph import PipelineGraph, Registry, check_output_datastores
from shared.pipelines._storage import utcnow
from shared.pipelines.assignments import Submission, check_assigned_datastores, parse_submission, resolve_parameters
from shared.pipelines.endpoints import PipelineEndpoint
from shared.pipelines.ids import is_guid, new_id
from shared.pipelines.publish import check_graph_document
from shared.pipelines.published import PipelineStatus, PublishedPipeline
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun
from shared.pipelines.stores import Stores


def submit_published(
    stores: Stores,
    pipeline_id: str,
    body: Mapping[str, Any],
    registry: Registry | None,
    *,
    endpoint_id: str | None = None,
    schedule_id: str | None = None,
    run_id: str | None = None,
) -> PipelineRun:
    """Start a run of published pipeline ``pipeline_id`` with azureml's submit body.

    ``run_id`` fixes the new run's id (a schedule's fire derives it from the due time, so a repeated
    submit of the same fire finds the run it made instead of making a second one).

    Raises:
        NotFoundError: no such pipeline. BadRequestError: it is not Active, or the body is wrong.
    """
    pipeline = stores.published.get_published_pipeline(pipeline_id)
    _require_active(pipeline)
    submission = parse_submission(body)
    graph = stores.graphs.get_graph(pipeline.graph_id)
    continue_on = pipeline.continue_on_step_failure
    if submission.continue_on_step_failure is not None:
        continue_on = submission.continue_on_step_failure
    return _start(
        stores,
        graph,
        pipeline.graph_id,
        submission,
        registry,
        continue_on_step_failure=continue_on,
        pipeline_id=pipeline.id,
        endpoint_id=endpoint_id,
        schedule_id=schedule_id,
        run_id=run_id,
    )


def submit_endpoint(
    stores: Stores,
    endpoint: PipelineEndpoint,
    version: str | None,
    body: Mapping[str, Any],
    registry: Registry | None,
    *,
    schedule_id: str | None = None,
    run_id: str | None = None,
) -> PipelineRun:
    """Start a run of ``endpoint``'s ``version`` (its default version when None).

    Raises:
        BadRequestError: the endpoint is not Active (code ``PipelineEndpointDisabled``), or it has no
            such version, or the body is wrong.
    """
    if endpoint.status != PipelineStatus.ACTIVE:
        raise BadRequestError(
            f"Pipeline endpoint {endpoint.id} ({endpoint.name!r}) is {endpoint.status.value} and cannot be "
            "submitted; enable it first (PipelineEndpoint.enable(), or reactivate(name) if it was archived).",
            target="id",
            code="PipelineEndpointDisabled",
        )
    pipeline_id = endpoint.pipeline_for(version)
    return submit_published(
        stores, pipeline_id, body, registry, endpoint_id=endpoint.id, schedule_id=schedule_id, run_id=run_id
    )


def submit_graph(stores: Stores, body: Mapping[str, Any], registry: Registry | None) -> PipelineRun:
    """Start a run of the graph in ``body["Graph"]`` (``Experiment.submit(pipeline)``)."""
    submission = parse_submission(body, extra_keys=("Graph",))
    if "Graph" not in body:
        raise BadRequestError("Graph is required: the pipeline graph document to run.", target="Graph")
    graph = check_graph_document(stores, body["Graph"], registry)
    return _start(
        stores,
        graph,
        None,
        submission,
        registry,
        continue_on_step_failure=bool(submission.continue_on_step_failure),
        run_type="SDK" if submission.run_source == "SDK" else submission.run_type,
    )


def _require_active(pipeline: PublishedPipeline) -> None:
    if pipeline.status != PipelineStatus.ACTIVE:
        raise BadRequestError(
            f"Published pipeline {pipeline.id} ({pipeline.name!r}) is {pipeline.status.value} and cannot be "
            "submitted; enable it first (PublishedPipeline.enable()).",
            target="id",
            code="PipelineDisabled",
        )


def _start(
    stores: Stores,
    graph: PipelineGraph,
    graph_id: str | None,
    submission: Submission,
    registry: Registry | None,
    *,
    continue_on_step_failure: bool,
    pipeline_id: str | None = None,
    endpoint_id: str | None = None,
    schedule_id: str | None = None,
    run_type: str | None = None,
    run_id: str | None = None,
) -> PipelineRun:
    scalars, paths = resolve_parameters(graph, submission.parameter_assignments, submission.data_path_assignments)
    if registry is not None:
        check_assigned_datastores(paths, submission.data_path_assignments, registry.has_datastore)
        if graph_id is not None:  # a stored graph: its output datastores may have changed since it was checked
            check_output_datastores(graph, registry)
    if submission.parent_run_id is not None:
        if not is_guid(submission.parent_run_id):
            raise BadRequestError("ParentRunId must be the id of a pipeline run.", target="ParentRunId")
        parent = stores.runs.get_run(submission.parent_run_id)
        if parent.experiment_name != submission.experiment_name:
            raise BadRequestError(
                f"The parent run belongs to experiment {parent.experiment_name!r}, not "
                f"{submission.experiment_name!r}; a parent run must be in the same experiment.",
                target="ParentRunId",
            )
    # -- every check passed: write ------------------------------------------------------------
    gid = graph_id or stores.graphs.put_graph(graph)
    stores.experiments.ensure_experiment(submission.experiment_name)
    run = PipelineRun(
        id=run_id or new_id(),
        experiment_name=submission.experiment_name,
        graph_id=gid,
        status=RunStatus.NOT_STARTED,
        creation_time=utcnow(),
        parameters=scalars,
        data_paths=paths,
        total_run_steps=len(graph.steps),
        continue_on_step_failure=continue_on_step_failure,
        regenerate_outputs=submission.regenerate_outputs,
        pipeline_id=pipeline_id,
        pipeline_endpoint_id=endpoint_id,
        schedule_id=schedule_id,
        parent_run_id=submission.parent_run_id,
        description=submission.description,
        run_source=submission.run_source,
        run_type=run_type or submission.run_type,
        tags=submission.tags,
        properties=submission.properties,
    )
    steps = [StepRun(run_id=run.id, name=step.name) for step in graph.steps]
    stored = stores.runs.create_run(run, steps)
    stores.queue.enqueue_run(stored.id)
    return stored
