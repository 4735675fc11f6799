"""The schema of pipeline YAML files: one model per SDK object, its keys the SDK's argument names.

Each model checks the *shape* of one mapping of the file (known keys, types, enums); turning it into
SDK objects, and the references between its parts, is ``_yaml.py``'s work. Values are strict: a
string field takes no number (``version: 1.0`` must be quoted), an integer field takes no float.
References (``{data: NAME}``, ``{parameter: NAME}``, ``{dataset: NAME}``, ``{data_reference: NAME}``)
are held as plain values here and resolved by the builder, which knows what is declared.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The sections of a pipeline file, in the order the documentation gives them.
SECTIONS = ("pipeline", "parameters", "data", "datasets", "data_references", "steps")


class Spec(BaseModel):
    """A mapping of the file: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


#: A string that may not be empty.
Name = Annotated[str, Field(min_length=1)]


class PipelineSpec(Spec):
    """``pipeline:`` → ``Pipeline(workspace, steps, description, default_datastore, default_source_directory)``."""

    description: str | None = None
    default_datastore: str | None = None
    default_source_directory: str | None = None


class DataPathSpec(Spec):
    """A ``datapath`` parameter's default → ``DataPath(datastore, path_on_datastore)``."""

    datastore: Name
    path_on_datastore: str = ""


class PipelineDataSpec(Spec):
    """``data.NAME`` → ``PipelineData(NAME, datastore, output_name, ...)``."""

    datastore: str | None = None
    output_name: str | None = None
    output_mode: Literal["mount", "upload"] = "mount"
    output_path_on_compute: str | None = None
    output_overwrite: bool | None = None
    is_directory: bool | None = None
    pipeline_output_name: str | None = None


class DatasetSpec(Spec):
    """``datasets.NAME`` → ``Dataset.get_by_name(ws, name, version).as_named_input(NAME)`` (then
    ``.as_mount(path_on_compute)`` or ``.as_download(path_on_compute)`` for those modes)."""

    name: Name
    version: Any = "latest"
    mode: Literal["direct", "mount", "download"] = "direct"
    path_on_compute: str | None = None

    @field_validator("version")
    @classmethod
    def _a_version(cls, value: Any) -> int | str:
        if value == "latest" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value  # type: ignore[no-any-return]
        raise ValueError(f"version is a whole number from 1, or 'latest'; not {value!r}")

    @model_validator(mode="after")
    def _path_needs_a_copy(self) -> DatasetSpec:
        if self.path_on_compute is not None and self.mode == "direct":
            raise ValueError("path_on_compute needs mode: mount or mode: download")
        return self


class DataReferenceSpec(Spec):
    """``data_references.NAME`` → ``DataReference(datastore, NAME, path_on_datastore, mode, ...)``, which is
    what ``datastore.path(path_on_datastore, data_reference_name=NAME)`` returns."""

    datastore: Name
    path_on_datastore: str | None = None
    mode: Literal["mount", "download"] = "mount"
    path_on_compute: str | None = None
    overwrite: bool = False


class CondaDependenciesSpec(Spec):
    """``conda_dependencies:`` → ``CondaDependencies(conda_packages, pip_packages, python_version, channels)``."""

    conda_packages: list[str] = []
    pip_packages: list[str] = []
    python_version: str | None = None
    channels: list[str] = []


class EnvironmentSpec(Spec):
    """``environment:`` → ``Environment(name)`` with ``version``, ``environment_variables`` and its
    ``python.conda_dependencies``; or ``Environment.from_pip_requirements(name, file)`` /
    ``Environment.from_conda_specification(name, file)``."""

    name: Name
    version: str | None = None
    environment_variables: dict[str, str] = {}
    conda_dependencies: CondaDependenciesSpec | None = None
    pip_requirements_file: str | None = None
    conda_specification_file: str | None = None

    @model_validator(mode="after")
    def _one_source_of_packages(self) -> EnvironmentSpec:
        given = [
            key
            for key in ("conda_dependencies", "pip_requirements_file", "conda_specification_file")
            if getattr(self, key) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                "give one of conda_dependencies, pip_requirements_file and conda_specification_file; "
                f"got {' and '.join(given)}"
            )
        return self


class RunConfigSpec(Spec):
    """``runconfig:`` → ``RunConfiguration(framework=...)`` and its attributes ``environment``, ``target``,
    ``node_count``, ``max_run_duration_seconds`` and ``environment_variables``."""

    framework: str | None = None
    target: str | None = None
    node_count: int = Field(default=1, ge=1, le=1024)
    max_run_duration_seconds: int | None = Field(default=None, ge=1)
    environment_variables: dict[str, str] = {}
    environment: EnvironmentSpec | None = None


class RetrySpec(Spec):
    """``retry_settings:`` → ``step.set_retry_settings(max_retries, backoff_seconds)``."""

    max_retries: int
    backoff_seconds: float = 10.0


class EstimatorSpec(Spec):
    """``estimator:`` → ``Estimator(source_directory, compute_target=..., entry_script=..., ...)``."""

    source_directory: Name
    entry_script: Name
    compute_target: str | None = None
    node_count: int = Field(default=1, ge=1, le=1024)
    conda_packages: list[str] = []
    pip_packages: list[str] = []
    conda_dependencies_file: str | None = None
    pip_requirements_file: str | None = None
    environment_variables: dict[str, str] = {}
    environment_definition: EnvironmentSpec | None = None
    max_run_duration_seconds: int | None = Field(default=None, ge=1)


