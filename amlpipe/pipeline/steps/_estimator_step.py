"""EstimatorStep: run an Estimator's entry script (azureml.pipeline.steps.estimator_step; deprecated there)."""

from __future__ import annotations

from typing import Any

from amlpipe.pipeline.core._step import PipelineStep
from amlpipe.train.estimator import Estimator


class EstimatorStep(PipelineStep):
    """Run ``estimator``'s entry script with its environment, in its source directory.

    Args:
        name: the step's name; defaults to the entry script.
        estimator: the Estimator.
        estimator_entry_script_arguments: command-line arguments (required; ``[]`` for none).
        runconfig_pipeline_params: run settings overridden by PipelineParameters.
        inputs: the step's inputs.
        outputs: the PipelineData it writes.
        compute_target: a name, object or ``(name, type)`` tuple; defaults to the estimator's.
        allow_reuse: whether an identical earlier run may be reused (default True).
        version: a tag that changes the step's fingerprint.

    Raises:
        ValueError: no estimator, no argument list, or an estimator carrying ``script_params``/``inputs``.
    """

    _kind = "estimator"

    def __init__(
        self,
        name: str | None = None,
        estimator: Estimator | None = None,
        estimator_entry_script_arguments: list[Any] | None = None,
        runconfig_pipeline_params: dict[str, Any] | None = None,
        inputs: list[Any] | None = None,
        outputs: list[Any] | None = None,
        compute_target: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
    ) -> None:
        if not isinstance(estimator, Estimator):
            raise ValueError("estimator is required and must be an amlpipe.train.estimator.Estimator")
        if estimator_entry_script_arguments is None:
            raise ValueError(
                "estimator_entry_script_arguments is a required parameter. If the estimator script does not "
                "accept commandline arguments, set the parameter value to empty list"
            )
        if estimator.script_params:
            raise ValueError(
                "script_params in Estimator should not be provided to EstimatorStep. "
                "Please use estimator_entry_script_arguments instead."
            )
        if estimator.inputs:
            raise ValueError("inputs in Estimator should not be provided to EstimatorStep. Please use inputs instead.")
        super().__init__(name or estimator.entry_script, inputs, outputs, estimator_entry_script_arguments)
        self._estimator = estimator
        self._script_name = estimator.entry_script
        self._source_directory = estimator.source_directory
        self._compute_target = compute_target if compute_target is not None else estimator.compute_target
        self._runconfig = estimator.run_config
        self._allow_reuse = allow_reuse
        self._version = version
        self._set_params(None, runconfig_pipeline_params)
