"""Run routes: submit (published pipeline, endpoint, ad-hoc graph), run queries, cancel, experiments,
and what step scripts recorded: metrics, artifacts and logs (``shared.pipelines.metrics``, ``artifacts``, ``logs``)."""

from __future__ import annotations

import azure.functions as func

from functions import _edge as edge
from functions.pipelines import parse_top, registry
from shared.auth import Principal, Role
from shared.errors import BadRequestError
from shared.pipelines import artifacts as run_artifacts
from shared.pipelines import default_stores
from shared.pipelines import logs as run_logs
from shared.pipelines import metrics as run_metrics
from shared.pipelines import submit as flows
from shared.pipelines.runs import PipelineRun

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_MAX_TOP = 1000


def _run(run: PipelineRun) -> func.HttpResponse:
    return edge.json_response(run.to_json())


@bp.route(route="PipelineRuns/PipelineSubmit/{pipeline_id}", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def submit_published_pipeline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``PublishedPipeline.endpoint``: start a run; 200 with the PipelineRunEntity (``Id``)."""
    body = edge.read_json_object(req)
    if "ParentRunId" not in body and req.params.get("parentRunId"):
        body["ParentRunId"] = req.params["parentRunId"]
    return _run(flows.submit_published(default_stores(), req.route_params["pipeline_id"], body, registry()))


@bp.route(route="PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}/{version?}", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def submit_endpoint_by_id(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Run a pipeline endpoint's version (``/{version}`` or ``?pipelineVersion=``; default version if none)."""
    stores = default_stores()
    endpoint = stores.endpoints.get_endpoint(req.route_params["endpoint_id"])
    version = req.route_params.get("version") or req.params.get("pipelineVersion")
    return _run(flows.submit_endpoint(stores, endpoint, version, edge.read_json_object(req), registry()))


@bp.route(route="PipelineRuns/PipelineEndpointSubmit/Name", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def submit_endpoint_by_name(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Run the endpoint ``?name=`` (optionally ``&pipelineVersion=``)."""
    name = req.params.get("name")
    if not name:
        raise BadRequestError("Query parameter name is required: the pipeline endpoint's name.", target="name")
    stores = default_stores()
    endpoint = stores.endpoints.get_endpoint_by_name(name)
    version = req.params.get("pipelineVersion")
    return _run(flows.submit_endpoint(stores, endpoint, version, edge.read_json_object(req), registry()))


@bp.route(route="PipelineRuns/Submit", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def submit_graph(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Run an unpublished graph (``Experiment.submit(pipeline)``): the submit keys plus ``Graph``."""
    body = edge.read_json_object(req, limit=4 * edge.MAX_JSON_BODY)
    return _run(flows.submit_graph(default_stores(), body, registry()))


@bp.route(route="PipelineRuns", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_runs(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Runs newest first, by exactly one of ``experimentName``, ``pipelineId``, ``scheduleId``; ``top``."""
    filters = {"experimentName": "experiment", "pipelineId": "pipeline", "scheduleId": "schedule"}
    given = [(filters[k], v) for k, v in req.params.items() if k in filters and v]
    if len(given) != 1:
        raise BadRequestError(
            "Give exactly one of the query parameters experimentName, pipelineId or scheduleId.",
            target="experimentName",
        )
    top = parse_top(req, default=100, maximum=_MAX_TOP)
    by, value = given[0]
    runs = default_stores().runs.list_runs(by, value, top=top)
    return edge.json_response({"value": [r.to_json() for r in runs]})


@bp.route(route="PipelineRuns/{run_id}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_run(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """A run (PipelineRunEntity) with its ``StepRuns``."""
    stores = default_stores()
    run = stores.runs.get_run(req.route_params["run_id"])
    body = run.to_json()
    body["StepRuns"] = [s.to_json() for s in stores.runs.list_steps(run.id)]
    return edge.json_response(body)


@bp.route(route="PipelineRuns/{run_id}/graph", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_run_graph(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """The graph document the run runs (its ``GraphId``): steps, their inputs, outputs and parameters."""
    stores = default_stores()
    run = stores.runs.get_run(req.route_params["run_id"])
    return edge.json_response(stores.graphs.get_graph(run.graph_id).to_wire())


@bp.route(route="PipelineRuns/{run_id}/cancel", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def cancel_run(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Cancel a run (idempotent): NotStarted → Canceled; Running → cancel requested."""
    return _run(default_stores().runs.cancel_run(req.route_params["run_id"]))


@bp.route(route="PipelineRuns/{run_id}/metrics", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_run_metrics(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """The run's own metrics (``run.parent.log``) and each started step's, in azureml's shapes."""
    stores = default_stores()
    return edge.json_response(run_metrics.run_metrics(stores.runs, stores.metrics, req.route_params["run_id"]))


@bp.route(route="PipelineRuns/{run_id}/steps/{step}/metrics", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_step_metrics(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """One step's metrics: its current attempt's, or ``?attempt=N``'s."""
    stores = default_stores()
    run_id, step = req.route_params["run_id"], req.route_params["step"]
    return edge.json_response(
        run_metrics.step_metrics(stores.runs, stores.metrics, run_id, step, req.params.get("attempt"))
    )


@bp.route(route="PipelineRuns/{run_id}/steps/{step}/artifacts", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_step_artifacts(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """One step's artifacts (name, size): its current attempt's, or ``?attempt=N``'s."""
    stores = default_stores()
    run_id, step = req.route_params["run_id"], req.route_params["step"]
    return edge.json_response(
        run_artifacts.step_artifacts(stores.runs, stores.artifacts, run_id, step, req.params.get("attempt"))
    )


@bp.route(route="PipelineRuns/{run_id}/steps/{step}/artifacts/sas", methods=["POST"], auth_level=ANON)
@edge.api(Role.READER)
def step_artifact_urls(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{"names": [...]}``: a one-hour read-only SAS URL per artifact, to download it."""
    stores = default_stores()
    run_id, step = req.route_params["run_id"], req.route_params["step"]
    body = run_artifacts.artifact_urls(
        stores.runs, stores.artifacts, run_id, step, req.params.get("attempt"), edge.read_json_object(req)
    )
    return edge.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@bp.route(route="PipelineRuns/{run_id}/steps/{step}/logs", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_step_log(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """What a step printed, from byte ``?offset=`` on (at most 1 MiB): the current attempt's, or ``?attempt=N``'s."""
    stores = default_stores()
    run_id, step = req.route_params["run_id"], req.route_params["step"]
    return edge.json_response(
        run_logs.step_log(stores.runs, stores.logs, run_id, step, req.params.get("attempt"), req.params.get("offset"))
    )


@bp.route(route="experiments", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_experiments(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response({"value": [e.to_json() for e in default_stores().experiments.list_experiments()]})


@bp.route(route="experiments/{name}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_experiment(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response(default_stores().experiments.get_experiment(req.route_params["name"]).to_json())
