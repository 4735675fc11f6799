"""What the schedule routes do: check a request against the workspace, then write.

Everything a request could get wrong -- its body (``bodies``), the pipeline or endpoint (it must
exist and be Active), the parameters it assigns (declared by the pipeline, of the right type, as a
submit checks them), the datastore it watches (registered, Azure Blob) and the DataPath parameter it
sets -- is checked before the one write, so a rejected request leaves nothing behind.

A pipeline or endpoint with active schedules cannot be disabled until they are
(:func:`require_no_active_schedules`, a 409 naming them), as azureml's docs ask users to do by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.graph import PipelineGraph
from shared.pipelines._storage import utcnow
from shared.pipelines.assignments import check_assigned_datastores, resolve_parameters
from shared.pipelines.ids import new_id
from shared.pipelines.published import PipelineStatus
from shared.pipelines.runs import PipelineRun
from shared.pipelines.stores import Stores
from shared.registry.datastore_spec import AMAZON_S3, AZURE_BLOB
from shared.registry.datastores import DatastoreRecord
from shared.schedules import bodies
from shared.schedules.store import Schedule, ScheduleStatus

#: The most schedules a 409 names one by one (the rest are counted).
_NAMED = 10


class Datastores(Protocol):
    """What the flows ask about datastores (``shared.registry.DatastoreStore`` fits)."""

    def find(self, name: str) -> DatastoreRecord | None:
        """Datastore ``name`` (case-insensitive), or None."""
        ...


def create_schedule(stores: Stores, body: Mapping[str, Any], datastores: Datastores) -> Schedule:
    """A new schedule from a create body (for a published pipeline or a pipeline endpoint).

    Raises:
        BadRequestError: the body breaks a rule, the pipeline/endpoint is disabled, a parameter is not
            declared or a datastore is unknown or not Azure Blob. NotFoundError: no such pipeline/endpoint.
    """
    request = bodies.parse_create_body(body)
    graph = _target_graph(stores, request.pipeline_id, request.pipeline_endpoint_id)
    now = utcnow()
    schedule = request.to_schedule(new_id(), now)
    schedule = replace(schedule, datastore=_checked_datastore(schedule, graph, datastores))
    _check_parameters(schedule, graph, datastores)
    return stores.schedules.create_schedule(schedule)


def update_schedule(stores: Stores, schedule_id: str, body: Mapping[str, Any], datastores: Datastores) -> Schedule:
    """Apply an update body (``Schedule.update``); the schedule's type cannot change.

    Raises:
        NotFoundError: no such schedule. BadRequestError: a rule is broken (nothing is written).
    """
    changes = bodies.parse_update_body(body)
    current = stores.schedules.get_schedule(schedule_id)
    graph = _target_graph(stores, current.pipeline_id, current.pipeline_endpoint_id, require_active=False)
    enabling = changes.status == ScheduleStatus.ACTIVE and current.status != ScheduleStatus.ACTIVE

    def change(schedule: Schedule) -> Schedule:
        updated = bodies.apply_changes(schedule, changes, utcnow())
        if updated == schedule:
            return schedule
        updated = replace(updated, datastore=_checked_datastore(updated, graph, datastores))
        _check_parameters(updated, graph, datastores)
        return updated

    if enabling:
        _target_graph(stores, current.pipeline_id, current.pipeline_endpoint_id)  # refuses a disabled target
    return stores.schedules.update_schedule(schedule_id, change)


def set_schedule_status(stores: Stores, schedule_id: str, status: ScheduleStatus) -> Schedule:
    """``enable()`` / ``disable()`` (idempotent). Enabling needs the pipeline or endpoint Active.

    Raises:
        NotFoundError: no such schedule. BadRequestError: enabling a schedule of a disabled target.
    """
    current = stores.schedules.get_schedule(schedule_id)
    if status == ScheduleStatus.ACTIVE and current.status != ScheduleStatus.ACTIVE:
        _target_graph(stores, current.pipeline_id, current.pipeline_endpoint_id)
    changes = bodies.ScheduleChanges(status=status)
    return stores.schedules.update_schedule(schedule_id, lambda s: bodies.apply_changes(s, changes, utcnow()))


def list_schedules(
    stores: Stores, *, active_only: bool, pipeline_id: str | None, pipeline_endpoint_id: str | None
) -> list[Schedule]:
    """azureml's ``Schedule.list``: ``pipeline_id`` wins over ``pipeline_endpoint_id``, and with either
    given ``active_only`` is ignored (all of that target's schedules are listed)."""
    if pipeline_id is not None:
        return stores.schedules.list_schedules(active_only=False, pipeline_id=pipeline_id, pipeline_endpoint_id=None)
    if pipeline_endpoint_id is not None:
        return stores.schedules.list_schedules(
            active_only=False, pipeline_id=None, pipeline_endpoint_id=pipeline_endpoint_id
        )
    return stores.schedules.list_schedules(active_only=active_only, pipeline_id=None, pipeline_endpoint_id=None)


def schedule_runs(stores: Stores, schedule_id: str, *, top: int = 100) -> list[PipelineRun]:
    """The runs a schedule started, newest first (the ``amlpiperunsbyschedule`` index).

    Raises:
        NotFoundError: no such schedule.
    """
    schedule = stores.schedules.get_schedule(schedule_id)
    return stores.runs.list_runs("schedule", schedule.id, top=top)


def last_schedule_run(stores: Stores, schedule_id: str) -> PipelineRun | None:
    """The newest run a schedule started, or None."""
    runs = schedule_runs(stores, schedule_id, top=1)
    return runs[0] if runs else None


def require_no_active_schedules(
    stores: Stores, *, pipeline_id: str | None = None, pipeline_endpoint_id: str | None = None
) -> None:
    """Refuse to disable a pipeline or endpoint that active schedules still run.

    Raises:
        ConflictError: some are active (409 ``ActiveSchedules``), naming them.
    """
    active = stores.schedules.list_schedules(
        active_only=True, pipeline_id=pipeline_id, pipeline_endpoint_id=pipeline_endpoint_id
    )
    if pipeline_id is not None:
        # A schedule of an endpoint runs the endpoint's default version: that pipeline counts too.
        active += _endpoint_schedules_running(stores, pipeline_id)
    if not active:
        return
    what = (
        f"Published pipeline {pipeline_id}" if pipeline_id is not None else f"Pipeline endpoint {pipeline_endpoint_id}"
    )
    named = ", ".join(f"{s.id} ({s.name!r})" for s in active[:_NAMED])
    more = f" and {len(active) - _NAMED} more" if len(active) > _NAMED else ""
    raise ConflictError(
        f"{what} has {len(active)} active schedule(s): {named}{more}. Disable them first "
        "(Schedule.disable(), or POST /api/schedules/{id}/disable), then disable it.",
        target="id",
        code="ActiveSchedules",
    )


def _endpoint_schedules_running(stores: Stores, pipeline_id: str) -> list[Schedule]:
    """The active endpoint schedules whose endpoint's default version is ``pipeline_id``."""
    found: list[Schedule] = []
    defaults: dict[str, str | None] = {}
    for schedule in stores.schedules.list_schedules(active_only=True):
        endpoint_id = schedule.pipeline_endpoint_id
        if endpoint_id is None:
            continue
        if endpoint_id not in defaults:
            try:
                defaults[endpoint_id] = stores.endpoints.get_endpoint(endpoint_id).pipeline_for(None)
            except (NotFoundError, BadRequestError):
                defaults[endpoint_id] = None
        if defaults[endpoint_id] == pipeline_id:
            found.append(schedule)
    return found


def _target_graph(
    stores: Stores, pipeline_id: str | None, endpoint_id: str | None, *, require_active: bool = True
) -> PipelineGraph:
    """The graph a schedule would run: its pipeline's, or its endpoint's default version's.

    Raises:
        NotFoundError: no such pipeline/endpoint. BadRequestError: it is not Active (``require_active``).
    """
    target = "PipelineId" if endpoint_id is None else "PipelineEndpointId"
    try:
        if endpoint_id is not None:
            endpoint = stores.endpoints.get_endpoint(endpoint_id)
            if require_active and endpoint.status != PipelineStatus.ACTIVE:
                raise BadRequestError(
                    f"Pipeline endpoint {endpoint.id} ({endpoint.name!r}) is {endpoint.status.value}; enable it "
                    "before scheduling it.",
                    target=target,
                    code="PipelineEndpointDisabled",
                )
            pipeline_id = endpoint.pipeline_for(None)
        assert pipeline_id is not None
        pipeline = stores.published.get_published_pipeline(pipeline_id)
    except NotFoundError as exc:
        raise NotFoundError(exc.message, target=target) from exc
    if require_active and pipeline.status != PipelineStatus.ACTIVE:
        raise BadRequestError(
            f"Published pipeline {pipeline.id} ({pipeline.name!r}) is {pipeline.status.value}; enable it before "
            "scheduling it.",
            target=target,
            code="PipelineDisabled",
        )
    return stores.graphs.get_graph(pipeline.graph_id)


def _checked_datastore(schedule: Schedule, graph: PipelineGraph, datastores: Datastores) -> Any:
    """The schedule's datastore trigger with the datastore's registered name, after azureml's checks."""
    trigger = schedule.datastore
    if trigger is None:
        return None
    where = bodies.TRIGGER
    record = datastores.find(trigger.datastore_name)
    if record is None:
        raise BadRequestError(
            f"{where}.DataStoreName names datastore {trigger.datastore_name!r}, which is not registered.",
            target=f"{where}.DataStoreName",
            code="UnknownDatastore",
        )
    if record.datastore_type not in (AZURE_BLOB, AMAZON_S3):  # azureml: Blob only; S3 is ours (polled)
        raise BadRequestError(bodies.NOT_BLOB, target=f"{where}.DataStoreName")
    if record.datastore_type == AZURE_BLOB and record.credential_type == "Sas":
        raise BadRequestError(
            f"Datastore {record.name!r} was registered with a SAS token; a watched datastore is listed with its "
            "account key (azureml's rule too). Register it with account_key to watch it.",
            target=f"{where}.DataStoreName",
            code="DatastoreCannotBeWatched",
        )
    name = trigger.data_path_parameter_name
    if name is not None:
        declared = {p.name: p for p in graph.parameters}
        if name not in declared or declared[name].type != "datapath":
            paths = sorted(p for p, d in declared.items() if d.type == "datapath")
            raise BadRequestError(
                f"{where}.DataPathParameterName {name[:200]!r} is not a DataPath parameter of the pipeline; its "
                f"DataPath parameters: {paths}.",
                target=f"{where}.DataPathParameterName",
                code="UndeclaredParameter",
            )
    return replace(trigger, datastore_name=record.name)


def _check_parameters(schedule: Schedule, graph: PipelineGraph, datastores: Datastores) -> None:
    """The schedule's assignments as a submit would check them: declared, well typed, datastores known."""
    _, paths = resolve_parameters(graph, schedule.pipeline_parameters, schedule.data_path_assignments)
    check_assigned_datastores(paths, schedule.data_path_assignments, lambda name: datastores.find(name) is not None)