class StepSpec(Spec):
    """What every step takes: its kind, name, compute target, reuse, ordering and retries."""

    kind: str
    name: str | None = Field(default=None, min_length=1)
    compute_target: str | None = None
    allow_reuse: bool = True
    run_after: list[str] = []
    retry_settings: RetrySpec | None = None


class PythonScriptStepSpec(StepSpec):
    """``kind: python_script`` → ``PythonScriptStep(script_name, name, arguments, ...)``."""

    kind: Literal["python_script"]
    script_name: Name
    source_directory: str | None = None
    arguments: list[Any] = []
    inputs: list[Any] = []
    outputs: list[Any] = []
    params: dict[str, Any] = {}
    runconfig: RunConfigSpec | None = None
    runconfig_pipeline_params: dict[str, Any] = {}
    version: str | None = None


class CommandStepSpec(StepSpec):
    """``kind: command`` → ``CommandStep(command, name, ...)``; ``command`` is a string or a list."""

    kind: Literal["command"]
    command: Any

    @field_validator("command")
    @classmethod
    def _a_command(cls, value: Any) -> str | list[Any]:
        if isinstance(value, str | list):
            return value
        raise ValueError("command is a command line (a string) or a list of arguments and references")

    source_directory: str | None = None
    inputs: list[Any] = []
    outputs: list[Any] = []
    params: dict[str, Any] = {}
    runconfig: RunConfigSpec | None = None
    runconfig_pipeline_params: dict[str, Any] = {}
    version: str | None = None


class EstimatorStepSpec(StepSpec):
    """``kind: estimator`` → ``EstimatorStep(name, Estimator(...), estimator_entry_script_arguments, ...)``."""

    kind: Literal["estimator"]
    estimator: EstimatorSpec
    estimator_entry_script_arguments: list[Any]
    inputs: list[Any] = []
    outputs: list[Any] = []
    runconfig_pipeline_params: dict[str, Any] = {}
    version: str | None = None


class DataTransferStepSpec(StepSpec):
    """``kind: data_transfer`` → ``DataTransferStep(name, source_data_reference, destination_data_reference, ...)``."""

    kind: Literal["data_transfer"]
    name: Name
    source_data_reference: Any
    destination_data_reference: Any
    source_reference_type: Literal["file", "directory"] | None = None
    destination_reference_type: Literal["file", "directory"] | None = None


AnyStepSpec = PythonScriptStepSpec | CommandStepSpec | EstimatorStepSpec | DataTransferStepSpec

#: Step models by ``kind``.
STEP_KINDS: dict[str, type[AnyStepSpec]] = {
    "python_script": PythonScriptStepSpec,
    "command": CommandStepSpec,
    "estimator": EstimatorStepSpec,
    "data_transfer": DataTransferStepSpec,
}


class PipelineFileSpec(Spec):
    """The whole file. Steps are checked one by one afterwards, each by the model of its ``kind``."""

    pipeline: PipelineSpec | None = None
    parameters: dict[str, Any] = {}
    data: dict[str, PipelineDataSpec | None] = {}
    datasets: dict[str, DatasetSpec] = {}
    data_references: dict[str, DataReferenceSpec] = {}
    steps: list[Any] = Field(min_length=1)


# -- references ----------------------------------------------------------------------------------


class DataRef(Spec):
    """``{data: NAME}``: the PipelineData; with ``mode``/``input_name``/``path_on_compute``/``overwrite``,
    ``data.as_mount(input_name)`` or ``data.as_download(input_name, path_on_compute, overwrite)``."""

    data: str
    mode: Literal["mount", "download"] | None = None
    input_name: str | None = None
    path_on_compute: str | None = None
    overwrite: bool | None = None

    @property
    def is_view(self) -> bool:
        """Whether it names a way of reading the data (an ``InputPortBinding``), not the data itself."""
        return any(v is not None for v in (self.mode, self.input_name, self.path_on_compute, self.overwrite))


class ParameterRef(Spec):
    """``{parameter: NAME}``: the PipelineParameter; a datapath one with its ``DataPathComputeBinding``."""

    parameter: str
    mode: Literal["mount", "download"] | None = None
    path_on_compute: str | None = None
    overwrite: bool | None = None

    @property
    def has_binding(self) -> bool:
        """Whether a ``DataPathComputeBinding`` is spelled out."""
        return any(v is not None for v in (self.mode, self.path_on_compute, self.overwrite))


class DatasetRef(Spec):
    """``{dataset: NAME}``: the dataset input declared under ``datasets.NAME``."""

    dataset: str


class DataReferenceRef(Spec):
    """``{data_reference: NAME}``: the DataReference declared under ``data_references.NAME``."""

    data_reference: str


AnyRef = DataRef | ParameterRef | DatasetRef | DataReferenceRef

#: Reference models by their one naming key.
REFERENCE_KINDS: dict[str, type[AnyRef]] = {
    "data": DataRef,
    "parameter": ParameterRef,
    "dataset": DatasetRef,
    "data_reference": DataReferenceRef,
}
