"""CommandStep: run a command line (azureml.pipeline.steps.command_step)."""

from __future__ import annotations

from typing import Any

from amlpipe.core.runconfig import RunConfiguration
from amlpipe.pipeline.core._step import PipelineStep


class CommandStep(PipelineStep):
    """Run a command in ``source_directory``.

    Args:
        command: a command line string, or a list mixing strings with PipelineData, PipelineParameter
            and inputs (each replaced by its path or value). Defaults to ``runconfig.command``.
        name: the step's name; defaults to the command's first word.
        compute_target: a name, a compute target object or a ``(name, type)`` tuple.
        runconfig: the run configuration.
        runconfig_pipeline_params: run settings overridden by PipelineParameters.
        inputs: the step's inputs.
        outputs: the PipelineData it writes.
        params: values passed as ``AML_PARAMETER_<name>`` environment variables.
        source_directory: the folder snapshotted for the step.
        allow_reuse: whether an identical earlier run may be reused (default True).
        version: a tag that changes the step's fingerprint.

    Raises:
        ValueError: no command is given.
    """

    _kind = "command"

    def __init__(
        self,
        command: str | list[Any] | None = None,
        name: str | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | None = None,
        runconfig_pipeline_params: dict[str, Any] | None = None,
        inputs: list[Any] | None = None,
        outputs: list[Any] | None = None,
        params: dict[str, Any] | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
    ) -> None:
        if command is None and runconfig is not None:
            command = runconfig.command
        if not command:
            raise ValueError("command is required: give it directly or through runconfig.command")
        if not isinstance(command, str | list):
            raise ValueError(f"command must be a string or a list, got {type(command).__name__}")
        if isinstance(command, str) and not command.strip():
            raise ValueError("command is blank: give the command line to run")
        first = command.split()[0] if isinstance(command, str) else str(command[0])
        super().__init__(name or first, inputs, outputs)
        self._command = command if isinstance(command, str) else list(command)
        self._source_directory = source_directory
        self._compute_target = compute_target
        self._runconfig = runconfig
        self._allow_reuse = allow_reuse
        self._version = version
        self._set_params(params, runconfig_pipeline_params)
