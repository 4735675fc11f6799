"""``PipelineEndpoint``: a stable name and URL over versions of published pipelines."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.core.experiment import Experiment
from amlpipe.exceptions import ServiceException
from amlpipe.pipeline.core._published import PublishedPipeline
from amlpipe.pipeline.core._submission import submit_body

#: The most the list route gives in one answer.
MAX_LIST = 9999

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._run import PipelineRun


@dataclass(frozen=True)
class PipelineIdVersion:
    """One version of an endpoint: ``.version`` and ``.pipeline`` (the published pipeline's id)."""

    pipeline_id: str
    version: str

    @property
    def pipeline(self) -> str:
        return self.pipeline_id


class PipelineEndpoint:
    """A named endpoint over versioned published pipelines."""

    def __init__(self, workspace: Workspace, entity: dict[str, Any]) -> None:
        self._workspace = workspace
        self._entity = entity

    id = property(lambda self: self._entity["Id"], doc="The endpoint id.")
    name = property(lambda self: self._entity["Name"], doc="The endpoint name.")
    description = property(lambda self: self._entity.get("Description"), doc="The description.")
    status = property(lambda self: self._entity["Status"], doc="Active or Disabled (current after each call).")
    default_version = property(lambda self: self._entity["DefaultVersion"], doc="The default version.")
    endpoint = property(lambda self: self._entity["Url"], doc="The full REST URL that runs it (POST).")

    @property
    def swaggerurl(self) -> str:
        """The URL of the service's OpenAPI (swagger) document, which describes this endpoint's REST API."""
        return self._workspace._client.url("openapi.json")

    @property
    def pipeline_version_list(self) -> builtins.list[PipelineIdVersion]:
        return [PipelineIdVersion(v["PipelineId"], v["Version"]) for v in self._entity["PipelineVersionList"]]

    @staticmethod
    def publish(
        workspace: Workspace,
        name: str,
        description: str,
        pipeline: Any,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
    ) -> PipelineEndpoint:
        """A new endpoint named ``name`` whose version "0" is ``pipeline``.

        A plain ``Pipeline`` is published first as ``"<name>-<mm-dd-YYYY-HH-MM>-Pipeline"``.

        Raises:
            ValueError: ``pipeline`` is neither a Pipeline nor a PublishedPipeline, or the name exists.
        """
        from amlpipe.pipeline.core._pipeline import Pipeline

        if not isinstance(pipeline, Pipeline | PublishedPipeline):
            raise ValueError(f"pipeline must be a Pipeline or a PublishedPipeline, not {type(pipeline).__name__}")
        # Check the name before publishing a plain Pipeline, so a taken name leaves no published pipeline behind.
        if PipelineEndpoint._find(workspace, name) is not None:
            raise ValueError(f"PipelineEndpoint name {name} already exists in the workspace")
        published_here = isinstance(pipeline, Pipeline)
        if isinstance(pipeline, Pipeline):
            stamp = datetime.now().strftime("%m-%d-%Y-%H-%M")
            pipeline = pipeline.publish(name=f"{name}-{stamp}-Pipeline", description=description)
        body = {"Name": name, "Description": description, "PipelineId": pipeline.id}
        try:
            return PipelineEndpoint(workspace, workspace._client.post("PipelineEndpoints", body))
        except ServiceException as exc:
            if exc.status_code != 409:
                raise
            # Someone took the name between our check and the create: disable the pipeline we just
            # published for this endpoint (a caller's PublishedPipeline is theirs and stays as it was).
            error = ValueError(f"PipelineEndpoint name {name} already exists in the workspace")
            if published_here:
                try:
                    pipeline.disable()
                except ServiceException as cleanup:
                    error.add_note(f"Published pipeline {pipeline.id} could not be disabled: {cleanup}")
            raise error from exc

    @staticmethod
    def get(
        workspace: Workspace,
        id: str | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: str | None = None,
    ) -> PipelineEndpoint:
        """The endpoint with ``id``, or else the one named ``name``."""
        if id is not None:
            return PipelineEndpoint(workspace, workspace._client.get(api_path("PipelineEndpoints", id)))
        if name is not None:
            return PipelineEndpoint(workspace, workspace._client.get("PipelineEndpoints", params={"name": name}))
        raise ValueError("PipelineEndpoint.get needs id or name")

    @staticmethod
    def list(workspace: Workspace, active_only: bool = True, max_results: int = 100) -> builtins.list[PipelineEndpoint]:
        """Endpoints by name: Active ones only when ``active_only`` (the service filters), at most ``max_results``.

        Raises:
            ValueError: ``max_results`` is below 1.
        """
        if max_results < 1:
            raise ValueError(f"max_results must be at least 1, not {max_results}")
        params = {"active_only": str(active_only).lower(), "top": str(min(max_results, MAX_LIST))}
        found = workspace._client.get("PipelineEndpoints", params=params)
        return [PipelineEndpoint(workspace, e) for e in found["value"][:max_results]]

    get_all = list

    def get_default_version(self) -> str:
        return str(self.default_version)

    def list_versions(self) -> builtins.list[PipelineIdVersion]:
        """Every version of the endpoint (``.version``, ``.pipeline``)."""
        return self.pipeline_version_list

    def get_pipeline(self, version: str | None = None) -> PublishedPipeline:
        """The published pipeline of ``version`` (the default version when None)."""
        wanted = self.default_version if version is None else str(version)
        for item in self.pipeline_version_list:
            if item.version == wanted:
                return PublishedPipeline.get(self._workspace, item.pipeline_id)
        raise ValueError(f"Version {wanted} does not exist in the PipelineEndpoint {self.name}")

    def list_pipelines(self, active_only: bool = True) -> builtins.list[PublishedPipeline]:
        found = [PublishedPipeline.get(self._workspace, v.pipeline_id) for v in self.pipeline_version_list]
        return [p for p in found if not active_only or p.status == "Active"]

    def add(self, pipeline: PublishedPipeline) -> None:
        """Add ``pipeline`` as the next version."""
        self._post_version(pipeline, set_default=False)

    def add_default(self, pipeline: PublishedPipeline) -> None:
        """Add ``pipeline`` as the next version and make it the default."""
        self._post_version(pipeline, set_default=True)

    def set_default(self, pipeline: PublishedPipeline) -> None:
        """Make the version running ``pipeline`` the default.

        Raises:
            ValueError: ``pipeline`` is not on this endpoint.
        """
        self._put_default({"PipelineId": pipeline.id})

    def set_default_version(self, version: str) -> None:
        """Make ``version`` the default.

        Raises:
            ValueError: the endpoint has no such version.
        """
        self._put_default({"Version": str(version)})

    def enable(self) -> None:
        """Set the endpoint Active (it can be submitted again)."""
        self._entity = self._workspace._client.post(api_path("PipelineEndpoints", self.id, "enable"))

    def disable(self) -> None:
        """Set the endpoint Disabled: it cannot be submitted and ``list`` hides it."""
        self._entity = self._workspace._client.post(api_path("PipelineEndpoints", self.id, "disable"))

    def archive(self) -> None:
        """Archive the endpoint: rename it to a random UUID (freeing its name) and disable it."""
        self._entity = self._workspace._client.post(api_path("PipelineEndpoints", self.id, "archive"))

    def reactivate(self, name: str) -> None:
        """Rename an (archived) endpoint to ``name`` and set it Active.

        Raises:
            ValueError: another endpoint has that name.
        """
        self._rename(self._workspace._client.post, api_path("PipelineEndpoints", self.id, "reactivate"), name)

    def set_name(self, name: str) -> None:
        """Rename the endpoint to ``name``.

        Raises:
            ValueError: another endpoint has that name.
        """
        self._rename(self._workspace._client.patch, api_path("PipelineEndpoints", self.id), name)

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        pipeline_version: str | None = None,
    ) -> PipelineRun:
        """Run ``pipeline_version`` (the default version when None) in ``experiment_name``."""
        return self._submit(
            Experiment(self._workspace, experiment_name), pipeline_parameters, parent_run_id, pipeline_version
        )

    def _submit_to_experiment(
        self, experiment: Experiment, tags: dict[str, str] | None = None, **kwargs: Any
    ) -> PipelineRun:
        return self._submit(
            experiment,
            kwargs.get("pipeline_parameters"),
            kwargs.get("parent_run_id"),
            kwargs.get("pipeline_version"),
            tags,
        )

    def _submit(
        self,
        experiment: Experiment,
        parameters: dict[str, Any] | None,
        parent_run_id: str | None,
        version: str | None,
        tags: dict[str, str] | None = None,
    ) -> PipelineRun:
        from amlpipe.pipeline.core._run import PipelineRun

        body = submit_body(experiment.name, parameters, parent_run_id=parent_run_id, tags=tags)
        params = {"pipelineVersion": str(version)} if version is not None else None
        entity = self._workspace._client.request("POST", "", body=body, params=params, url=self.endpoint)
        print(f"Submitted PipelineRun {entity['Id']}")
        return PipelineRun(experiment, entity["Id"], _entity=entity)

    def _rename(self, send: Callable[[str, Any], Any], path: str, name: str) -> None:
        try:
            self._entity = send(path, {"Name": name})
        except ServiceException as exc:
            if exc.status_code == 409:
                raise ValueError(f"PipelineEndpoint name {name} already exists in the workspace") from exc
            raise

    def _post_version(self, pipeline: PublishedPipeline, *, set_default: bool) -> None:
        body = {"PipelineId": pipeline.id, "SetDefault": set_default}
        self._entity = self._workspace._client.post(api_path("PipelineEndpoints", self.id, "versions"), body)

    def _put_default(self, body: dict[str, str]) -> None:
        try:
            self._entity = self._workspace._client.put(api_path("PipelineEndpoints", self.id, "default"), body)
        except ServiceException as exc:
            if exc.status_code == 400:
                raise ValueError(exc.message) from exc
            raise

    @staticmethod
    def _find(workspace: Workspace, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = workspace._client.get("PipelineEndpoints", params={"name": name})
        except ServiceException as exc:
            if exc.status_code == 404:
                return None
            raise
        return found

    def __repr__(self) -> str:
        return f"PipelineEndpoint(Name: {self.name}, Id: {self.id}, Status: {self.status}, Endpoint: {self.endpoint})"
