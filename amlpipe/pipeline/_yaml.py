"""Pipelines defined in YAML: ``pipeline_from_yaml(path, workspace)`` (amlpipe's addition to azureml's names).

    pipeline = pipeline_from_yaml("pipeline.yml", ws)
    pipeline.publish(name="training")

The file is read with PyYAML's safe loading (``_yaml_read.py``): plain values only, a tag that would
build an object (``!!python/object``...) is refused before anything is constructed. Its keys are
checked against the schema (``_yaml_schema.py``), then it is turned into the SDK objects a Python file
would build —
PipelineParameter, PipelineData, DataReference, datasets from ``Dataset.get_by_name``,
RunConfiguration, Environment, Estimator, the steps and the Pipeline — so the SDK's own checks apply
and publishing it sends the graph the Python would. Relative paths are relative to the file's folder.

Every problem found is reported at once, each with its YAML path and line::

    pipeline.yml:14: steps[1].arguments[3]: unknown PipelineData 'prep'; defined: prepped
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError

from amlpipe.core.dataset import Dataset
from amlpipe.core.environment import CondaDependencies, Environment
from amlpipe.core.runconfig import RunConfiguration
from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.data.dataset_consumption_config import DatasetConsumptionConfig
from amlpipe.exceptions import UserErrorException
from amlpipe.pipeline import _yaml_schema as s
from amlpipe.pipeline._yaml_read import (
    PipelineYamlError,
    YamlPath,
    YamlProblem,
    explain,
    read_yaml,
    show_path,
    show_value,
)
from amlpipe.pipeline.core._builder import PipelineData
from amlpipe.pipeline.core._parameter import PipelineParameter
from amlpipe.pipeline.core._pipeline import Pipeline
from amlpipe.pipeline.core._step import PipelineStep
from amlpipe.pipeline.steps import CommandStep, DataTransferStep, EstimatorStep, PythonScriptStep
from amlpipe.train.estimator import Estimator

__all__ = ["PipelineYamlError", "YamlProblem", "pipeline_from_yaml"]

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def pipeline_from_yaml(path: str | os.PathLike[str], workspace: Any, *, allow_paths_outside: bool = False) -> Pipeline:
    """The Pipeline a YAML pipeline file describes (schema: docs/pipeline-yaml.md).

    Args:
        path: the file. Relative paths in it (``source_directory``, environment files) are relative
            to its folder, which is also the default ``default_source_directory``.
        allow_paths_outside: let those paths lead outside the file's folder (by default a problem:
            what they name is uploaded or read into the published graph).
        workspace: the workspace the pipeline is for; ``datasets`` are looked up in it with
            ``Dataset.get_by_name``.

    Raises:
        PipelineYamlError: the file is not YAML, breaks the schema, names something it does not
            declare, or the SDK refuses a value (a dataset that does not exist, a bad name, ...).
        OSError: the file cannot be read.
        ServiceException: the service failed a dataset lookup for another reason than its absence.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineYamlError(str(path), [YamlProblem("", None, f"not UTF-8 text ({exc.reason})")]) from exc
    return pipeline_from_text(
        text, workspace, folder=file.resolve().parent, source=str(path), allow_paths_outside=allow_paths_outside
    )


def pipeline_from_text(
    text: str, workspace: Any, *, folder: Path, source: str = "<yaml>", allow_paths_outside: bool = False
) -> Pipeline:
    """The Pipeline of YAML ``text`` whose relative paths are relative to ``folder``.

    Raises:
        PipelineYamlError: as ``pipeline_from_yaml``; ``source`` names the text in messages.
    """
    data, lines = read_yaml(text, source)
    builder = _Builder(workspace, folder.resolve(), lines, allow_outside=allow_paths_outside)
    spec = builder.check(s.PipelineFileSpec, data, ())
    raw_steps = data.get("steps") if isinstance(data, dict) else None
    # Each step is checked even when another section is wrong: one pass reports every problem.
    steps = [builder.step_spec(i, raw) for i, raw in enumerate(raw_steps if isinstance(raw_steps, list) else [])]
    if spec is None or builder.problems:
        raise PipelineYamlError(source, builder.problems)
    pipeline = builder.build(spec, steps)
    if pipeline is None or builder.problems:
        raise PipelineYamlError(source, builder.problems)
    return pipeline


# -- building --------------------------------------------------------------------------------------

Where = Literal["argument", "input", "output", "param", "runconfig_param", "source", "destination"]

