"""PipelineParameter: a value a run may override (azureml.pipeline.core.graph.PipelineParameter)."""

from __future__ import annotations

from typing import Any

from amlpipe.data.datapath import DataPath
from shared.graph.validate import parameter_env_name


def _is_dataset(value: Any) -> bool:
    return isinstance(getattr(value, "name", None), str) and hasattr(value, "version")


class PipelineParameter:
    """A named parameter with a default; runs override it through ``pipeline_parameters`` or REST.

    Args:
        name: the parameter's name.
        default_value: an ``int``, ``str`` (one line), ``bool``, ``float``, ``DataPath`` or a dataset
            (any object with ``.name`` and ``.version``).

    Raises:
        ValueError: the default is of another type, or a string spanning several lines.
    """

    def __init__(self, name: str, default_value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("PipelineParameter name must be a non-empty string")
        if not isinstance(default_value, int | str | bool | float | DataPath) and not _is_dataset(default_value):
            raise ValueError(f"Default value is of unsupported type: {type(default_value).__name__}")
        if isinstance(default_value, str) and ("\n" in default_value or "\r" in default_value):
            raise ValueError(
                f"Default value of PipelineParameter {name!r} is a multi-line string, which is not allowed"
            )
        self.name = name
        self.default_value = default_value

    @property
    def type(self) -> str:
        """The wire type: ``string``, ``int``, ``float``, ``bool``, ``datapath`` or ``dataset``."""
        value = self.default_value
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, int):
            return "int"
        if isinstance(value, float):
            return "float"
        if isinstance(value, str):
            return "string"
        if isinstance(value, DataPath):
            return "datapath"
        return "dataset"

    def get_env_variable_name(self) -> str:
        """``AML_PARAMETER_<name>``, characters outside ``[A-Za-z0-9_]`` replaced by ``_``."""
        return parameter_env_name(self.name)

    def __str__(self) -> str:
        return "$" + self.get_env_variable_name()

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"
