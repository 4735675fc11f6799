"""Pipeline: a set of steps and their dependencies (azureml.pipeline.core.pipeline)."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlpipe.data._names import name_of
from amlpipe.pipeline.core._step import PipelineStep
from amlpipe.pipeline.core._wire import ParameterTable
from shared.errors import BadRequestError
from shared.graph import model as m
from shared.graph.snapshot import list_files
from shared.graph.validate import Registry, validate_graph

if TYPE_CHECKING:
    from amlpipe.core.experiment import Experiment
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._published import PublishedPipeline
    from amlpipe.pipeline.core._run import PipelineRun

_KWARGS = ("enable_email_notification",)
log = logging.getLogger("amlpipe.pipeline")


class Pipeline:
    """A collection of steps run as one workflow.

    Args:
        workspace: the workspace the pipeline is submitted to (may be None while only building).
        steps: the steps; with ``resolve_closure`` the steps they depend on are added automatically.
        description: the pipeline's description (also its name).
        default_datastore: where outputs without a datastore go (a name or an object with ``.name``).
        default_source_directory: the folder snapshotted for steps that give no ``source_directory``.
        resolve_closure: whether to pull in steps reachable through data edges and ``run_after``.
        **kwargs: only ``enable_email_notification`` is accepted.

    Raises:
        ValueError: an unknown keyword argument, or ``steps`` holds something other than steps.
    """

    def __init__(
        self,
        workspace: Any,
        steps: Any,
        description: str | None = None,
        default_datastore: Any = None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
        **kwargs: Any,
    ) -> None:
        for key in kwargs:
            if key not in _KWARGS:
                raise ValueError(f"parameter {key} is not recognized for Pipeline ")
        if isinstance(steps, PipelineStep):
            steps = [steps]
        steps = list(steps or [])
        for step in steps:
            if not isinstance(step, PipelineStep):
                raise ValueError(f"steps must hold pipeline steps, got {type(step).__name__}")
        self._workspace = workspace
        self._description = description
        self._default_datastore = default_datastore
        self._default_source_directory = default_source_directory
        self._enable_email_notification = kwargs.get("enable_email_notification")
        self._steps = _closure(steps) if resolve_closure else list(dict.fromkeys(steps))

    @property
    def description(self) -> str | None:
        """The description (the pipeline's name)."""
        return self._description

    @property
    def steps(self) -> list[PipelineStep]:
        """The steps, dependencies before their dependents."""
        return list(self._steps)

    def to_graph(self) -> tuple[m.PipelineGraph, dict[str, str | None]]:
        """The wire graph and, per step name, the absolute local folder to snapshot (None: no code).

        Raises:
            ValueError: a step holds an object amlpipe cannot put on the wire.
        """
        params = ParameterTable()
        wire_steps = [step._to_wire(params) for step in self._steps]
        graph = m.PipelineGraph(
            description=self._description,
            default_datastore=None
            if self._default_datastore is None
            else name_of(self._default_datastore, "datastore"),
            parameters=params.definitions(),
            steps=tuple(wire_steps),
        )
        sources: dict[str, str | None] = {}
        for step, wire in zip(self._steps, wire_steps, strict=True):
            if wire.kind == "data_transfer":
                sources[step.name] = None
                continue
            folder = step.source_directory or self._default_source_directory or os.getcwd()
            sources[step.name] = str(Path(folder).resolve())
        return graph, sources

    _to_graph = to_graph

    def validate(self) -> list[str]:
        """Every problem of the pipeline as a message; an empty list means valid.

        Checks the graph rules locally; when the workspace offers ``_graph_registry()`` its compute
        targets, datasets and datastores are checked too. Scripts are looked up in the step's source
        folder (honouring ``.amlignore``/``.gitignore``).
        """
        try:
            graph, sources = self.to_graph()
        except ValueError as exc:
            return [str(exc)]
        problems: list[str] = []
        manifests: dict[str, Collection[str]] = {}
        for name, folder in sources.items():
            if folder is None:
                continue
            if not Path(folder).is_dir():
                problems.append(f"step {name!r}: source_directory {folder!r} does not exist or is not a folder")
                continue
            try:
                manifests[name] = set(list_files(folder))
            except BadRequestError as exc:
                problems.append(f"step {name!r}: {exc.message}")
        return [*validate_graph(graph, self._graph_registry(), manifests=manifests), *problems]

    def _graph_registry(self) -> Registry | None:
        factory = getattr(self._workspace, "_graph_registry", None)
        if factory is None:
            return None
        registry: Registry | None = factory()
        return registry

    # -- publishing and submitting -------------------------------------------------------------

    def publish(
        self,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> PublishedPipeline:
        """Upload the steps' snapshots and publish the pipeline; returns the ``PublishedPipeline``."""
        from amlpipe.pipeline.core._published import PublishedPipeline
        from amlpipe.pipeline.core._submission import graph_with_snapshots

        client = self._require_workspace()._client
        graph = graph_with_snapshots(self, client)
        body: dict[str, Any] = {"Name": name or self._description or "", "Graph": graph.to_wire()}
        if description is not None:
            body["Description"] = description
        if version is not None:
            body["Version"] = version
        if continue_on_step_failure is not None:
            body["ContinueRunOnStepFailure"] = bool(continue_on_step_failure)
        return PublishedPipeline._from_entity(self._workspace, client.post("pipelines", body))

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id: str | None = None,
        credential_passthrough: bool | None = None,
        **kwargs: Any,
    ) -> PipelineRun:
        """Run the pipeline in ``experiment_name`` (snapshots uploaded first); returns the ``PipelineRun``.

        Raises:
            ValueError: an unknown keyword argument.
        """
        from amlpipe.core.experiment import Experiment

        for key in kwargs:
            if key not in _KWARGS:
                raise ValueError(f"parameter {key} is not recognized for Pipeline.submit ")
        experiment = Experiment(self._require_workspace(), experiment_name)
        return self._submit(
            experiment, pipeline_parameters, continue_on_step_failure, regenerate_outputs, parent_run_id
        )

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str] | None = None, **kwargs: Any
    ) -> PipelineRun:
        """``Experiment.submit(pipeline, ...)``: recognised keys are read, others ignored (as azureml)."""
        parameters = kwargs.get("pipeline_parameters")
        if parameters is None and "pipeline_params" in kwargs:
            log.warning("pipeline_params is deprecated; use pipeline_parameters.")
            parameters = kwargs["pipeline_params"]
        return self._submit(
            experiment,
            parameters,
            bool(kwargs.get("continue_on_step_failure", False)),
            bool(kwargs.get("regenerate_outputs", False)),
            kwargs.get("parent_run_id", kwargs.get("_parent_run_id")),
            tags,
        )

    def _submit(
        self,
        experiment: Experiment,
        parameters: dict[str, Any] | None,
        continue_on_step_failure: bool,
        regenerate_outputs: bool,
        parent_run_id: str | None,
        tags: dict[str, str] | None = None,
    ) -> PipelineRun:
        from amlpipe.pipeline.core._run import PipelineRun
        from amlpipe.pipeline.core._submission import graph_with_snapshots, submit_body

        client = experiment.workspace._client
        graph = graph_with_snapshots(self, client)
        if graph.description is None:  # azureml names an unnamed pipeline after its experiment
            graph = graph.model_copy(update={"description": experiment.name})
        body = submit_body(
            experiment.name,
            parameters,
            continue_on_step_failure=continue_on_step_failure,
            parent_run_id=parent_run_id,
            tags=tags,
        )
        body["RegenerateOutputs"] = bool(regenerate_outputs)
        body["Graph"] = graph.to_wire()
        entity = client.post("PipelineRuns/Submit", body)
        print(f"Submitted PipelineRun {entity['Id']}")
        return PipelineRun(experiment, entity["Id"], _entity=entity)

    def _require_workspace(self) -> Workspace:
        if self._workspace is None or getattr(self._workspace, "_client", None) is None:
            raise ValueError("This pipeline has no workspace; create it with Pipeline(workspace, steps).")
        workspace: Workspace = self._workspace
        return workspace

    def __repr__(self) -> str:
        return f"Pipeline(description={self._description!r}, steps={[s.name for s in self._steps]!r})"


def _closure(steps: list[PipelineStep]) -> list[PipelineStep]:
    """``steps`` and everything they depend on, each dependency before its dependents."""
    ordered: dict[int, PipelineStep] = {}
    visiting: set[int] = set()

    def visit(step: PipelineStep) -> None:
        if id(step) in ordered or id(step) in visiting:
            return  # a cycle is reported by validation, not here
        visiting.add(id(step))
        for upstream in step._upstream():
            visit(upstream)
        visiting.discard(id(step))
        ordered[id(step)] = step

    for step in steps:
        visit(step)
    return list(ordered.values())
