"""``PipelineRun`` and ``StepRun`` (azureml.pipeline.core.run)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.core.experiment import Experiment
from amlpipe.core.run import ActivityFailedException, ExperimentExecutionException, Run, status_of

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._published import PublishedPipeline

RUNNING_STATES = ("NotStarted", "Running", "Queued", "Unknown")
_STEP_STATUS_CODES = (
    "NotStarted",
    "Queued",
    "Running",
    "Failed",
    "Finished",
    "Canceled",
    "PartiallyExecuted",
    "Bypassed",
)
_KWARGS = ("enable_email_notification",)


class PipelineRun(Run):
    """A run of a pipeline.

    Args:
        experiment: the experiment the run belongs to.
        run_id: the run's id.
    """

    def __init__(self, experiment: Experiment, run_id: str, **kwargs: Any) -> None:
        super().__init__(experiment, run_id, **kwargs)

    @staticmethod
    def get(workspace: Workspace, run_id: str, _service_endpoint: str | None = None) -> PipelineRun:
        """The run ``run_id`` (its experiment is looked up for you)."""
        entity: dict[str, Any] = workspace._client.get(api_path("PipelineRuns", run_id))
        return PipelineRun(Experiment(workspace, entity["RunHistoryExperimentName"]), run_id, _entity=entity)

    @staticmethod
    def get_pipeline_runs(
        workspace: Workspace, pipeline_id: str, _service_endpoint: str | None = None
    ) -> list[PipelineRun]:
        """The runs of published pipeline ``pipeline_id``, newest first."""
        found = workspace._client.get("PipelineRuns", params={"pipelineId": pipeline_id})["value"]
        return [PipelineRun(Experiment(workspace, e["RunHistoryExperimentName"]), e["Id"], _entity=e) for e in found]

    def wait_for_completion(
        self, show_output: bool = True, timeout_seconds: float = sys.maxsize, raise_on_error: bool = True
    ) -> str:
        """Poll every second until the run leaves NotStarted/Running; return its final status.

        When ``timeout_seconds`` pass first it says so and returns the current status (no exception).

        Raises:
            ActivityFailedException: the run failed and ``raise_on_error`` is set.
            ExperimentExecutionException: interrupted (Ctrl-C); the run keeps executing.
        """
        start = time.monotonic()
        if show_output:
            print(f"PipelineRunId: {self.id}")
            print(f"Link to the run: {self._experiment.workspace.endpoint}/api/PipelineRuns/{self.id}")
        try:
            status = self.get_status()
            last = None
            while status in RUNNING_STATES:
                if show_output and status != last:
                    print(f"PipelineRun Status: {status}")
                    last = status
                if time.monotonic() - start >= timeout_seconds:
                    if show_output:
                        print(f"Timed out after {timeout_seconds} seconds; the run is still {status}.")
                    return status
                time.sleep(1)
                status = self.get_status()
        except KeyboardInterrupt as exc:
            raise ExperimentExecutionException(
                "The output streaming for the run interrupted.\nBut the run is still executing on the compute target."
            ) from exc
        if show_output:
            print(f"PipelineRun Execution Summary\n==============================\nPipelineRun Status: {status}")
        details = self._details()
        if raise_on_error and status == "Failed":
            detail = (details.get("Status") or {}).get("StatusDetail") or "the pipeline run failed"
            raise ActivityFailedException(f"Activity Failed:\n{detail}")
        return status

    def get_steps(self) -> list[StepRun]:
        """The step runs that have started or finished (``get_children``)."""
        return [s for s in self._all_steps() if s.get_status() != "NotStarted"]

    get_children = get_steps

    def find_step_run(self, name: str) -> list[StepRun]:
        """The step runs (started or finished) named exactly ``name``."""
        return [s for s in self.get_steps() if s.name == name]

    def cancel(self) -> None:
        """Cancel the run (NotStarted runs end Canceled; running steps are stopped by the service)."""
        self._entity = self._experiment.workspace._client.post(api_path("PipelineRuns", self.id, "cancel"))

    def publish_pipeline(
        self, name: str, description: str, version: str, continue_on_step_failure: bool | None = None, **kwargs: Any
    ) -> PublishedPipeline:
        """Publish the graph this run used.

        Raises:
            ValueError: an unknown keyword argument.
        """
        from amlpipe.pipeline.core._published import PublishedPipeline

        for key in kwargs:
            if key not in _KWARGS:
                raise ValueError(f"parameter {key} is not recognized for PipelineRun.publish_pipeline ")
        body: dict[str, Any] = {
            "Name": name,
            "Description": description,
            "Version": version,
            "GraphId": self._details()["GraphId"],
        }
        if continue_on_step_failure is not None:
            body["ContinueRunOnStepFailure"] = bool(continue_on_step_failure)
        workspace = self._experiment.workspace
        return PublishedPipeline._from_entity(workspace, workspace._client.post("pipelines", body))

    def _all_steps(self) -> list[StepRun]:
        entity = self._refresh()
        return [StepRun(self, s) for s in entity.get("StepRuns") or []]

    def __repr__(self) -> str:
        return f"Run(Experiment: {self._experiment.name},\nId: {self.id},\nType: azureml.PipelineRun)"


class StepRun:
    """One step of a pipeline run: its status and whether it was reused (and from which run)."""

    def __init__(self, pipeline_run: PipelineRun, entity: dict[str, Any]) -> None:
        self._pipeline_run = pipeline_run
        self._entity = entity
        self._is_reused = bool(entity.get("IsReused"))
        self._reused_run_id: str | None = entity.get("ReusedRunId")
        self._reused_pipeline_run_id: str | None = entity.get("ReusedPipelineRunId")
        self._reused_node_id: str | None = entity.get("Name") if self._is_reused else None

    @property
    def name(self) -> str:
        return str(self._entity["Name"])

    @property
    def pipeline_run_id(self) -> str:
        return self._pipeline_run.id

    @property
    def is_reused(self) -> bool:
        """Whether the step reused an earlier run's outputs."""
        return self._is_reused

    @property
    def reused_run_id(self) -> str | None:
        return self._reused_run_id

    @property
    def reused_pipeline_run_id(self) -> str | None:
        return self._reused_pipeline_run_id

    def get_status(self) -> str:
        """The step's status (step codes map 0..7 to NotStarted..Bypassed)."""
        code = (self._entity.get("Status") or {}).get("StatusCode")
        if isinstance(code, int):
            return _STEP_STATUS_CODES[code] if 0 <= code < len(_STEP_STATUS_CODES) else str(code)
        return str(code or "NotStarted")

    def __repr__(self) -> str:
        return f"StepRun({self.name!r}, status={self.get_status()!r}, reused={self._is_reused})"


__all__ = ["PipelineRun", "StepRun", "status_of"]
