"""Turning SDK objects (data, parameters, run configurations) into wire-model pieces."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from amlpipe.core.environment import Environment
from amlpipe.core.runconfig import RunConfiguration
from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.data.dataset_consumption_config import DatasetConsumptionConfig
from amlpipe.pipeline.core._builder import InputPortBinding, PipelineData
from amlpipe.pipeline.core._parameter import PipelineParameter
from shared.graph import model as m

AddInput = Callable[[m.StepInput], None]

_DEFAULT_ENVIRONMENT = "amlpipe-default"
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class ParameterTable:
    """The pipeline parameters met while converting steps; one definition per name."""

    def __init__(self) -> None:
        self._found: dict[str, PipelineParameter] = {}

    def add(self, param: PipelineParameter) -> str:
        """Record ``param`` and return its name.

        Raises:
            ValueError: another parameter of that name has a different default.
        """
        seen = self._found.get(param.name)
        if seen is None:
            self._found[param.name] = param
        elif seen is not param and _default_key(seen) != _default_key(param):
            raise ValueError(
                f"PipelineParameter {param.name!r} is used with two different default values "
                f"({seen.default_value!r} and {param.default_value!r}); use one PipelineParameter object"
            )
        return param.name

    def definitions(self) -> tuple[m.ParameterDef, ...]:
        """The wire definitions, sorted by name."""
        return tuple(_parameter_def(self._found[name]) for name in sorted(self._found))


def _default_key(param: PipelineParameter) -> tuple[str, Any]:
    value = param.default_value
    if isinstance(value, DataPath):
        return ("datapath", (value.datastore_name, value.path_on_datastore))
    return (param.type, value)


def _parameter_def(param: PipelineParameter) -> m.ParameterDef:
    value = param.default_value
    if isinstance(value, DataPath):
        wire: m.ParameterValue = m.DataPathValue(
            datastore=value.datastore_name, path_on_datastore=value.path_on_datastore
        )
    elif isinstance(value, bool | int | float | str):
        wire = value
    else:
        raise ValueError(
            f"PipelineParameter {param.name!r} has a dataset default; dataset parameters are not supported yet, "
            "use dataset.as_named_input(name) instead"
        )
    kind: m.ParameterType = param.type  # type: ignore[assignment]
    return m.ParameterDef(name=param.name, type=kind, default_value=wire)


def datapath_input_name(param: PipelineParameter) -> str:
    """The input name of a ``(PipelineParameter, DataPathComputeBinding)`` pair."""
    return _UNSAFE.sub("_", param.name)


def convert_input(item: Any, params: ParameterTable) -> m.StepInput:
    """The wire input for an SDK input object.

    Raises:
        ValueError: ``item`` is not an input amlpipe understands.
    """
    if isinstance(item, PipelineData):
        return m.PipelineDataInput(name=item.name, pipeline_data=item.name)
    if isinstance(item, InputPortBinding):
        return m.PipelineDataInput(
            name=item.name,
            pipeline_data=item.bind_object.name,
            mode=item.bind_mode,  # type: ignore[arg-type]
            path_on_compute=item.path_on_compute,
            overwrite=bool(item.overwrite),
        )
    if isinstance(item, DataReference):
        return m.DataReferenceInput(
            name=item.data_reference_name,
            datastore=item.datastore_name,
            path_on_datastore=item.path_on_datastore,
            mode=item.mode,  # type: ignore[arg-type]
            path_on_compute=item.path_on_compute,
            overwrite=item.overwrite,
        )
    if isinstance(item, DatasetConsumptionConfig):
        dataset = item.dataset
        if isinstance(dataset, PipelineParameter):
            raise ValueError(f"input {item.name!r}: dataset PipelineParameters are not supported yet")
        if getattr(dataset, "name", None) is None:
            raise ValueError(
                f"input {item.name!r}: the dataset is not registered; "
                "register the dataset first (ds.register(ws, name))"
            )
        version = getattr(dataset, "version", None)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            version = int(version)
        return m.DatasetInput(
            name=item.name,
            dataset_name=str(dataset.name),
            dataset_version=version,
            mode=item.mode,  # type: ignore[arg-type]
            path_on_compute=item.path_on_compute,
        )
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], PipelineParameter):
        param, binding = item
        if not isinstance(binding, DataPathComputeBinding) or not isinstance(param.default_value, DataPath):
            raise ValueError("a (PipelineParameter, DataPathComputeBinding) pair needs a DataPath default")
        params.add(param)
        return m.DataPathParameterInput(
            name=datapath_input_name(param),
            parameter=param.name,
            mode=binding.mode,  # type: ignore[arg-type]
            path_on_compute=binding.path_on_compute,
            overwrite=binding.overwrite,
        )
    raise ValueError(
        f"Unsupported input type {type(item).__name__}; use PipelineData, an InputPortBinding, a DataReference, "
        "dataset.as_named_input(name) or a (PipelineParameter, DataPathComputeBinding) pair"
    )


def convert_argument(item: Any, params: ParameterTable, outputs: set[str], add_input: AddInput) -> m.Argument:
    """The wire argument for an SDK argument, adding any input it implies through ``add_input``.

    Raises:
        ValueError: ``item`` is not an argument amlpipe understands.
    """
    if isinstance(item, PipelineParameter):
        return m.ParameterArgument(name=params.add(item))
    if isinstance(item, PipelineData):
        if item.name not in outputs:
            add_input(convert_input(item, params))
        return m.DataArgument(name=item.name)
    if isinstance(item, InputPortBinding | DataReference | DatasetConsumptionConfig | tuple):
        wire = convert_input(item, params)
        add_input(wire)
        return m.InputArgument(name=wire.name)
    if isinstance(item, str | bool | int | float):
        return m.LiteralArgument(value=str(item))
    raise ValueError(
        f"Unsupported argument type {type(item).__name__}; use strings, numbers, PipelineData, "
        "PipelineParameter or an input object"
    )


def convert_output(item: Any) -> m.PipelineDataOutput:
    """The wire output for a PipelineData.

    Raises:
        ValueError: ``item`` is not a PipelineData.
    """
    if not isinstance(item, PipelineData):
        raise ValueError(f"Unsupported output type {type(item).__name__}; outputs must be PipelineData")
    return m.PipelineDataOutput(
        name=item.name,
        output_name=item.output_name if item.output_name != item.name else None,
        datastore=item.datastore_name,
        output_mode=item.output_mode,  # type: ignore[arg-type]
        output_path_on_compute=item.output_path_on_compute,
        output_overwrite=item.output_overwrite,
        is_directory=item.is_directory,
        pipeline_output_name=item.pipeline_output_name,
    )


def convert_param_value(value: Any, params: ParameterTable) -> m.ParamValue:
    """A ``params`` value on the wire: a literal or a parameter reference.

    Raises:
        ValueError: the value is neither.
    """
    if isinstance(value, PipelineParameter):
        return m.ParameterRef(name=params.add(value))
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError(
        f"Unsupported params value type {type(value).__name__}; use str, int, float, bool or PipelineParameter"
    )


def convert_environment(env: Environment | None) -> m.EnvironmentSpec | None:
    """The wire environment; None for the untouched default environment."""
    if env is None:
        return None
    deps = env.python.conda_dependencies
    if (
        env.name == _DEFAULT_ENVIRONMENT
        and not deps.conda_packages
        and not deps.pip_packages
        and deps.python_version is None
        and not env.environment_variables
    ):
        return None
    return m.EnvironmentSpec(
        name=env.name,
        version=None if env.version is None else str(env.version),
        python_version=deps.python_version,
        conda_packages=tuple(deps.conda_packages),
        pip_packages=tuple(deps.pip_packages),
        channels=tuple(deps.conda_channels),
        environment_variables={str(k): str(v) for k, v in env.environment_variables.items()},
    )


def convert_runconfig(runconfig: RunConfiguration | None) -> m.RunConfig:
    """The wire run configuration (defaults when None)."""
    if runconfig is None:
        return m.RunConfig()
    return m.RunConfig(
        environment=convert_environment(runconfig.environment),
        environment_variables={str(k): str(v) for k, v in runconfig.environment_variables.items()},
        framework=runconfig.framework,
        node_count=runconfig.node_count,
        max_run_duration_seconds=runconfig.max_run_duration_seconds,
    )


def compute_target_name(target: Any) -> str | None:
    """A compute target's name from a name, an object with ``.name`` or a ``(name, type)`` tuple.

    Raises:
        ValueError: ``target`` is none of these.
    """
    if target is None:
        return None
    if isinstance(target, tuple):
        if len(target) != 2 or not all(isinstance(part, str) for part in target):
            raise ValueError("compute_target tuple must be (name, type), e.g. ('cpu-cluster', 'AmlCompute')")
        return str(target[0])
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return name
    raise ValueError(
        f"compute_target must be a name, a compute target or a (name, type) tuple, got {type(target).__name__}"
    )
