"""Compute targets (azureml.core.compute): named pools of workers that run steps.

A step names its compute target; in amlpipe ``max_nodes`` of an AmlCompute pool is how many steps it
runs at once. ``local`` is built in (steps run by the service itself) and needs no creating.

    try:
        cluster = ComputeTarget(workspace=ws, name="aml-cluster")
    except ComputeTargetException:
        config = AmlCompute.provisioning_configuration(vm_size="STANDARD_DS11_V2", max_nodes=2)
        cluster = ComputeTarget.create(ws, "aml-cluster", config)
    cluster.wait_for_completion(show_output=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amlpipe._client import ServiceClient, api_path
from amlpipe.exceptions import ServiceException, UserErrorException

__all__ = [
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "ComputeTarget",
    "ComputeTargetException",
    "ScaleSettings",
]

LOCAL = "local"


class ComputeTargetException(UserErrorException):
    """A compute target is missing, or could not be created, updated or deleted (azureml's name)."""


class AmlComputeProvisioningConfiguration:
    """What ``AmlCompute.provisioning_configuration`` returns: the pool's sizes."""

    def __init__(
        self,
        vm_size: str = "",
        min_nodes: int = 0,
        max_nodes: int = 4,
        idle_seconds_before_scaledown: int | None = None,
        **kwargs: Any,
    ) -> None:
        if max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")
        if min_nodes < 0 or min_nodes > max_nodes:
            raise ValueError("min_nodes must be between 0 and max_nodes")
        self.vm_size = vm_size
        self.min_nodes = min_nodes
        self.max_nodes = max_nodes
        self.idle_seconds_before_scaledown = idle_seconds_before_scaledown
        self.extra = dict(kwargs)

    def _to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "computeType": "AmlCompute",
            "vmSize": self.vm_size,
            "minNodes": self.min_nodes,
            "maxNodes": self.max_nodes,
        }
        if self.idle_seconds_before_scaledown is not None:
            body["idleSecondsBeforeScaledown"] = self.idle_seconds_before_scaledown
        return body


@dataclass(frozen=True)
class ScaleSettings:
    """azureml's ``AmlCompute.scale_settings``."""

    minimum_node_count: int
    maximum_node_count: int
    idle_seconds_before_scaledown: int


def _service(workspace: Any) -> ServiceClient | None:
    client = getattr(workspace, "_client", None)
    return client if isinstance(client, ServiceClient) else None


def _require_service(workspace: Any) -> ServiceClient:
    client = _service(workspace)
    if client is None:
        raise UserErrorException("This needs a Workspace connected to the amlpipe service (Workspace.from_config()).")
    return client


