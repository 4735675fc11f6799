"""Schedule routes: create (for a published pipeline or a pipeline endpoint), get, list, update,
enable/disable, and the runs a schedule started (azureml's ``/PipelineRuns/Schedule/{id}[/Last]``).

Firing (the timer) and datastore watching are not here yet: these routes keep the schedules they fire.
"""

from __future__ import annotations

import azure.functions as func

from functions import _edge as edge
from functions.openapi import Route
from functions.pipelines import flag, parse_top
from shared import storage
from shared.auth import Principal, Role
from shared.pipelines import default_stores
from shared.registry import DatastoreStore
from shared.registry import default_registry as workspace_registry
from shared.schedules import flows
from shared.schedules import wire as w
from shared.schedules.firing import Planner
from shared.schedules.store import Schedule, ScheduleStatus

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_MAX_TOP = 1000


def datastores() -> DatastoreStore:
    return workspace_registry().datastores


def _schedule(schedule: Schedule) -> func.HttpResponse:
    return edge.json_response(schedule.to_json())


def _planned(schedule: Schedule) -> func.HttpResponse:
    """The answer for a schedule just created, enabled or re-timed: planned at once, so a due time
    before the planner's next tick (a schedule without a start time is due at once) is on time."""
    fires = Planner.of(default_stores(), storage.clients().queues).plan_schedule(schedule)
    if fires:
        schedule = default_stores().schedules.get_schedule(schedule.id)  # NextDue moved on
    return _schedule(schedule)


@bp.route(route="schedules", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def create_schedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``Schedule.create`` / ``create_for_pipeline_endpoint``: the new schedule (Active unless ``Status``)."""
    return _planned(flows.create_schedule(default_stores(), edge.read_json_object(req), datastores()))


@bp.route(route="schedules", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_schedules(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``Schedule.list``: ``?active_only=`` (default true; ignored with ``pipelineId``), ``?pipelineId=``,
    ``?pipelineEndpointId=``."""
    found = flows.list_schedules(
        default_stores(),
        active_only=flag(req, "active_only", default=True),
        pipeline_id=req.params.get("pipelineId") or None,
        pipeline_endpoint_id=req.params.get("pipelineEndpointId") or None,
    )
    return edge.json_response({"value": [s.to_json() for s in found]})


@bp.route(route="schedules/{schedule_id}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_schedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return _schedule(default_stores().schedules.get_schedule(req.route_params["schedule_id"]))


@bp.route(route="schedules/{schedule_id}", methods=["PATCH", "PUT"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def update_schedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``Schedule.update``: the keys given change, the others stay; the type cannot change."""
    body = edge.read_json_object(req)
    return _planned(flows.update_schedule(default_stores(), req.route_params["schedule_id"], body, datastores()))


@bp.route(route="schedules/{schedule_id}/enable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def enable_schedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Set the schedule Active (idempotent); its pipeline or endpoint must be Active."""
    schedule_id = req.route_params["schedule_id"]
    return _planned(flows.set_schedule_status(default_stores(), schedule_id, ScheduleStatus.ACTIVE))


@bp.route(route="schedules/{schedule_id}/disable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def disable_schedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Set the schedule Disabled (idempotent): it fires no more."""
    schedule_id = req.route_params["schedule_id"]
    return _schedule(flows.set_schedule_status(default_stores(), schedule_id, ScheduleStatus.DISABLED))


@bp.route(route="PipelineRuns/Schedule/{schedule_id}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_schedule_runs(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``Schedule.get_pipeline_runs``: the runs the schedule started, newest first (``?top=``, default 100)."""
    top = parse_top(req, default=100, maximum=_MAX_TOP)
    runs = flows.schedule_runs(default_stores(), req.route_params["schedule_id"], top=top)
    return edge.json_response({"value": [r.to_json() for r in runs]})


@bp.route(route="PipelineRuns/Schedule/{schedule_id}/Last", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def last_schedule_run(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``Schedule.get_last_pipeline_run``: the newest run, or 204 with no body when it has started none."""
    run = flows.last_schedule_run(default_stores(), req.route_params["schedule_id"])
    if run is None:
        return func.HttpResponse(status_code=204)
    return edge.json_response(run.to_json())


OPENAPI_ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/schedules", "Create a schedule for a published pipeline (PipelineId) or a pipeline endpoint"
          " (PipelineEndpointId): a Recurrence or a DataStoreTriggerInfo.", "Contributor",
          request=w.CreateScheduleBody, response=w.ScheduleEntity, tag="schedules"),
    Route("GET", "/api/schedules", "List schedules.", "Reader", response=w.ScheduleList, tag="schedules",
          query=(("active_only", "true (default) lists Active schedules only; ignored with pipelineId"),
                 ("pipelineId", "the schedules of a published pipeline"),
                 ("pipelineEndpointId", "the schedules of a pipeline endpoint"))),
    Route("GET", "/api/schedules/{schedule_id}", "Get a schedule (with NextDue, LastFired, LastRunId, LastError).",
          "Reader", response=w.ScheduleEntity, tag="schedules"),
    Route("PATCH", "/api/schedules/{schedule_id}", "Update a schedule (its type cannot change).", "Contributor",
          request=w.UpdateScheduleBody, response=w.ScheduleEntity, tag="schedules"),
    Route("PUT", "/api/schedules/{schedule_id}", "Update a schedule (as PATCH: keys left out stay as they are).",
          "Contributor", request=w.UpdateScheduleBody, response=w.ScheduleEntity, tag="schedules"),
    Route("POST", "/api/schedules/{schedule_id}/enable", "Set a schedule Active.", "Contributor",
          response=w.ScheduleEntity, tag="schedules"),
    Route("POST", "/api/schedules/{schedule_id}/disable", "Set a schedule Disabled.", "Contributor",
          response=w.ScheduleEntity, tag="schedules"),
    Route("GET", "/api/PipelineRuns/Schedule/{schedule_id}", "The runs a schedule started, newest first.", "Reader",
          response="PipelineRunList", tag="runs", query=(("top", "at most this many (1-1000, default 100)"),)),
    Route("GET", "/api/PipelineRuns/Schedule/{schedule_id}/Last",
          "The newest run a schedule started (204 when none).", "Reader", response="PipelineRunEntity", tag="runs"),
)  # fmt: skip
