"""amlpipe.pipeline.steps: the step types (azureml.pipeline.steps)."""

from __future__ import annotations

from amlpipe.pipeline.steps._command_step import CommandStep
from amlpipe.pipeline.steps._data_transfer_step import DataTransferStep
from amlpipe.pipeline.steps._estimator_step import EstimatorStep
from amlpipe.pipeline.steps._python_script_step import PythonScriptStep

__all__ = ["CommandStep", "DataTransferStep", "EstimatorStep", "PythonScriptStep"]
