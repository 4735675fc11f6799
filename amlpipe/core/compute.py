"""Compute targets (azureml.core.compute): named pools of workers that run steps.

A step names its compute target; in amlpipe ``max_nodes`` of an AmlCompute pool is how many steps it
runs at once. Creating and fetching targets on the service is workspace work (later).
"""

from __future__ import annotations

from typing import Any


class AmlComputeProvisioningConfiguration:
    """What ``AmlCompute.provisioning_configuration`` returns: the pool's sizes."""

    def __init__(self, vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **kwargs: Any) -> None:
        if max_nodes < 1:
            raise ValueError("max_nodes must be at least 1")
        if min_nodes < 0 or min_nodes > max_nodes:
            raise ValueError("min_nodes must be between 0 and max_nodes")
        self.vm_size = vm_size
        self.min_nodes = min_nodes
        self.max_nodes = max_nodes
        self.extra = dict(kwargs)


class ComputeTarget:
    """A compute target, known by name.

    Args:
        workspace: the workspace it belongs to (may be None while building pipelines offline).
        name: the target's name.
    """

    _compute_type = "Unknown"

    def __init__(self, workspace: Any, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Compute target name must be a non-empty string")
        self.workspace = workspace
        self.name = name

    @property
    def type(self) -> str:
        """The compute type, e.g. ``"AmlCompute"``."""
        return self._compute_type

    @staticmethod
    def create(workspace: Any, name: str, provisioning_configuration: Any) -> ComputeTarget:
        """Create (or update) a target through the workspace.

        Raises:
            NotImplementedError: the workspace cannot create compute targets.
        """
        create = getattr(workspace, "_create_compute_target", None)
        if create is None:
            raise NotImplementedError("this workspace object cannot create compute targets")
        result: ComputeTarget = create(name, provisioning_configuration)
        return result

    def wait_for_completion(self, show_output: bool = False, **kwargs: Any) -> None:
        """Targets are ready when created; kept for azureml compatibility."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AmlCompute(ComputeTarget):
    """A pool of workers that runs at most ``max_nodes`` steps at once."""

    _compute_type = "AmlCompute"

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "", min_nodes: int = 0, max_nodes: int = 4, **kwargs: Any
    ) -> AmlComputeProvisioningConfiguration:
        """A configuration for ``ComputeTarget.create``; ``max_nodes`` is the pool's concurrency."""
        return AmlComputeProvisioningConfiguration(vm_size=vm_size, min_nodes=min_nodes, max_nodes=max_nodes, **kwargs)
