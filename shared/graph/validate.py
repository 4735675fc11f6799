"""The rules a pipeline graph must follow beyond its schema, each problem reported with its place.

``find_problems`` is the core: it returns every broken rule as an :class:`ErrorDetail` (code, message,
target such as ``steps[2].inputs[0]``). ``validate_graph`` turns them into the list of strings
azureml's ``Pipeline.validate()`` returns; ``check_graph`` raises :class:`GraphValidationError`.

Checks that need the workspace (compute targets, datasets, datastores) run only when a
:class:`Registry` is given; whether a PipelineData's datastore can be written, only when it also
answers :class:`DatastoreWrites`. The script-in-snapshot check runs only for steps whose manifest is
known.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Protocol, runtime_checkable

from shared.errors import ErrorDetail, GraphValidationError
from shared.graph.model import (
    Argument,
    DataArgument,
    DataPathParameterInput,
    DataPathValue,
    DataReferenceInput,
    DatasetInput,
    InputArgument,
    ParameterArgument,
    ParameterDef,
    ParameterRef,
    PipelineDataInput,
    PipelineGraph,
    Step,
)

MAX_STEPS = 1000
MAX_ARGUMENTS = 256
MAX_ARGUMENT_CHARS = 4096
MAX_ARGUMENTS_TOTAL_CHARS = 32768
MAX_NAME_CHARS = 255

# azureml lets only these run settings be overridden per run by a PipelineParameter (the SDK checks the
# same tuple early; the server applies it here so a hand-written graph cannot set anything else).
RUNCONFIG_PIPELINE_PARAMS = (
    "NodeCount",
    "MpiProcessCountPerNode",
    "TensorflowWorkerCount",
    "TensorflowParameterServerCount",
)

_DATA_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class Registry(Protocol):
    """What validation asks the workspace. Implementations answer from their own store."""

    def has_compute_target(self, name: str) -> bool:
        """Whether a compute target called ``name`` exists."""
        ...

    def has_dataset(self, name: str, version: int | None) -> bool:
        """Whether dataset ``name`` exists (at ``version``, or any version when None)."""
        ...

    def has_datastore(self, name: str) -> bool:
        """Whether a datastore called ``name`` exists."""
        ...


@runtime_checkable
class DatastoreWrites(Protocol):
    """What a :class:`Registry` may also answer: whether the engine can write to a datastore (where a
    PipelineData names it). A registry without it leaves that to the step (which then fails)."""

    def datastore_write_problem(self, name: str) -> str | None:
        """Why the engine cannot write to existing datastore ``name``, as a predicate of "datastore 'x'
        ..." (``was registered with a SAS token; ...``), or None when it can."""
        ...


def parameter_env_name(name: str) -> str:
    """The environment variable carrying a parameter: ``AML_PARAMETER_`` + name, unsafe chars → ``_``."""
    return "AML_PARAMETER_" + _ENV_UNSAFE.sub("_", name)


def path_problem(value: str, *, allow_empty: bool = False) -> str | None:
    """Why ``value`` is not a safe relative POSIX path, or None when it is.

    Safe means: relative, ``/``-separated, no ``..`` segment, no backslash, NUL or drive letter, so it
    cannot escape the directory it is resolved against on any platform.
    """
    if value == "":
        return None if allow_empty else "the path is empty; give a relative path such as 'folder/file.py'"
    if "\0" in value:
        return "it contains a NUL character"
    if "\\" in value:
        return "it contains a backslash; use '/' to separate folders"
    if value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        return "it is absolute; give a path relative to the step's folder, such as 'folder/file.py'"
    if any(part == ".." for part in value.split("/")):
        return "it contains a '..' segment; paths may not leave their folder"
    if any(ord(c) < 32 for c in value):
        return "it contains control characters"
    return None


