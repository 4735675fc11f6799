"""``Run``: a run in an experiment (azureml.core.Run). Pipeline runs are ``PipelineRun``.

The part every run shares lives here (id, experiment, status, details, tags), and
``Run.get_context()``: the run a script gets inside a pipeline step (log metrics, upload files,
register models, read its input datasets) or, anywhere else, an offline run. That one is in
``amlpipe.core._run_context``, imported when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.exceptions import AzureMLException

if TYPE_CHECKING:
    from amlpipe.core._run_base import RunContext
    from amlpipe.core.experiment import Experiment


class ActivityFailedException(AzureMLException):
    """A run ended in error and ``wait_for_completion(raise_on_error=True)`` was waiting for it."""


class RunEnvironmentException(AzureMLException):
    """There is no run context (``Run.get_context(allow_offline=False)`` outside a step), or it is broken."""


class Run:
    """A run of an experiment, read from the service.

    Args:
        experiment: the experiment the run belongs to.
        run_id: the run's id.
    """

    def __init__(self, experiment: Experiment, run_id: str, **kwargs: Any) -> None:
        self._experiment = experiment
        self._run_id = run_id
        self._entity: dict[str, Any] | None = kwargs.get("_entity")

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> RunContext:
        """The run of the step this script runs in, or an offline run outside a pipeline.

        Inside a step (the worker sets ``AMLPIPE_RUN_CONTEXT``) the run's ``id`` is
        ``<pipeline run id>:<step>:<attempt>``; it logs metrics (``log``, ``log_list``, ``log_row``,
        ``log_table``, ``log_image``), uploads files (``upload_file``, ``upload_folder``; ``./outputs``
        is uploaded too), registers models (``register_model``: done when the step succeeds), and
        offers ``input_datasets`` and ``parent`` (the pipeline run). Elsewhere it is an offline run
        (``OfflineRun_<uuid>``) that prints what is logged. Every call in one process returns the
        same object.

        Raises:
            RunEnvironmentException: no step context and ``allow_offline`` is False, or the
                context file is unreadable.
        """
        from amlpipe.core._run_context import get_context

        return get_context(allow_offline)

    @property
    def id(self) -> str:
        """The run id."""
        return self._run_id

    @property
    def experiment(self) -> Experiment:
        """The experiment the run belongs to."""
        return self._experiment

    @property
    def name(self) -> str:
        """The run's display name (its description, else its id)."""
        return str(self._details().get("Description") or self._run_id)

    @property
    def tags(self) -> dict[str, str]:
        """The run's tags."""
        return dict(self._details().get("tags") or {})

    @property
    def properties(self) -> dict[str, str]:
        """The run's properties."""
        return dict(self._details().get("Properties") or {})

    def get_status(self) -> str:
        """The run's current status (``NotStarted``, ``Running``, ``Finished``, ...)."""
        return status_of(self._refresh())

    def get_details(self) -> dict[str, Any]:
        """The run's details: ``runId``, ``status``, ``startTimeUtc``, ``endTimeUtc``, ``properties``, ..."""
        entity = self._refresh()
        status = entity.get("Status") or {}
        return {
            "runId": self._run_id,
            "target": None,
            "status": status_of(entity),
            "startTimeUtc": status.get("CreationTime"),
            "endTimeUtc": status.get("EndTime"),
            "properties": dict(entity.get("Properties") or {}),
            "tags": dict(entity.get("tags") or {}),
            "inputDatasets": [],
            "outputDatasets": [],
            "experimentName": entity.get("RunHistoryExperimentName"),
        }

    def _details(self) -> dict[str, Any]:
        return self._entity if self._entity is not None else self._refresh()

    def _refresh(self) -> dict[str, Any]:
        entity: dict[str, Any] = self._experiment.workspace._client.get(api_path("PipelineRuns", self._run_id))
        self._entity = entity
        return entity

    def __repr__(self) -> str:
        return f"Run(Experiment: {self._experiment.name}, Id: {self._run_id})"


def status_of(entity: dict[str, Any]) -> str:
    """The status string of a run entity; a missing status counts as ``NotStarted``."""
    status = entity.get("Status") or {}
    code = status.get("StatusCode") if isinstance(status, dict) else status
    if code is None:
        return "NotStarted"
    if isinstance(code, int):
        return ("NotStarted", "Running", "Failed", "Finished", "Canceled")[code] if 0 <= code <= 4 else str(code)
    return str(code)


class ExperimentExecutionException(AzureMLException):
    """Waiting for a run was interrupted (the run itself keeps executing)."""
