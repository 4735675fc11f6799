"""``Schedule``: run a published pipeline or pipeline endpoint on a recurrence or when a datastore changes.

azureml.pipeline.core.schedule's ``Schedule``, over ``/api/schedules``. Beyond azureml: the
visibility properties ``next_due``, ``last_fired``, ``last_run_id`` and ``last_error``, what it
submits (``experiment_name``, ``pipeline_parameters``), and the ``recursive`` and
``debounce_seconds`` options of datastore schedules.
"""

from __future__ import annotations

import builtins
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.core.experiment import Experiment
from amlpipe.pipeline.core._submission import parameter_assignments

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._run import PipelineRun
    from amlpipe.pipeline.core._schedule_recurrence import ScheduleRecurrence

log = logging.getLogger("amlpipe.pipeline")

RECURRENCE = "Recurrence"
DATASTORE = "DataStore"


class Schedule:
    """A schedule that submits a published pipeline (or a pipeline endpoint's default version).

    A ``Recurrence`` schedule runs on a :class:`ScheduleRecurrence`; a ``DataStore`` schedule runs when
    blobs are added or changed under a folder of an Azure Blob datastore. Get one with
    :meth:`create`, :meth:`create_for_pipeline_endpoint`, :meth:`get` or :meth:`list`.

    Schedules are active as soon as they are created: there is no provisioning to wait for, so the
    ``wait_for_provisioning`` and ``wait_timeout`` arguments are accepted (azureml's signatures) and
    ignored.
    """

    def __init__(self, workspace: Workspace, entity: dict[str, Any]) -> None:
        self._workspace = workspace
        self._entity = entity

    # ---- properties (azureml's, then ours) ---------------------------------------------------------

    id = property(lambda self: self._entity["Id"], doc="The schedule id.")
    name = property(lambda self: self._entity["Name"], doc="The name.")
    description = property(lambda self: self._entity.get("Description"), doc="The description.")
    pipeline_id = property(lambda self: self._entity.get("PipelineId"), doc="The published pipeline it submits.")
    pipeline_endpoint_id = property(
        lambda self: self._entity.get("PipelineEndpointId"), doc="The pipeline endpoint it submits."
    )
    status = property(lambda self: self._entity["Status"], doc="Active or Disabled.")
    continue_on_step_failure = property(
        lambda self: self._entity.get("ContinueRunOnStepFailure"),
        doc="Overrides the pipeline's continue_on_step_failure for the runs it starts (None: the pipeline's).",
    )
    experiment_name = property(
        lambda self: self._entity.get("ExperimentName"), doc="Ours: the experiment its runs are submitted to."
    )
    last_run_id = property(lambda self: self._entity.get("LastRunId"), doc="The id of the last run it started.")
    last_error = property(lambda self: self._entity.get("LastError"), doc="Why its last fire failed, if it did.")

    @property
    def pipeline_parameters(self) -> dict[str, str]:
        """Ours: the pipeline parameters its runs are submitted with (as the service stores them: strings)."""
        return {str(k): str(v) for k, v in (self._entity.get("ParameterAssignments") or {}).items()}

    @property
    def _schedule_type(self) -> str:
        return str(self._entity["ScheduleType"])

    @property
    def recurrence(self) -> ScheduleRecurrence | None:
        """The :class:`ScheduleRecurrence` of a Recurrence schedule (None for a DataStore schedule)."""
        wire = self._entity.get("Recurrence")
        if wire is None:
            return None
        from amlpipe.pipeline.core._schedule_recurrence import ScheduleRecurrence

        return ScheduleRecurrence._from_wire(wire)

    def _trigger(self, key: str) -> Any:
        info = self._entity.get("DataStoreTriggerInfo")
        return None if info is None else info.get(key)

    @property
    def datastore_name(self) -> str | None:
        """The datastore a DataStore schedule watches."""
        value = self._trigger("DataStoreName")
        return None if value is None else str(value)

    @property
    def polling_interval(self) -> int | None:
        """Minutes between polls of a DataStore schedule (default 5)."""
        value = self._trigger("PollingInterval")
        return None if value is None else int(value)

    @property
    def data_path_parameter_name(self) -> str | None:
        """The DataPath parameter set to the changed blob's path."""
        value = self._trigger("DataPathParameterName")
        return None if value is None else str(value)

    @property
    def path_on_datastore(self) -> str | None:
        """The folder watched (None: the whole container)."""
        value = self._trigger("PathOnDataStore")
        return None if value is None else str(value)

    @property
    def recursive(self) -> bool:
        """Ours: whether changes in sub-folders of ``path_on_datastore`` trigger too (azureml: never)."""
        return bool(self._trigger("Recursive"))

    @property
    def debounce_seconds(self) -> int:
        """Ours: a burst of uploads within this many seconds starts one run (0: one run per blob)."""
        return int(self._trigger("DebounceSeconds") or 0)

    @property
    def next_due(self) -> datetime | None:
        """Ours: when a Recurrence schedule fires next, or a DataStore schedule polls its folder next
        (UTC). None when disabled, and when the poll is at the next tick (on the default datastore a
        blob trigger sees changes first; the poll reconciles what it missed)."""
        return _datetime(self._entity.get("NextDue"))

    @property
    def watch_since(self) -> datetime | None:
        """Ours: a DataStore schedule fires for blobs changed after this time (UTC): when it was created,
        enabled or pointed at another folder. Data already there never starts a run."""
        return _datetime(self._entity.get("WatchSince"))

    @property
    def last_fired(self) -> datetime | None:
        """Ours: when it last fired (UTC), or None."""
        return _datetime(self._entity.get("LastFired"))

    # ---- creating and finding ----------------------------------------------------------------------

    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: int = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
        *,
        recursive: bool = False,
        debounce_seconds: int = 0,
    ) -> Schedule:
        """Schedule published pipeline ``pipeline_id``: give ``recurrence`` for a time-based schedule, or
        ``datastore`` (and optionally ``polling_interval``, ``data_path_parameter_name``,
        ``path_on_datastore``, and our ``recursive`` / ``debounce_seconds``) to run when blobs land there.

        ``wait_for_provisioning`` / ``wait_timeout`` are ignored: the schedule is active at once.

        Raises:
            ValueError: azureml's client-side checks (a recurrence together with datastore options, an
                invalid recurrence, a datastore that is not an Azure Blob datastore).
            ServiceException: the service refused it (unknown pipeline, undeclared parameter, ...).
        """
        body = _create_body(
            name,
            experiment_name,
            recurrence,
            description,
            pipeline_parameters,
            datastore,
            polling_interval,
            data_path_parameter_name,
            continue_on_step_failure,
            path_on_datastore,
            recursive,
            debounce_seconds,
        )
        body["PipelineId"] = pipeline_id
        return Schedule(workspace, workspace._client.post("schedules", body))

    @staticmethod
    def create_for_pipeline_endpoint(
        workspace: Workspace,
        name: str,
        pipeline_endpoint_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: int = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
        *,
        recursive: bool = False,
        debounce_seconds: int = 0,
    ) -> Schedule:
        """As :meth:`create`, for pipeline endpoint ``pipeline_endpoint_id`` (each run uses its default
        version at the time it fires)."""
        body = _create_body(
            name,
            experiment_name,
            recurrence,
            description,
            pipeline_parameters,
            datastore,
            polling_interval,
            data_path_parameter_name,
            continue_on_step_failure,
            path_on_datastore,
            recursive,
            debounce_seconds,
        )
        body["PipelineEndpointId"] = pipeline_endpoint_id
        return Schedule(workspace, workspace._client.post("schedules", body))

    @staticmethod
    def get(
        workspace: Workspace, id: str, _workflow_provider: Any = None, _service_endpoint: str | None = None
    ) -> Schedule:
        """The schedule ``id``."""
        return Schedule(workspace, workspace._client.get(api_path("schedules", id)))

    @staticmethod
    def list(
        workspace: Workspace,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
    ) -> builtins.list[Schedule]:
        """The workspace's schedules, newest first; with ``pipeline_id`` given, ``active_only`` is ignored."""
        params = {"active_only": "true" if active_only else "false"}
        if pipeline_id is not None:
            params["pipelineId"] = pipeline_id
        if pipeline_endpoint_id is not None:
            params["pipelineEndpointId"] = pipeline_endpoint_id
        found = workspace._client.get("schedules", params=params)
        return [Schedule(workspace, e) for e in found["value"]]

    @staticmethod
    def get_all(
        workspace: Workspace,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
    ) -> builtins.list[Schedule]:
        """Deprecated (as in azureml): use :meth:`list`."""
        log.warning("Schedule.get_all is deprecated; use Schedule.list.")
        return Schedule.list(workspace, active_only, pipeline_id, pipeline_endpoint_id)

    @staticmethod
    def get_schedules_for_pipeline_id(
        workspace: Workspace, pipeline_id: str, _workflow_provider: Any = None, _service_endpoint: str | None = None
    ) -> builtins.list[Schedule]:
        """Every schedule of published pipeline ``pipeline_id`` (active or not)."""
        return Schedule.list(workspace, active_only=False, pipeline_id=pipeline_id)

    @staticmethod
    def get_schedules_for_pipeline_endpoint_id(
        workspace: Workspace,
        pipeline_endpoint_id: str,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
    ) -> builtins.list[Schedule]:
        """Every schedule of pipeline endpoint ``pipeline_endpoint_id`` (active or not)."""
        return Schedule.list(workspace, active_only=False, pipeline_endpoint_id=pipeline_endpoint_id)

    # ---- changing -------------------------------------------------------------------------------------

    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        recurrence: ScheduleRecurrence | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        status: str | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: int | None = None,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        *,
        recursive: bool | None = None,
        debounce_seconds: int | None = None,
    ) -> None:
        """Change the arguments given (None leaves a value as it is). The schedule's type cannot change.

        Raises:
            ValueError: a recurrence for a DataStore schedule, a datastore for a Recurrence schedule, a
                datastore that is not Azure Blob, ``polling_interval < 0``, or a status other than
                Active / Disabled (azureml's messages).
        """
        body: dict[str, Any] = {}
        if recurrence is not None:
            if self._schedule_type != RECURRENCE:
                raise ValueError("Can not specify a recurrence for a Datastore schedule.")
            recurrence.validate()
            body["Recurrence"] = recurrence._to_wire()
        trigger: dict[str, Any] = {}
        if datastore is not None:
            if self._schedule_type != DATASTORE:
                raise ValueError("Can not specify a Datastore for a Recurrence schedule.")
            trigger["DataStoreName"] = _datastore_name(datastore)
        if polling_interval is not None:
            if polling_interval < 0:
                raise ValueError("The polling interval must be greater than or equal to 0 (minutes).")
            trigger["PollingInterval"] = polling_interval
        if status is not None and status not in ("Active", "Disabled"):
            raise ValueError("Status must be either Active or Disabled")
        for key, value in (
            ("DataPathParameterName", data_path_parameter_name),
            ("PathOnDataStore", path_on_datastore),
            ("Recursive", recursive),
            ("DebounceSeconds", debounce_seconds),
        ):
            if value is not None:
                trigger[key] = value
        if trigger:
            body["DataStoreTriggerInfo"] = trigger
        if pipeline_parameters is not None:
            body.update({"DataPathAssignments": {}, **parameter_assignments(pipeline_parameters)})
        for key, value in (
            ("Name", name),
            ("Description", description),
            ("Status", status),
            ("ContinueRunOnStepFailure", continue_on_step_failure),
        ):
            if value is not None:
                body[key] = value
        self._entity = self._workspace._client.patch(api_path("schedules", self.id), body)

    def enable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Set the schedule Active (its pipeline or endpoint must be Active)."""
        self._entity = self._workspace._client.post(api_path("schedules", self.id, "enable"))

    def disable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Set the schedule Disabled: it starts no more runs."""
        self._entity = self._workspace._client.post(api_path("schedules", self.id, "disable"))

    # ---- runs ---------------------------------------------------------------------------------------

    def get_pipeline_runs(self) -> builtins.list[PipelineRun]:
        """The runs this schedule started, newest first."""
        found = self._workspace._client.get(api_path("PipelineRuns", "Schedule", self.id))["value"]
        return [self._run(e) for e in found]

    def get_last_pipeline_run(self) -> PipelineRun | None:
        """The newest run this schedule started, or None if it has started none."""
        entity = self._workspace._client.get(api_path("PipelineRuns", "Schedule", self.id, "Last"))
        return None if not entity else self._run(entity)

    def _run(self, entity: dict[str, Any]) -> PipelineRun:
        from amlpipe.pipeline.core._run import PipelineRun

        experiment = Experiment(self._workspace, entity["RunHistoryExperimentName"])
        return PipelineRun(experiment, entity["Id"], _entity=entity)

    def __repr__(self) -> str:
        target = f"Pipeline Id: {self.pipeline_id}" if self.pipeline_id else f"Endpoint Id: {self.pipeline_endpoint_id}"
        return (
            f"Schedule(Name: {self.name}, Id: {self.id}, Status: {self.status}, {target}, Type: {self._schedule_type})"
        )