class ComputeTarget:
    """A compute target, known by name. ``ComputeTarget(ws, name)`` fetches an existing one.

    Args:
        workspace: the workspace it belongs to (None while building pipelines offline).
        name: the target's name.

    Raises:
        ComputeTargetException: the workspace has no target ``name``.
    """

    _compute_type = "Unknown"

    def __new__(cls, workspace: Any = None, name: str = "", **kwargs: Any) -> ComputeTarget:
        # azureml answers ComputeTarget(ws, name) with an instance of the target's own type.
        if cls is ComputeTarget and _service(workspace) is not None and str(name).lower() != LOCAL:
            cls = AmlCompute
        return super().__new__(cls)

    def __init__(self, workspace: Any, name: str, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Compute target name must be a non-empty string")
        self.workspace = workspace
        self.name = name
        self.provisioning_state = "Succeeded"
        self.vm_size = ""
        self.scale_settings: ScaleSettings | None = None
        self._etag: str | None = None
        client = _service(workspace)
        if client is not None and name.lower() != LOCAL:
            try:
                self._load(client.get(api_path("computetargets", name)))
            except ServiceException as exc:
                if exc.status_code == 404:
                    raise ComputeTargetException(
                        f"ComputeTargetNotFound: Compute Target with name {name} not found in provided workspace"
                    ) from exc
                raise

    def _load(self, body: dict[str, Any]) -> None:
        self.name = body["name"]
        self.vm_size = body.get("vmSize", "")
        self.provisioning_state = body.get("provisioningState", "Succeeded")
        self.scale_settings = ScaleSettings(
            body["minNodes"], body["maxNodes"], body.get("idleSecondsBeforeScaledown", 0)
        )
        self._etag = body.get("etag")

    @classmethod
    def _from_json(cls, workspace: Any, body: dict[str, Any]) -> AmlCompute:
        target = object.__new__(AmlCompute)
        target.workspace = workspace
        target._load(body)
        return target

    @property
    def type(self) -> str:
        """The compute type, e.g. ``"AmlCompute"``."""
        return self._compute_type

    @staticmethod
    def create(workspace: Any, name: str, provisioning_configuration: Any) -> ComputeTarget:
        """Create a target; creating it again with the same configuration returns the existing one.

        Raises:
            ComputeTargetException: the name is invalid, or a target ``name`` exists with other settings.
        """
        if not isinstance(provisioning_configuration, AmlComputeProvisioningConfiguration):
            raise ComputeTargetException(
                "provisioning_configuration must come from AmlCompute.provisioning_configuration()."
            )
        client = _require_service(workspace)
        try:
            body = client.put(api_path("computetargets", name), provisioning_configuration._to_json())
        except ServiceException as exc:
            if 400 <= exc.status_code < 500:
                raise ComputeTargetException(f"Compute target creation failed: {exc.message}") from exc
            raise
        return ComputeTarget._from_json(workspace, body)

    @staticmethod
    def list(workspace: Any) -> list[ComputeTarget]:
        """Every compute target of the workspace (``local`` is built in and not listed)."""
        body = _require_service(workspace).get("computetargets")
        return [ComputeTarget._from_json(workspace, item) for item in body["value"]]

    def wait_for_completion(self, show_output: bool = False, **kwargs: Any) -> None:
        """Targets are ready when created: returns at once (kept for azureml compatibility)."""
        if show_output:
            print(f'Provisioning operation finished, operation "{self.provisioning_state}"')

    def get_status(self) -> str:
        """The provisioning state (always ``"Succeeded"`` once created)."""
        return self.provisioning_state

    def delete(self) -> None:
        """Delete this target from the workspace (deleting a missing one does nothing)."""
        _require_service(self.workspace).delete(api_path("computetargets", self.name))

    def serialize(self) -> dict[str, Any]:
        """The target as a dictionary (azureml's shape, reduced)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "provisioningState": self.provisioning_state}
        if self.scale_settings is not None:
            out["properties"] = {
                "vmSize": self.vm_size,
                "scaleSettings": {
                    "minNodeCount": self.scale_settings.minimum_node_count,
                    "maxNodeCount": self.scale_settings.maximum_node_count,
                    "nodeIdleTimeBeforeScaleDown": self.scale_settings.idle_seconds_before_scaledown,
                },
            }
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AmlCompute(ComputeTarget):
    """A pool of workers that runs at most ``max_nodes`` steps at once."""

    _compute_type = "AmlCompute"

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        min_nodes: int = 0,
        max_nodes: int = 4,
        idle_seconds_before_scaledown: int | None = None,
        **kwargs: Any,
    ) -> AmlComputeProvisioningConfiguration:
        """A configuration for ``ComputeTarget.create``; ``max_nodes`` is the pool's concurrency."""
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            **kwargs,
        )

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Change the pool's sizes; fails if someone else changed it since this object was read.

        Raises:
            ComputeTargetException: invalid sizes, or the target changed meanwhile (read it again).
        """
        body: dict[str, Any] = {
            key: value
            for key, value in (
                ("minNodes", min_nodes),
                ("maxNodes", max_nodes),
                ("idleSecondsBeforeScaledown", idle_seconds_before_scaledown),
            )
            if value is not None
        }
        if self._etag:
            body["etag"] = self._etag
        client = _require_service(self.workspace)
        try:
            self._load(client.patch(api_path("computetargets", self.name), body))
        except ServiceException as exc:
            if 400 <= exc.status_code < 500:
                raise ComputeTargetException(f"Compute target update failed: {exc.message}") from exc
            raise
