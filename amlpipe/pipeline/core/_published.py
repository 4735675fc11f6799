"""``PublishedPipeline``: an immutable pipeline with a REST endpoint (azureml.pipeline.core.graph)."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.core.experiment import Experiment
from amlpipe.pipeline.core._submission import submit_body

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._run import PipelineRun


class PublishedPipeline:
    """A published pipeline: a frozen graph and code, run by POSTing to :attr:`endpoint`."""

    def __init__(
        self,
        name: str,
        graph_id: str,
        description: str | None,
        version: str | None,
        published_pipeline_id: str,
        status: str,
        endpoint: str,
        total_run_steps: int,
        workspace: Workspace,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self._name = name
        self._graph_id = graph_id
        self._description = description
        self._version = version
        self._id = published_pipeline_id
        self._status = status
        self._endpoint = endpoint
        self._total_run_steps = total_run_steps
        self._workspace = workspace
        self._continue_on_step_failure = continue_on_step_failure

    @classmethod
    def _from_entity(cls, workspace: Workspace, e: dict[str, Any]) -> PublishedPipeline:
        return cls(
            name=e["Name"],
            graph_id=e["GraphId"],
            description=e.get("Description"),
            version=e.get("Version"),
            published_pipeline_id=e["Id"],
            status=e["Status"],
            endpoint=e["Url"],
            total_run_steps=int(e.get("TotalRunSteps") or 0),
            workspace=workspace,
            continue_on_step_failure=e.get("ContinueRunOnStepFailure"),
        )

    name = property(lambda self: self._name, doc="The name.")
    id = property(lambda self: self._id, doc="The published pipeline id.")
    graph_id = property(lambda self: self._graph_id, doc="The id of its graph.")
    description = property(lambda self: self._description, doc="The description.")
    version = property(lambda self: self._version, doc="The version string given at publish time.")
    status = property(lambda self: self._status, doc="Active, Disabled or Deprecated.")
    endpoint = property(lambda self: self._endpoint, doc="The full REST URL that runs it (POST).")
    total_run_steps = property(lambda self: self._total_run_steps, doc="The number of steps.")
    continue_on_step_failure = property(lambda self: self._continue_on_step_failure, doc="The default for runs.")

    @staticmethod
    def get(workspace: Workspace, id: str, _service_endpoint: str | None = None) -> PublishedPipeline:
        """The published pipeline ``id`` (lookup is by id only)."""
        return PublishedPipeline._from_entity(workspace, workspace._client.get(api_path("pipelines", id)))

    @staticmethod
    def list(
        workspace: Workspace, active_only: bool = True, _service_endpoint: str | None = None
    ) -> builtins.list[PublishedPipeline]:
        """The workspace's published pipelines (disabled ones only when ``active_only`` is False)."""
        found = workspace._client.get("pipelines", params={"active_only": "true" if active_only else "false"})
        return [PublishedPipeline._from_entity(workspace, e) for e in found["value"]]

    get_all = list

    def enable(self) -> None:
        """Set the status to Active."""
        self._status = self._workspace._client.post(api_path("pipelines", self._id, "enable"))["Status"]

    def disable(self) -> None:
        """Set the status to Disabled (a disabled pipeline cannot be submitted and is hidden from ``list``)."""
        self._status = self._workspace._client.post(api_path("pipelines", self._id, "disable"))["Status"]

    def get_graph(self) -> dict[str, Any]:
        """The graph document."""
        graph: dict[str, Any] = self._workspace._client.get(api_path("pipelines", self._id, "graph"))
        return graph

    def get_step_names(self) -> builtins.list[str]:
        """The names of the steps."""
        return [step["name"] for step in self.get_graph()["steps"]]

    def submit(
        self,
        workspace: Workspace,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
        parent_run_id: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> PipelineRun:
        """Run this pipeline in ``experiment_name``; prints the run id and returns the ``PipelineRun``."""
        return self._submit(
            Experiment(workspace, experiment_name), pipeline_parameters, parent_run_id, continue_on_step_failure
        )

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str] | None = None, **kwargs: Any
    ) -> PipelineRun:
        parent = kwargs.get("parent_run_id", kwargs.get("_parent_run_id"))
        return self._submit(
            experiment, kwargs.get("pipeline_parameters"), parent, kwargs.get("continue_on_step_failure"), tags
        )

    def _submit(
        self,
        experiment: Experiment,
        parameters: dict[str, Any] | None,
        parent_run_id: str | None,
        continue_on_step_failure: bool | None,
        tags: dict[str, str] | None = None,
    ) -> PipelineRun:
        from amlpipe.pipeline.core._run import PipelineRun

        body = submit_body(
            experiment.name,
            parameters,
            continue_on_step_failure=continue_on_step_failure,
            parent_run_id=parent_run_id,
            tags=tags,
        )
        entity = experiment.workspace._client.request("POST", "", body=body, url=self._endpoint)
        print(f"Submitted PipelineRun {entity['Id']}")
        return PipelineRun(experiment, entity["Id"], _entity=entity)

    def __repr__(self) -> str:
        return (
            f"PublishedPipeline(Name: {self._name}, Id: {self._id}, Status: {self._status}, Endpoint: {self._endpoint})"
        )