def validate_graph(
    graph: PipelineGraph,
    registry: Registry | None = None,
    *,
    manifests: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """Every rule ``graph`` breaks, as human messages; an empty list means valid.

    Args:
        graph: the graph to check.
        registry: the workspace's names; None skips the compute/dataset/datastore checks.
        manifests: step name → relative file paths of its snapshot, for steps whose snapshot is known.
    """
    return [f"{d.target}: {d.message}" if d.target else d.message for d in find_problems(graph, registry, manifests)]


def check_graph(
    graph: PipelineGraph,
    registry: Registry | None = None,
    *,
    manifests: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Raise when ``graph`` breaks any rule.

    Raises:
        GraphValidationError: with one :class:`ErrorDetail` per broken rule.
    """
    problems = find_problems(graph, registry, manifests)
    if problems:
        raise GraphValidationError(
            f"The pipeline graph is invalid: {len(problems)} problem(s). First: {problems[0].message}",
            target="graph",
            details=problems,
        )


def check_output_datastores(graph: PipelineGraph, registry: Registry) -> None:
    """Raise when a PipelineData of ``graph`` names a datastore that is gone or that the engine cannot
    write *now*: run at every submission of a stored graph (a published pipeline, an endpoint, a
    schedule's fire), whose datastores may have been unregistered or re-registered since it was checked.

    Raises:
        GraphValidationError: one :class:`ErrorDetail` per such output, targeted at its ``datastore``.
    """
    problems = [
        problem
        for i, step in enumerate(graph.steps)
        for j, output in enumerate(step.outputs)
        if output.datastore is not None
        for problem in _check_output_datastore(
            step, output.name, output.datastore, f"steps[{i}].outputs[{j}].datastore", registry
        )
    ]
    if problems:
        raise GraphValidationError(
            f"The pipeline cannot run: {len(problems)} output(s) cannot be stored. First: {problems[0].message}",
            target="graph",
            details=problems,
        )


def find_problems(
    graph: PipelineGraph,
    registry: Registry | None = None,
    manifests: Mapping[str, Collection[str]] | None = None,
) -> list[ErrorDetail]:
    """Every rule ``graph`` breaks, in document order, then graph-wide rules (cycles)."""
    out: list[ErrorDetail] = []
    out.extend(_check_pipeline(graph, registry))
    declared = {p.name: p for p in graph.parameters}
    step_names = {s.name for s in graph.steps}
    producers: dict[str, int] = {}
    pipeline_outputs: dict[str, str] = {}
    first_index: dict[str, int] = {}
    for i, step in enumerate(graph.steps):
        at = f"steps[{i}]"
        out.extend(_check_step(step, at, declared, step_names, registry))
        if step.name in first_index:
            out.append(
                ErrorDetail(
                    "DuplicateStepName",
                    f"step name {step.name!r} is already used by steps[{first_index[step.name]}]; "
                    "step names must be unique within a pipeline",
                    f"{at}.name",
                )
            )
        first_index.setdefault(step.name, i)
        manifest = (manifests or {}).get(step.name)
        if manifest is not None and step.script_name and step.script_name not in manifest:
            out.append(
                ErrorDetail(
                    "ScriptNotInSnapshot",
                    f"script_name {step.script_name!r} of step {step.name!r} is not in its source directory "
                    f"snapshot; give a path relative to the step's source_directory that is not ignored by "
                    f".amlignore/.gitignore",
                    f"{at}.script_name",
                )
            )
        for j, output in enumerate(step.outputs):
            if output.name in producers and producers[output.name] != i:
                first = graph.steps[producers[output.name]].name
                out.append(
                    ErrorDetail(
                        "DuplicateProducer",
                        f"PipelineData {output.name!r} is produced by step {first!r} and by step {step.name!r}; "
                        "a PipelineData must have exactly one producer",
                        f"{at}.outputs[{j}]",
                    )
                )
            producers.setdefault(output.name, i)
            if output.pipeline_output_name is not None:
                taken = pipeline_outputs.get(output.pipeline_output_name)
                if taken is not None:
                    out.append(
                        ErrorDetail(
                            "DuplicatePipelineOutputName",
                            f"pipeline_output_name {output.pipeline_output_name!r} is already used by step "
                            f"{taken!r}; pipeline output names must be unique across the pipeline",
                            f"{at}.outputs[{j}].pipeline_output_name",
                        )
                    )
                pipeline_outputs.setdefault(output.pipeline_output_name, step.name)
    for i, step in enumerate(graph.steps):
        for j, item in enumerate(step.inputs):
            if isinstance(item, PipelineDataInput) and item.pipeline_data not in producers:
                out.append(
                    ErrorDetail(
                        "UnconnectedInput",
                        f"input {item.name!r} of step {step.name!r} reads PipelineData {item.pipeline_data!r} "
                        "which no step produces; add it to the outputs of the step that writes it",
                        f"steps[{i}].inputs[{j}]",
                    )
                )
    out.extend(_check_cycles(graph))
    return out


def _check_pipeline(graph: PipelineGraph, registry: Registry | None) -> Iterator[ErrorDetail]:
    if len(graph.steps) == 0:
        yield ErrorDetail("EmptyPipeline", "a pipeline needs at least one step", "steps")
    if len(graph.steps) > MAX_STEPS:
        yield ErrorDetail("TooManySteps", f"a pipeline may have at most {MAX_STEPS} steps", "steps")
    if graph.default_datastore is not None:
        yield from _check_datastore(graph.default_datastore, "default_datastore", registry)
    seen: dict[str, int] = {}
    env_names: dict[str, str] = {}
    for i, param in enumerate(graph.parameters):
        at = f"parameters[{i}]"
        if param.name in seen:
            yield ErrorDetail(
                "DuplicateParameter", f"parameter {param.name!r} is declared twice; names must be unique", at
            )
        seen.setdefault(param.name, i)
        if not _PARAMETER_NAME.match(param.name) or len(param.name) > MAX_NAME_CHARS:
            yield ErrorDetail(
                "InvalidName",
                f"parameter name {param.name!r} is invalid; use letters, digits, '_', '-' and '.', starting "
                f"with a letter or '_', at most {MAX_NAME_CHARS} characters",
                f"{at}.name",
            )
        env = parameter_env_name(param.name)
        other = env_names.get(env)
        if other is not None and other != param.name:
            yield ErrorDetail(
                "ParameterNameClash",
                f"parameters {other!r} and {param.name!r} both become environment variable {env}; rename one",
                f"{at}.name",
            )
        env_names.setdefault(env, param.name)
        yield from _check_default(param, at, registry)


def _check_default(param: ParameterDef, at: str, registry: Registry | None) -> Iterator[ErrorDetail]:
    value = param.default_value
    expected = {
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "datapath": isinstance(value, DataPathValue),
    }[param.type]
    if not expected:
        yield ErrorDetail(
            "InvalidParameterDefault",
            f"default_value of parameter {param.name!r} is {type(value).__name__} but its type is "
            f"{param.type!r}; give a {_TYPE_HINT[param.type]}",
            f"{at}.default_value",
        )
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        yield ErrorDetail(
            "InvalidParameterDefault",
            f"default_value of parameter {param.name!r} spans several lines; multi-line strings are not "
            "allowed as parameter values",
            f"{at}.default_value",
        )
    if isinstance(value, DataPathValue):
        yield from _check_datastore(value.datastore, f"{at}.default_value.datastore", registry)
        yield from _check_path(value.path_on_datastore, f"{at}.default_value.path_on_datastore", allow_empty=True)


_TYPE_HINT = {
    "string": "single-line string",
    "int": "whole number",
    "float": "number",
    "bool": "true or false",
    "datapath": "object with datastore and path_on_datastore",
}


def _check_step(
    step: Step,
    at: str,
    declared: Mapping[str, ParameterDef],
    step_names: Collection[str],
    registry: Registry | None,
) -> Iterator[ErrorDetail]:
    yield from _check_step_name(step, at)
    yield from _check_kind_fields(step, at)
    if step.script_name is not None:
        yield from _check_path(step.script_name, f"{at}.script_name")
    if (
        step.compute_target is not None
        and registry is not None
        and not registry.has_compute_target(step.compute_target)
    ):
        yield ErrorDetail(
            "UnknownComputeTarget",
            f"compute_target {step.compute_target!r} of step {step.name!r} does not exist in the workspace; "
            "create it first or name an existing one",
            f"{at}.compute_target",
        )
    yield from _check_arguments(step, step.arguments, f"{at}.arguments", declared)
    if isinstance(step.command, tuple):
        yield from _check_arguments(step, step.command, f"{at}.command", declared)
    elif step.command is not None and "\0" in step.command:
        yield ErrorDetail("InvalidArgument", "command contains a NUL character", f"{at}.command")
    yield from _check_io(step, at, declared, registry)
    yield from _check_params(step, at, declared)
    for k, before in enumerate(step.run_after):
        if before not in step_names:
            yield ErrorDetail(
                "UnknownRunAfter",
                f"step {step.name!r} runs after {before!r}, which is not a step of this pipeline; "
                "name a step of the pipeline",
                f"{at}.run_after[{k}]",
            )
    if step.data_transfer is not None and step.data_transfer.destination is not None:
        dest = step.data_transfer.destination
        yield from _check_datastore(dest.datastore, f"{at}.data_transfer.destination.datastore", registry)
        if dest.path_on_datastore is not None:
            yield from _check_path(
                dest.path_on_datastore, f"{at}.data_transfer.destination.path_on_datastore", allow_empty=True
            )


def _check_step_name(step: Step, at: str) -> Iterator[ErrorDetail]:
    name = step.name
    if (
        not name
        or len(name) > MAX_NAME_CHARS
        or name != name.strip()
        or any(c in name for c in "/\\\0")
        or name in (".", "..")  # a path segment of its logs and artifacts: it would not stay one
    ):
        yield ErrorDetail(
            "InvalidName",
            f"step name {name!r} is invalid; use 1 to {MAX_NAME_CHARS} characters without '/', '\\', "
            "control characters or leading/trailing spaces, other than '.' and '..'",
            f"{at}.name",
        )
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        yield ErrorDetail(
            "InvalidName", f"step name {name!r} contains control characters; use printable characters", f"{at}.name"
        )


def _check_kind_fields(step: Step, at: str) -> Iterator[ErrorDetail]:
    needs_script = step.kind in ("python_script", "estimator")
    if needs_script and not step.script_name:
        yield ErrorDetail(
            "MissingField", f"a {step.kind} step needs script_name (the script to run)", f"{at}.script_name"
        )
    if step.kind == "command" and not step.command:
        yield ErrorDetail("MissingField", "a command step needs command (the command line to run)", f"{at}.command")
    if step.kind != "command" and step.command is not None:
        yield ErrorDetail("UnexpectedField", f"command applies only to command steps, not {step.kind}", f"{at}.command")
    if step.kind == "data_transfer":
        if step.script_name is not None:
            yield ErrorDetail("UnexpectedField", "a data_transfer step runs no script", f"{at}.script_name")
        if len(step.inputs) != 1:
            yield ErrorDetail(
                "InvalidDataTransfer", "a data_transfer step needs exactly one input (its source)", f"{at}.inputs"
            )
        has_dest = step.data_transfer is not None and step.data_transfer.destination is not None
        if has_dest == (len(step.outputs) == 1) or len(step.outputs) > 1:
            yield ErrorDetail(
                "InvalidDataTransfer",
                "a data_transfer step needs exactly one destination: data_transfer.destination or one output",
                f"{at}.outputs",
            )
    elif step.data_transfer is not None:
        yield ErrorDetail(
            "UnexpectedField",
            f"data_transfer applies only to data_transfer steps, not {step.kind}",
            f"{at}.data_transfer",
        )


def _check_arguments(
    step: Step, arguments: tuple[Argument, ...], at: str, declared: Mapping[str, ParameterDef]
) -> Iterator[ErrorDetail]:
    if len(arguments) > MAX_ARGUMENTS:
        yield ErrorDetail(
            "TooManyArguments",
            f"step {step.name!r} has {len(arguments)} arguments; at most {MAX_ARGUMENTS} are allowed "
            "(pass large configuration as a file in the source directory or an input)",
            at,
        )
    total = 0
    data_names = {o.name for o in step.outputs} | {
        i.pipeline_data for i in step.inputs if isinstance(i, PipelineDataInput)
    }
    input_names = {i.name for i in step.inputs}
    for k, arg in enumerate(arguments):
        where = f"{at}[{k}]"
        if isinstance(arg, ParameterArgument):
            yield from _check_param_ref(arg.name, declared, where)
            total += len(arg.name)
        elif isinstance(arg, DataArgument):
            total += len(arg.name)
            if arg.name not in data_names:
                yield ErrorDetail(
                    "MissingDataReference",
                    f"argument refers to PipelineData {arg.name!r}, which is neither an input nor an output of "
                    f"step {step.name!r}; add it to the step's inputs or outputs",
                    where,
                )
        elif isinstance(arg, InputArgument):
            total += len(arg.name)
            if arg.name not in input_names:
                yield ErrorDetail(
                    "MissingInput",
                    f"argument refers to input {arg.name!r}, which step {step.name!r} does not declare; "
                    f"valid input names: {sorted(input_names)}",
                    where,
                )
        else:
            total += len(arg.value)
            if len(arg.value) > MAX_ARGUMENT_CHARS:
                yield ErrorDetail(
                    "ArgumentTooLong",
                    f"argument is {len(arg.value)} characters; at most {MAX_ARGUMENT_CHARS} are allowed",
                    where,
                )
            if "\0" in arg.value:
                yield ErrorDetail("InvalidArgument", "argument contains a NUL character", where)
    if total > MAX_ARGUMENTS_TOTAL_CHARS:
        yield ErrorDetail(
            "ArgumentsTooLong",
            f"the arguments of step {step.name!r} total {total} characters; at most "
            f"{MAX_ARGUMENTS_TOTAL_CHARS} are allowed",
            at,
        )


def _check_io(
    step: Step, at: str, declared: Mapping[str, ParameterDef], registry: Registry | None
) -> Iterator[ErrorDetail]:
    names: dict[str, str] = {}
    for j, item in enumerate(step.inputs):
        where = f"{at}.inputs[{j}]"
        yield from _check_data_name(item.name, "input name", f"{where}.name")
        if item.name in names:
            yield ErrorDetail(
                "DuplicateInputName",
                f"step {step.name!r} has two inputs/outputs named {item.name!r}; names must be unique within a step",
                f"{where}.name",
            )
        names.setdefault(item.name, "input")
        if item.path_on_compute is not None:
            yield from _check_path(item.path_on_compute, f"{where}.path_on_compute")
        if isinstance(item, PipelineDataInput):
            yield from _check_data_name(item.pipeline_data, "PipelineData name", f"{where}.pipeline_data")
        elif isinstance(item, DatasetInput):
            if registry is not None and not registry.has_dataset(item.dataset_name, item.dataset_version):
                version = "latest" if item.dataset_version is None else f"version {item.dataset_version}"
                yield ErrorDetail(
                    "UnknownDataset",
                    f"dataset {item.dataset_name!r} ({version}) is not registered in the workspace; register it "
                    "or name an existing dataset and version",
                    f"{where}.dataset_name",
                )
        elif isinstance(item, DataReferenceInput):
            yield from _check_datastore(item.datastore, f"{where}.datastore", registry)
            if item.path_on_datastore is not None:
                yield from _check_path(item.path_on_datastore, f"{where}.path_on_datastore", allow_empty=True)
        elif isinstance(item, DataPathParameterInput):
            yield from _check_param_ref(item.parameter, declared, f"{where}.parameter")
            param = declared.get(item.parameter)
            if param is not None and param.type != "datapath":
                yield ErrorDetail(
                    "UnexpectedType",
                    f"input {item.name!r} needs a datapath parameter but {item.parameter!r} is {param.type!r}",
                    f"{where}.parameter",
                )
    for j, output in enumerate(step.outputs):
        where = f"{at}.outputs[{j}]"
        yield from _check_data_name(output.name, "PipelineData name", f"{where}.name")
        if output.output_name is not None:
            yield from _check_data_name(output.output_name, "output_name", f"{where}.output_name")
        if output.pipeline_output_name is not None:
            yield from _check_data_name(
                output.pipeline_output_name, "pipeline_output_name", f"{where}.pipeline_output_name"
            )
        if output.name in names:
            yield ErrorDetail(
                "DuplicateOutputName",
                f"step {step.name!r} already has an input or output named {output.name!r}; names must be unique "
                "within a step",
                f"{where}.name",
            )
        names.setdefault(output.name, "output")
        if output.datastore is not None:
            yield from _check_output_datastore(step, output.name, output.datastore, f"{where}.datastore", registry)
        if output.output_path_on_compute is not None:
            yield from _check_path(output.output_path_on_compute, f"{where}.output_path_on_compute")


def _check_params(step: Step, at: str, declared: Mapping[str, ParameterDef]) -> Iterator[ErrorDetail]:
    env_names: dict[str, str] = {}
    for key, value in step.params.items():
        where = f"{at}.params.{key}"
        env = parameter_env_name(key)
        if env in env_names:
            yield ErrorDetail(
                "DuplicateParameter",
                f"params {env_names[env]!r} and {key!r} both become environment variable {env}; rename one",
                where,
            )
        env_names.setdefault(env, key)
        if isinstance(value, ParameterRef):
            yield from _check_param_ref(value.name, declared, where)
        elif isinstance(value, str) and ("\n" in value or "\r" in value):
            yield ErrorDetail("InvalidParameterValue", f"params {key!r} spans several lines; use one line", where)
    for key, ref in step.runconfig_pipeline_params.items():
        where = f"{at}.runconfig_pipeline_params.{key}"
        if key not in RUNCONFIG_PIPELINE_PARAMS:
            yield ErrorDetail(
                "InvalidRunconfigPipelineParam",
                f"runconfig_pipeline_params key {key!r} is not supported; use one of {list(RUNCONFIG_PIPELINE_PARAMS)}",
                where,
            )
        if key in step.params:
            yield ErrorDetail(
                "DuplicateParameter", f"Duplicate parameter {key!r} in params and runconfig_pipeline_params", where
            )
        yield from _check_param_ref(ref.name, declared, where)


def _check_param_ref(name: str, declared: Mapping[str, ParameterDef], where: str) -> Iterator[ErrorDetail]:
    if name not in declared:
        yield ErrorDetail(
            "MissingParamDef",
            f"parameter {name!r} is used but not declared; declared parameters: {sorted(declared)}",
            where,
        )


def _check_data_name(name: str, what: str, where: str) -> Iterator[ErrorDetail]:
    if not _DATA_NAME.match(name) or len(name) > MAX_NAME_CHARS:
        yield ErrorDetail(
            "InvalidName",
            f"{what} {name!r} is invalid; use only letters, digits and '_' (1 to {MAX_NAME_CHARS} characters)",
            where,
        )


def _check_datastore(name: str, where: str, registry: Registry | None) -> Iterator[ErrorDetail]:
    if registry is not None and not registry.has_datastore(name):
        yield ErrorDetail(
            "UnknownDatastore",
            f"datastore {name!r} is not registered in the workspace; register it or name an existing datastore",
            where,
        )


def _check_output_datastore(
    step: Step, data_name: str, name: str, where: str, registry: Registry | None
) -> Iterator[ErrorDetail]:
    unknown = list(_check_datastore(name, where, registry))
    yield from unknown
    if unknown or not isinstance(registry, DatastoreWrites):
        return
    problem = registry.datastore_write_problem(name)
    if problem is not None:
        yield ErrorDetail(
            "DatastoreNotWritable",
            f"PipelineData {data_name!r} of step {step.name!r} cannot be written: datastore {name!r} {problem}",
            where,
        )


def _check_path(value: str, where: str, *, allow_empty: bool = False) -> Iterator[ErrorDetail]:
    problem = path_problem(value, allow_empty=allow_empty)
    if problem is not None:
        yield ErrorDetail("InvalidPath", f"{value!r} is not allowed: {problem}", where)


def _check_cycles(graph: PipelineGraph) -> Iterator[ErrorDetail]:
    order = [s.name for s in graph.steps]
    for cycle in graph.cycles():
        yield ErrorDetail(
            "Cycle",
            f"steps form a cycle: {' -> '.join(repr(s) for s in cycle)}; remove a data or run_after "
            "dependency so the pipeline is acyclic",
            f"steps[{order.index(cycle[0])}]",
        )