def _create_body(
    name: str,
    experiment_name: str,
    recurrence: ScheduleRecurrence | None,
    description: str | None,
    pipeline_parameters: dict[str, Any] | None,
    datastore: Any,
    polling_interval: int,
    data_path_parameter_name: str | None,
    continue_on_step_failure: bool | None,
    path_on_datastore: str | None,
    recursive: bool,
    debounce_seconds: int,
) -> dict[str, Any]:
    """The create body, after azureml's client-side checks (same order, same messages)."""
    if recurrence is not None:
        if datastore is not None:
            raise ValueError("Can not specify both a Recurrence and a Datastore")
        if data_path_parameter_name is not None:
            raise ValueError("Data Path parameter name can only be specified for Datastore schedules.")
        if path_on_datastore is not None:
            raise ValueError("Path on datastore parameter can only be specified for Datastore schedules.")
        recurrence.validate()
    body: dict[str, Any] = {"Name": name, "ExperimentName": experiment_name, "Description": description}
    body.update(parameter_assignments(pipeline_parameters))
    if continue_on_step_failure is not None:
        body["ContinueRunOnStepFailure"] = bool(continue_on_step_failure)
    if recurrence is not None:
        body["Recurrence"] = recurrence._to_wire()
    elif datastore is not None:
        body["DataStoreTriggerInfo"] = {
            "DataStoreName": _datastore_name(datastore),
            "PollingInterval": polling_interval,
            "DataPathParameterName": data_path_parameter_name,
            "PathOnDataStore": path_on_datastore,
            "Recursive": recursive,
            "DebounceSeconds": debounce_seconds,
        }
    else:
        # Neither: the service answers why (a schedule needs one), naming the field.
        trigger = {"DataPathParameterName": data_path_parameter_name, "PathOnDataStore": path_on_datastore}
        if any(v is not None for v in trigger.values()):
            body["DataStoreTriggerInfo"] = trigger
    return body


def _datastore_name(datastore: Any) -> str:
    """The name of ``datastore`` (a Datastore object, or its name), after azureml's type check."""
    if isinstance(datastore, str):
        return datastore
    # azureml watches Azure Blob datastores only; amlpipe polls S3 datastores too.
    if getattr(datastore, "datastore_type", "AzureBlob") not in ("AzureBlob", "AmazonS3"):
        raise ValueError("Datastore must be of type AzureBlobDatastore")
    return str(datastore.name)


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
