"""``Run``: a run in an experiment (azureml.core.Run). Pipeline runs are ``PipelineRun``.

Only the part every run shares lives here (id, experiment, status, details, tags); the run context
a script uses inside a step (``Run.get_context()``) comes with the step runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.exceptions import AzureMLException

if TYPE_CHECKING:
    from amlpipe.core.experiment import Experiment


class ActivityFailedException(AzureMLException):
    """A run ended in error and ``wait_for_completion(raise_on_error=True)`` was waiting for it."""


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
