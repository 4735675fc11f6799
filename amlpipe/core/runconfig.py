"""RunConfiguration: how a step's script runs (azureml.core.runconfig)."""

from __future__ import annotations

from typing import Any

from amlpipe.core.environment import CondaDependencies, Environment


class RunConfiguration:
    """Settings for a script run: environment, target, environment variables, framework, nodes.

    Args:
        script: the script to run (steps set their own; kept for azureml compatibility).
        arguments: script arguments (idem).
        framework: the framework; only ``"Python"`` runs here.
        communicator: accepted for compatibility; ignored.
        conda_dependencies: packages for a fresh inline environment.
        command: a command line (idem).
    """

    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: str | list[str] | None = None,
    ) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.command = command
        self.environment = Environment("amlpipe-default")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.target: Any = "local"
        self.node_count = 1
        self.max_run_duration_seconds: int | None = None
        self._environment_variables: dict[str, str] = {}

    @property
    def environment_variables(self) -> dict[str, str]:
        """Variables set for the script's process (a live dict: edit it in place or assign)."""
        return self._environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self._environment_variables = dict(value)

    def __repr__(self) -> str:
        return f"RunConfiguration(environment={self.environment!r}, target={self.target!r})"
