"""Pipeline: a set of steps and their dependencies (azureml.pipeline.core.pipeline)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from amlpipe.data._names import name_of
from amlpipe.pipeline.core._step import PipelineStep
from amlpipe.pipeline.core._wire import ParameterTable
from shared.errors import BadRequestError
from shared.graph import model as m
from shared.graph.snapshot import list_files
from shared.graph.validate import Registry, validate_graph

_KWARGS = ("enable_email_notification",)


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
