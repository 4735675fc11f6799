"""``Experiment``: a named group of runs; submits pipelines (azureml.core.Experiment)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from amlpipe._client import api_path
from amlpipe.core.workspace import Workspace
from amlpipe.exceptions import UserErrorException

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


class Experiment:
    """The experiment ``name`` in ``workspace`` (created by its first run).

    Args:
        workspace: the workspace.
        name: 1-255 letters, numbers, ``_`` or ``-``, starting with a letter or a number.

    Raises:
        UserErrorException: the name breaks that rule.
    """

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserErrorException(
                f"Experiment name {name!r} is invalid: it must be 1-255 characters, start with a letter or a "
                "number, and contain only letters, numbers, underscores and dashes."
            )
        self._workspace = workspace
        self._name = name
        self._id: str | None = kwargs.get("_id")

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> str | None:
        """The experiment's id, once its first run created it."""
        if self._id is None:
            from amlpipe.exceptions import ServiceException

            try:
                self._id = str(self._workspace._client.get(api_path("experiments", self._name))["Id"])
            except ServiceException as exc:
                if exc.status_code != 404:
                    raise
        return self._id

    def submit(self, config: Any, tags: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """Submit ``config`` (a Pipeline, PublishedPipeline or PipelineEndpoint) as a run of this experiment.

        Args:
            config: what to run; it must offer ``_submit_to_experiment``.
            tags: tags for the run.
            **kwargs: passed to ``config`` (e.g. ``pipeline_parameters``, ``regenerate_outputs``).

        Returns:
            The run (a ``PipelineRun``).
        """
        submit = getattr(config, "_submit_to_experiment", None)
        if submit is None:
            raise UserErrorException(f"{type(config).__name__} cannot be submitted to an experiment.")
        return submit(self, tags=tags, **kwargs)

    def get_runs(
        self,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        include_children: bool = False,
        *,
        top: int | None = None,
    ) -> Iterator[Any]:
        """The experiment's runs, newest first (``PipelineRun`` objects): the newest ``top`` (1-1000; an
        amlpipe extension), else the newest 100."""
        from amlpipe.pipeline.core._run import PipelineRun

        params: dict[str, Any] = {"experimentName": self._name}
        if top is not None:
            params["top"] = top
        for entity in self._workspace._client.get("PipelineRuns", params=params)["value"]:
            if tags is not None and not _has_tags(entity, tags):
                continue
            yield PipelineRun(self, entity["Id"], _entity=entity)

    @staticmethod
    def list(
        workspace: Workspace, experiment_name: str | None = None, view_type: str = "ActiveOnly", tags: Any = None
    ) -> list[Experiment]:
        """The workspace's experiments (only ``experiment_name`` when given)."""
        found = workspace._client.get("experiments")["value"]
        return [
            Experiment(workspace, e["Name"], _id=e["Id"])
            for e in found
            if experiment_name is None or e["Name"] == experiment_name
        ]

    def __repr__(self) -> str:
        return f"Experiment(Name: {self._name}, Workspace: {self._workspace.name})"


def _has_tags(entity: dict[str, Any], tags: Any) -> bool:
    have = entity.get("tags") or {}
    if isinstance(tags, str):
        return tags in have
    if isinstance(tags, dict):
        return all(have.get(k) == v for k, v in tags.items())
    return all(t in have for t in tags)