#: What each place takes: "literal" (a string, number or true/false) and reference kinds.
_ALLOWED: dict[Where, tuple[str, ...]] = {
    "argument": ("literal", "data", "parameter", "dataset", "data_reference"),
    "input": ("data", "parameter", "dataset", "data_reference"),
    "output": ("data",),
    "param": ("literal", "parameter"),
    "runconfig_param": ("parameter",),
    "source": ("data", "data_reference"),
    "destination": ("data", "data_reference"),
}
_PLACE: dict[Where, str] = {
    "argument": "an argument",
    "input": "an input",
    "output": "an output",
    "param": "a params value",
    "runconfig_param": "a runconfig_pipeline_params value",
    "source": "source_data_reference",
    "destination": "destination_data_reference",
}
_FORM = {
    "literal": "a string, number or true/false",
    "data": "{data: NAME}",
    "parameter": "{parameter: NAME}",
    "dataset": "{dataset: NAME}",
    "data_reference": "{data_reference: NAME}",
}


class _Builder:
    """Turns a checked document into SDK objects, recording each problem with its YAML path."""

    def __init__(
        self, workspace: Any, folder: Path, lines: dict[YamlPath, int], *, allow_outside: bool = False
    ) -> None:
        self.workspace = workspace
        self.folder = folder
        self.allow_outside = allow_outside
        self.lines = lines
        self.problems: list[YamlProblem] = []
        # None marks a declaration the SDK refused (reported once, where it is declared).
        self.parameters: dict[str, PipelineParameter | None] = {}
        self.data: dict[str, PipelineData | None] = {}
        self.datasets: dict[str, DatasetConsumptionConfig | None] = {}
        self.references: dict[str, DataReference | None] = {}
        self._refused_uses = 0  # references to those: no new problem, but the step cannot be built

    def _mark(self) -> int:
        """Grows whenever something could not be made: a step is built only if it did not grow."""
        return len(self.problems) + self._refused_uses

    # -- recording problems

    def problem(self, path: YamlPath, message: str) -> None:
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), None)
        self.problems.append(YamlProblem(show_path(path), line, message))

    def check(self, model: type[M], value: Any, path: YamlPath) -> M | None:
        """``value`` as ``model``, or None with its problems recorded."""
        if value is None and model is s.PipelineFileSpec:
            self.problem(path, "the file holds no mapping; it needs at least steps:")
            return None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(part for part in error["loc"] if part != "[key]")
                self.problem((*path, *loc), explain(model, loc, error))
            return None

    def sdk(self, path: YamlPath, make: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``make(*args, **kwargs)``, or None with the SDK's refusal recorded at ``path``."""
        try:
            return make(*args, **kwargs)
        except OSError as exc:  # an environment or requirements file
            self.problem(path, f"{exc.filename}: {exc.strerror or type(exc).__name__}")
        except (ValueError, UserErrorException) as exc:
            self.problem(path, str(exc))
        return None

    def local(self, value: str, where: YamlPath) -> str:
        """``value`` relative to the file's folder (an absolute one as it is).

        Unless the builder allows paths outside, it must stay inside the file's folder, symlinks
        resolved: the folders and files a YAML file names are uploaded or read into the published
        graph, and a pipeline file must not reach the rest of the machine it is published from
        (``source_directory: /`` would upload it).
        """
        joined = self.folder / value
        if not self.allow_outside:
            resolved = joined.resolve()
            if resolved != self.folder and self.folder not in resolved.parents:
                self.problem(
                    where,
                    f"{value!r} leads outside the YAML file's folder {self.folder}: keep what it names under"
                    " that folder, or publish with --allow-paths-outside (allow_paths_outside=True)",
                )
        return os.path.normpath(joined)

    # -- the document

    def step_spec(self, index: int, raw: Any) -> s.AnyStepSpec | None:
        path: YamlPath = ("steps", index)
        kinds = ", ".join(s.STEP_KINDS)
        if not isinstance(raw, dict):
            self.problem(path, f"a step is a mapping with a kind ({kinds}); not {show_value(raw)}")
            return None
        if "kind" not in raw:
            self.problem((*path, "kind"), f"required key is missing; one of: {kinds}")
            return None
        model = s.STEP_KINDS.get(raw["kind"]) if isinstance(raw["kind"], str) else None
        if model is None:
            self.problem((*path, "kind"), f"unknown step kind {show_value(raw['kind'])}; expected one of: {kinds}")
            return None
        return self.check(model, raw, path)

    def build(self, spec: s.PipelineFileSpec, step_specs: list[s.AnyStepSpec | None]) -> Pipeline | None:
        for name, value in spec.parameters.items():
            self.parameters[name] = self._parameter(name, value)
        for name, data in spec.data.items():
            self.data[name] = self._pipeline_data(name, data or s.PipelineDataSpec())
        for name, reference in spec.data_references.items():
            self.references[name] = self.sdk(
                ("data_references", name),
                DataReference,
                datastore=reference.datastore,
                data_reference_name=name,
                path_on_datastore=reference.path_on_datastore,
                mode=reference.mode,
                path_on_compute=reference.path_on_compute,
                overwrite=reference.overwrite,
            )
        for name, dataset in spec.datasets.items():
            self.datasets[name] = self._dataset(name, dataset)
        steps = [self._step(i, step) if step is not None else None for i, step in enumerate(step_specs)]
        built = self._order(step_specs, steps)
        if self.problems:
            return None
        options = spec.pipeline or s.PipelineSpec()
        default_folder = options.default_source_directory
        return self.sdk(
            ("pipeline",),
            Pipeline,
            self.workspace,
            built,
            description=options.description,
            default_datastore=options.default_datastore,
            default_source_directory=(
                self.local(default_folder, ("pipeline", "default_source_directory"))
                if default_folder
                else str(self.folder)
            ),
        )

    def _parameter(self, name: str, value: Any) -> PipelineParameter | None:
        path: YamlPath = ("parameters", name)
        default: Any
        if isinstance(value, dict):
            datapath = self.check(s.DataPathSpec, value, path)
            if datapath is None:
                return None
            default = self.sdk(path, DataPath, datapath.datastore, datapath.path_on_datastore)
            if default is None:
                return None
        elif isinstance(value, str | int | float):
            default = value
        else:
            self.problem(
                path,
                "a parameter's default is a string, a number, true/false, or a DataPath "
                f"{{datastore: NAME, path_on_datastore: PATH}}; not {show_value(value)}",
            )
            return None
        return self.sdk(path, PipelineParameter, name, default)

    def _pipeline_data(self, name: str, spec: s.PipelineDataSpec) -> PipelineData | None:
        return self.sdk(
            ("data", name),
            PipelineData,
            name,
            datastore=spec.datastore,
            output_name=spec.output_name,
            output_mode=spec.output_mode,
            output_path_on_compute=spec.output_path_on_compute,
            output_overwrite=spec.output_overwrite,
            is_directory=spec.is_directory,
            pipeline_output_name=spec.pipeline_output_name,
        )

    def _dataset(self, name: str, spec: s.DatasetSpec) -> DatasetConsumptionConfig | None:
        path: YamlPath = ("datasets", name)
        dataset = self.sdk((*path, "name"), Dataset.get_by_name, self.workspace, spec.name, spec.version)
        if dataset is None:
            return None
        named = self.sdk(path, dataset.as_named_input, name)
        if named is None or spec.mode == "direct":
            return named
        if spec.mode == "mount":
            return named.as_mount(spec.path_on_compute)
        return named.as_download(spec.path_on_compute)

    # -- steps

    def _step(self, index: int, spec: s.AnyStepSpec) -> PipelineStep | None:
        path: YamlPath = ("steps", index)
        before = self._mark()
        if isinstance(spec, s.DataTransferStepSpec):
            source = self._item(spec.source_data_reference, (*path, "source_data_reference"), "source")
            destination = self._item(
                spec.destination_data_reference, (*path, "destination_data_reference"), "destination"
            )
            if self._mark() > before:
                return None
            return self.sdk(
                path,
                DataTransferStep,
                spec.name,
                source_data_reference=source,
                destination_data_reference=destination,
                compute_target=spec.compute_target,
                source_reference_type=spec.source_reference_type,
                destination_reference_type=spec.destination_reference_type,
                allow_reuse=spec.allow_reuse,
            )
        inputs = self._items(spec.inputs, (*path, "inputs"), "input")
        outputs = self._items(spec.outputs, (*path, "outputs"), "output")
        overrides = {
            key: self._item(value, (*path, "runconfig_pipeline_params", key), "runconfig_param")
            for key, value in spec.runconfig_pipeline_params.items()
        }
        if isinstance(spec, s.EstimatorStepSpec):
            arguments = self._items(
                spec.estimator_entry_script_arguments, (*path, "estimator_entry_script_arguments"), "argument"
            )
            estimator = self._estimator(spec.estimator, (*path, "estimator"))
            if self._mark() > before:
                return None
            return self.sdk(
                path,
                EstimatorStep,
                name=spec.name,
                estimator=estimator,
                estimator_entry_script_arguments=arguments,
                runconfig_pipeline_params=overrides,
                inputs=inputs,
                outputs=outputs,
                compute_target=spec.compute_target,
                allow_reuse=spec.allow_reuse,
                version=spec.version,
            )
        params = {key: self._item(value, (*path, "params", key), "param") for key, value in spec.params.items()}
        runconfig = self._runconfig(spec.runconfig, (*path, "runconfig")) if spec.runconfig is not None else None
        source_directory = (
            self.local(spec.source_directory, (*path, "source_directory")) if spec.source_directory else None
        )
        if self._mark() > before:
            return None
        if isinstance(spec, s.CommandStepSpec):
            command = spec.command
            if isinstance(command, list):
                command = self._items(command, (*path, "command"), "argument")
                if self._mark() > before:
                    return None
            return self.sdk(
                path,
                CommandStep,
                command=command,
                name=spec.name,
                compute_target=spec.compute_target,
                runconfig=runconfig,
                runconfig_pipeline_params=overrides,
                inputs=inputs,
                outputs=outputs,
                params=params,
                source_directory=source_directory,
                allow_reuse=spec.allow_reuse,
                version=spec.version,
            )
        arguments = self._items(spec.arguments, (*path, "arguments"), "argument")
        if self._mark() > before:
            return None
        return self.sdk(
            path,
            PythonScriptStep,
            spec.script_name,
            name=spec.name,
            arguments=arguments,
            compute_target=spec.compute_target,
            runconfig=runconfig,
            runconfig_pipeline_params=overrides,
            inputs=inputs,
            outputs=outputs,
            params=params,
            source_directory=source_directory,
            allow_reuse=spec.allow_reuse,
            version=spec.version,
        )

    def _order(self, specs: list[s.AnyStepSpec | None], steps: list[PipelineStep | None]) -> list[PipelineStep]:
        """Unique names, then ``run_after`` and ``retry_settings``; the steps that were built."""
        index: dict[str, int] = {}
        for i, step in enumerate(steps):
            if step is None:
                continue
            if step.name in index:
                self.problem(
                    ("steps", i, "name"),
                    f"step name {step.name!r} is also the name of steps[{index[step.name]}]; step names are unique",
                )
            else:
                index[step.name] = i
        for i, (spec, step) in enumerate(zip(specs, steps, strict=True)):
            if spec is None or step is None:
                continue
            for j, other in enumerate(spec.run_after):
                if other not in index:
                    known = ", ".join(repr(name) for name in index)
                    self.problem(("steps", i, "run_after", j), f"unknown step {other!r}; steps: {known}")
                    continue
                earlier = steps[index[other]]
                assert earlier is not None  # only built steps are indexed
                step.run_after(earlier)
            if spec.retry_settings is not None:
                retry = spec.retry_settings
                self.sdk(
                    ("steps", i, "retry_settings"), step.set_retry_settings, retry.max_retries, retry.backoff_seconds
                )
        return [step for step in steps if step is not None]

    def _estimator(self, spec: s.EstimatorSpec, path: YamlPath) -> Estimator | None:
        environment = None
        if spec.environment_definition is not None:
            environment = self._environment(spec.environment_definition, (*path, "environment_definition"))
            if environment is None:
                return None
        return self.sdk(
            path,
            Estimator,
            self.local(spec.source_directory, (*path, "source_directory")),
            compute_target=spec.compute_target,
            entry_script=spec.entry_script,
            node_count=spec.node_count,
            conda_packages=list(spec.conda_packages),
            pip_packages=list(spec.pip_packages),
            conda_dependencies_file=spec.conda_dependencies_file,
            pip_requirements_file=spec.pip_requirements_file,
            environment_variables=dict(spec.environment_variables),
            environment_definition=environment,
            max_run_duration_seconds=spec.max_run_duration_seconds,
        )

    def _runconfig(self, spec: s.RunConfigSpec, path: YamlPath) -> RunConfiguration | None:
        environment = None
        if spec.environment is not None:
            environment = self._environment(spec.environment, (*path, "environment"))
            if environment is None:
                return None
        runconfig = self.sdk(path, RunConfiguration, framework=spec.framework)
        if runconfig is None:
            return None
        if environment is not None:
            runconfig.environment = environment
        if spec.target is not None:
            runconfig.target = spec.target
        runconfig.node_count = spec.node_count
        runconfig.max_run_duration_seconds = spec.max_run_duration_seconds
        runconfig.environment_variables = dict(spec.environment_variables)
        return runconfig

    def _environment(self, spec: s.EnvironmentSpec, path: YamlPath) -> Environment | None:
        environment: Environment | None
        if spec.pip_requirements_file is not None:
            environment = self.sdk(
                (*path, "pip_requirements_file"),
                Environment.from_pip_requirements,
                spec.name,
                self.local(spec.pip_requirements_file, (*path, "pip_requirements_file")),
            )
        elif spec.conda_specification_file is not None:
            environment = self.sdk(
                (*path, "conda_specification_file"),
                Environment.from_conda_specification,
                spec.name,
                self.local(spec.conda_specification_file, (*path, "conda_specification_file")),
            )
        else:
            environment = self.sdk(path, Environment, spec.name)
            deps = spec.conda_dependencies
            if environment is not None and deps is not None:
                environment.python.conda_dependencies = CondaDependencies(
                    conda_packages=list(deps.conda_packages),
                    pip_packages=list(deps.pip_packages),
                    python_version=deps.python_version,
                    channels=list(deps.channels),
                )
        if environment is not None:
            environment.version = spec.version
            environment.environment_variables = dict(spec.environment_variables)
        return environment

    # -- references

    def _items(self, values: list[Any], path: YamlPath, where: Where) -> list[Any]:
        return [self._item(value, (*path, i), where) for i, value in enumerate(values)]

    def _item(self, value: Any, path: YamlPath, where: Where) -> Any:
        """The SDK object ``value`` stands for at a ``where`` place; None (recorded) when it is wrong."""
        allowed = _ALLOWED[where]
        forms = ", ".join(_FORM[kind] for kind in allowed)
        if isinstance(value, dict):
            named = [kind for kind in s.REFERENCE_KINDS if kind in value]
            if len(named) != 1:
                keys = ", ".join(repr(k) for k in (named or value))
                self.problem(path, f"a reference names one thing, with one of: {forms}; got the keys {keys}")
                return None
            kind = named[0]
            if kind not in allowed:
                self.problem(path, f"{_PLACE[where]} cannot be {_FORM[kind]}; it is one of: {forms}")
                return None
            ref = self.check(s.REFERENCE_KINDS[kind], value, path)
            if isinstance(ref, s.DataRef):
                return self._data_ref(ref, path, where)
            if isinstance(ref, s.ParameterRef):
                return self._parameter_ref(ref, path, where)
            if isinstance(ref, s.DatasetRef):
                return self._declared(self.datasets, ref.dataset, "dataset", "datasets", path)
            if isinstance(ref, s.DataReferenceRef):
                return self._declared(self.references, ref.data_reference, "data reference", "data_references", path)
            return None
        if "literal" in allowed and isinstance(value, str | int | float):
            return value
        self.problem(path, f"{_PLACE[where]} is one of: {forms}; not {show_value(value)}")
        return None

    def _declared(self, table: dict[str, T | None], name: str, what: str, section: str, path: YamlPath) -> T | None:
        if name not in table:
            defined = ", ".join(sorted(table)) or f"none (declare it under {section}:)"
            self.problem(path, f"unknown {what} {name!r}; defined: {defined}")
            return None
        if table[name] is None:
            self._refused_uses += 1
        return table[name]

    def _data_ref(self, ref: s.DataRef, path: YamlPath, where: Where) -> Any:
        data = self._declared(self.data, ref.data, "PipelineData", "data", path)
        if data is None or not ref.is_view:
            return data
        if where not in ("argument", "input", "source"):
            self.problem(path, "mode, input_name, path_on_compute and overwrite are for data read as an input")
            return None
        if ref.mode == "download":
            return self.sdk(path, data.as_download, ref.input_name, ref.path_on_compute, ref.overwrite)
        if ref.path_on_compute is not None or ref.overwrite is not None:
            self.problem(path, "path_on_compute and overwrite need mode: download")
            return None
        return self.sdk(path, data.as_mount, ref.input_name)

    def _parameter_ref(self, ref: s.ParameterRef, path: YamlPath, where: Where) -> Any:
        parameter = self._declared(self.parameters, ref.parameter, "PipelineParameter", "parameters", path)
        if parameter is None:
            return None
        if where != "input" and not ref.has_binding:
            return parameter
        if where not in ("input", "argument"):
            self.problem(path, "mode, path_on_compute and overwrite are for a datapath parameter read as an input")
            return None
        if not isinstance(parameter.default_value, DataPath):
            self.problem(
                path,
                f"parameter {parameter.name!r} is of type {parameter.type}; only a datapath parameter "
                "(default {datastore, path_on_datastore}) is read as an input",
            )
            return None
        binding = self.sdk(path, DataPathComputeBinding, ref.mode or "mount", ref.path_on_compute, bool(ref.overwrite))
        return None if binding is None else (parameter, binding)
