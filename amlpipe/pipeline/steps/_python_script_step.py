"""PythonScriptStep: run a Python script (azureml.pipeline.steps.python_script_step)."""

from __future__ import annotations

import warnings
from typing import Any

from amlpipe.core.runconfig import RunConfiguration
from amlpipe.pipeline.core._step import PipelineStep


class PythonScriptStep(PipelineStep):
    """Run ``script_name`` from ``source_directory`` on a compute target.

    Args:
        script_name: the script, relative to ``source_directory``.
        name: the step's name; defaults to ``script_name``.
        arguments: command-line arguments: literals, PipelineData, PipelineParameter, inputs.
        compute_target: a name, a compute target object or a ``(name, type)`` tuple; when None,
            ``runconfig.target``; when that is unset too, the workspace default.
        runconfig: the run configuration (environment, variables); a default one when None.
        runconfig_pipeline_params: run settings overridden by PipelineParameters (``NodeCount``...).
        inputs: the step's inputs.
        outputs: the PipelineData it writes.
        params: values passed as ``AML_PARAMETER_<name>`` environment variables.
        source_directory: the folder snapshotted for the step.
        allow_reuse: whether an identical earlier run may be reused (default True).
        version: a tag that changes the step's fingerprint.
        hash_paths: deprecated; the whole ``source_directory`` is hashed.

    Raises:
        ValueError: ``script_name`` is not a string, or arguments break the rules.
    """

    _kind = "python_script"

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: list[Any] | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | None = None,
        runconfig_pipeline_params: dict[str, Any] | None = None,
        inputs: list[Any] | None = None,
        outputs: list[Any] | None = None,
        params: dict[str, Any] | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list[str] | None = None,
    ) -> None:
        if not isinstance(script_name, str):
            raise ValueError(f"script_name must be a str, got {type(script_name).__name__}")
        if hash_paths:
            warnings.warn(
                "hash_paths is deprecated; the whole source_directory is hashed (minus .amlignore/.gitignore)",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(name or script_name, inputs, outputs, arguments)
        self._script_name = script_name
        self._source_directory = source_directory
        self._compute_target = compute_target
        self._runconfig = runconfig
        self._allow_reuse = allow_reuse
        self._version = version
        self._set_params(params, runconfig_pipeline_params)
