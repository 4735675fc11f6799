"""The pipeline graph wire schema, version "1": the contract between the SDK, the API and the runner.

One JSON document describes a pipeline: its parameters and its steps. Data edges are implicit: a step
input that reads a ``PipelineData`` produced by another step's ``outputs`` makes that step depend on
the producer; ``run_after`` adds explicit edges. Field names are snake_case; unknown fields are
rejected; models are immutable.

The models check *shape* only (types, enums, a few hard size caps that protect the parser). The rules
that relate parts of a graph to each other (unique names, cycles, unconnected inputs, paths, known
compute targets) live in :mod:`shared.graph.validate`, which reports every problem at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import ErrorDetail, GraphValidationError

SCHEMA_VERSION: Literal["1"] = "1"

# Hard caps the parser enforces so a hostile body cannot make us allocate without bound. The softer,
# friendlier limits (with advice) are in validate.py.
_MAX_ITEMS = 4096
_MAX_TEXT = 65536

ParameterType = Literal["string", "int", "float", "bool", "datapath"]
StepKind = Literal["python_script", "command", "estimator", "data_transfer"]
InputMode = Literal["mount", "download"]
DatasetMode = Literal["mount", "download", "direct"]
OutputMode = Literal["mount", "upload"]
ReferenceType = Literal["file", "directory"]

Text = Annotated[str, Field(max_length=_MAX_TEXT)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


#: The workspace's default datastore (``shared.registry.DEFAULT_DATASTORE``; the graph model does not
#: import the registry).
WORKSPACE_DEFAULT_DATASTORE = "workspaceblobstore"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataPathValue(_Model):
    """A location on a datastore: the value of a ``datapath`` parameter."""

    datastore: Text
    path_on_datastore: Text


ScalarValue = bool | int | float | Text
ParameterValue = bool | int | float | Text | DataPathValue


class ParameterDef(_Model):
    """A pipeline parameter: a name, a type and the default used when a run assigns no value."""

    name: Text
    type: ParameterType
    default_value: ParameterValue


# -- arguments: tagged by ``kind`` ----------------------------------------------------------------


class LiteralArgument(_Model):
    """A literal command-line argument."""

    kind: Literal["literal"] = "literal"
    value: Text


class DataArgument(_Model):
    """The path of a PipelineData this step reads or writes (``$AZUREML_DATAREFERENCE_<name>``)."""

    kind: Literal["data"] = "data"
    name: Text


class ParameterArgument(_Model):
    """The value of a pipeline parameter (``$AML_PARAMETER_<name>``)."""

    kind: Literal["parameter"] = "parameter"
    name: Text


class InputArgument(_Model):
    """The local path of one of this step's named inputs (dataset, data reference or datapath)."""

    kind: Literal["input"] = "input"
    name: Text


Argument = Annotated[
    LiteralArgument | DataArgument | ParameterArgument | InputArgument,
    Field(discriminator="kind"),
]


class ParameterRef(_Model):
    """A reference to a pipeline parameter where a value is expected (``params``)."""

    kind: Literal["parameter"] = "parameter"
    name: Text


ParamValue = bool | int | float | Text | ParameterRef


# -- inputs: tagged by ``source`` -----------------------------------------------------------------


class PipelineDataInput(_Model):
    """An input reading a PipelineData that another step of the graph produces."""

    source: Literal["pipeline_data"] = "pipeline_data"
    name: Text
    pipeline_data: Text
    mode: InputMode = "mount"
    path_on_compute: Text | None = None
    overwrite: bool = False


class DatasetInput(_Model):
    """An input reading a registered dataset (``version`` None means the latest)."""

    source: Literal["dataset"] = "dataset"
    name: Text
    dataset_name: Text
    dataset_version: int | None = None
    mode: DatasetMode = "direct"
    path_on_compute: Text | None = None


class DataReferenceInput(_Model):
    """An input reading a fixed path on a datastore."""

    source: Literal["data_reference"] = "data_reference"
    name: Text
    datastore: Text
    path_on_datastore: Text | None = None
    mode: InputMode = "mount"
    path_on_compute: Text | None = None
    overwrite: bool = False


class DataPathParameterInput(_Model):
    """An input whose location is the value of a ``datapath`` pipeline parameter."""

    source: Literal["datapath_parameter"] = "datapath_parameter"
    name: Text
    parameter: Text
    mode: InputMode = "mount"
    path_on_compute: Text | None = None
    overwrite: bool = False


StepInput = Annotated[
    PipelineDataInput | DatasetInput | DataReferenceInput | DataPathParameterInput,
    Field(discriminator="source"),
]


class PipelineDataOutput(_Model):
    """A PipelineData this step writes. ``name`` identifies the data across the graph."""

    name: Text
    output_name: Text | None = None
    datastore: Text | None = None
    output_mode: OutputMode = "mount"
    output_path_on_compute: Text | None = None
    output_overwrite: bool | None = None
    is_directory: bool = False
    pipeline_output_name: Text | None = None


# -- step configuration ---------------------------------------------------------------------------


class EnvironmentSpec(_Model):
    """A registered environment (name and version) or an inline one (packages given here)."""

    name: Text
    version: Text | None = None
    python_version: Text | None = None
    conda_packages: tuple[Text, ...] = Field(default=(), max_length=_MAX_ITEMS)
    pip_packages: tuple[Text, ...] = Field(default=(), max_length=_MAX_ITEMS)
    channels: tuple[Text, ...] = Field(default=(), max_length=_MAX_ITEMS)
    environment_variables: dict[Text, Text] = Field(default_factory=dict, max_length=_MAX_ITEMS)


class RunConfig(_Model):
    """How a step's process runs: environment, variables, framework and node count."""

    environment: EnvironmentSpec | None = None
    environment_variables: dict[Text, Text] = Field(default_factory=dict, max_length=_MAX_ITEMS)
    framework: Text = "Python"
    node_count: int = Field(default=1, ge=1, le=1024)
    max_run_duration_seconds: int | None = Field(default=None, ge=1)


class StepRetrySettings(_Model):
    """Retries of a step (amlpipe's addition to azureml v1): a failed attempt — its script's non-zero
    exit or timeout, or a lost worker — is tried again up to ``max_retries`` times, the first after
    ``backoff_seconds``, each later one twice as long (at most 10 minutes)."""

    max_retries: int = Field(ge=0, le=10)
    backoff_seconds: float = Field(default=10.0, ge=0, le=600)


class DataReferenceTarget(_Model):
    """A fixed destination on a datastore (data transfer)."""

    datastore: Text
    path_on_datastore: Text | None = None


class DataTransferSpec(_Model):
    """What a ``data_transfer`` step copies: its single input to ``destination`` or its single output."""

    source_reference_type: ReferenceType | None = None
    destination_reference_type: ReferenceType | None = None
    destination: DataReferenceTarget | None = None


class SnapshotRef(_Model):
    """The content address of an uploaded source snapshot (sha256 of the zip bytes)."""

    sha256: Sha256
    size_bytes: int = Field(ge=0)


class Step(_Model):
    """One step of the pipeline. Which fields apply depends on ``kind`` (see validate.py)."""

    name: Text
    kind: StepKind
    script_name: Text | None = None
    command: Text | tuple[Argument, ...] | None = Field(default=None)
    arguments: tuple[Argument, ...] = Field(default=(), max_length=_MAX_ITEMS)
    compute_target: Text | None = None
    runconfig: RunConfig = Field(default_factory=RunConfig)
    inputs: tuple[StepInput, ...] = Field(default=(), max_length=_MAX_ITEMS)
    outputs: tuple[PipelineDataOutput, ...] = Field(default=(), max_length=_MAX_ITEMS)
    params: dict[Text, ParamValue] = Field(default_factory=dict, max_length=_MAX_ITEMS)
    runconfig_pipeline_params: dict[Text, ParameterRef] = Field(default_factory=dict, max_length=_MAX_ITEMS)
    data_transfer: DataTransferSpec | None = None
    run_after: tuple[Text, ...] = Field(default=(), max_length=_MAX_ITEMS)
    allow_reuse: bool = True
    version: Text | None = None
    snapshot: SnapshotRef | None = None
    retry_settings: StepRetrySettings | None = None


class PipelineGraph(_Model):
    """A whole pipeline: the document the SDK submits and the service stores and runs."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    description: Text | None = None
    #: Where a PipelineData that names no datastore keeps its files (azureml's
    #: ``Pipeline(default_datastore=...)``); None: the workspace's default datastore.
    default_datastore: Text | None = None
    parameters: tuple[ParameterDef, ...] = Field(default=(), max_length=_MAX_ITEMS)
    steps: tuple[Step, ...] = Field(default=(), max_length=_MAX_ITEMS)

    @model_validator(mode="after")
    def _outputs_on_the_default_datastore(self) -> PipelineGraph:
        """Give every PipelineData output without a datastore the pipeline's ``default_datastore``, so
        the engine (worker, readers, reuse, validation) only ever looks at the output's own. The
        workspace's default datastore needs no filling in: its outputs stay as they were written."""
        default = self.default_datastore
        if default is None or default.lower() == WORKSPACE_DEFAULT_DATASTORE:
            return self
        if not any(o.datastore is None for step in self.steps for o in step.outputs):
            return self
        steps = tuple(
            step.model_copy(
                update={
                    "outputs": tuple(
                        o if o.datastore is not None else o.model_copy(update={"datastore": default})
                        for o in step.outputs
                    )
                }
            )
            for step in self.steps
        )
        return self.model_copy(update={"steps": steps})

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict of this graph, every field included.

        Never serialise with ``exclude_defaults``: the ``kind``/``source`` tags have defaults and
        the document would no longer parse.
        """
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The JSON text of this graph (see :meth:`to_wire`)."""
        return self.model_dump_json()

    def step(self, name: str) -> Step:
        """The step called ``name``.

        Raises:
            KeyError: no step has that name.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def producers(self) -> dict[str, str]:
        """PipelineData name → the name of the (first) step that produces it."""
        found: dict[str, str] = {}
        for step in self.steps:
            for output in step.outputs:
                found.setdefault(output.name, step.name)
        return found

    def edges(self) -> list[tuple[str, str]]:
        """Dependencies as ``(before, after)`` step-name pairs: data edges and ``run_after``.

        Pairs are unique, in step order; references to unknown steps are left out (validation
        reports them).
        """
        known = {step.name for step in self.steps}
        producers = self.producers()
        seen: dict[tuple[str, str], None] = {}
        for step in self.steps:
            for data in _consumed_data(step):
                producer = producers.get(data)
                if producer is not None:
                    seen.setdefault((producer, step.name), None)
            for before in step.run_after:
                if before in known:
                    seen.setdefault((before, step.name), None)
        return list(seen)

    def cycles(self) -> list[list[str]]:
        """Every dependency cycle, as a closed path of step names (``[a, b, a]``); [] when acyclic.

        One cycle per strongly connected group of steps, starting at its first-declared step.
        """
        return _find_cycles(list(dict.fromkeys(s.name for s in self.steps)), self.edges())

    def topological_order(self) -> list[str]:
        """Step names so that every step comes after its dependencies; ties keep declaration order.

        Raises:
            GraphValidationError: the dependencies form a cycle.
        """
        names = list(dict.fromkeys(step.name for step in self.steps))
        waiting = {name: 0 for name in names}
        after: dict[str, list[str]] = {name: [] for name in names}
        for before, later in self.edges():
            if before != later:
                waiting[later] += 1
                after[before].append(later)
        order: list[str] = []
        ready = [name for name in names if waiting[name] == 0]
        position = {name: i for i, name in enumerate(names)}
        while ready:
            ready.sort(key=position.__getitem__)
            current = ready.pop(0)
            order.append(current)
            for later in after[current]:
                waiting[later] -= 1
                if waiting[later] == 0:
                    ready.append(later)
        if len(order) != len(names) or any(a == b for a, b in self.edges()):
            shown = "; ".join(" -> ".join(repr(s) for s in cycle) for cycle in self.cycles())
            raise GraphValidationError(
                f"The steps form a cycle ({shown}); a pipeline must be acyclic.", target="steps", code="Cycle"
            )
        return order


def _find_cycles(order: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    after: dict[str, list[str]] = {name: [] for name in order}
    for before, later in edges:
        after[before].append(later)
    cycles: list[list[str]] = []
    for component in _strongly_connected(order, after):
        first = component[0]
        if len(component) == 1 and first not in after[first]:
            continue
        cycles.append(_path_back(first, set(component), after))
    return cycles


def _strongly_connected(order: list[str], after: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components listed by their first member in declaration order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = after[node]
            if pos < len(children):
                work.append((node, pos + 1))
                child = children[pos]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                members: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    members.append(top)
                    if top == node:
                        break
                position = {n: i for i, n in enumerate(order)}
                found.append(sorted(members, key=position.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    position = {n: i for i, n in enumerate(order)}
    return sorted(found, key=lambda c: position[c[0]])


def _path_back(start: str, members: set[str], after: Mapping[str, list[str]]) -> list[str]:
    """The shortest cycle through ``start`` inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in after[node]:
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]


def _consumed_data(step: Step) -> Iterator[str]:
    for item in step.inputs:
        if isinstance(item, PipelineDataInput):
            yield item.pipeline_data


def graph_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`PipelineGraph` (embedded in the OpenAPI document)."""
    return PipelineGraph.model_json_schema()


def parse_graph(raw: str | bytes | Mapping[str, Any]) -> PipelineGraph:
    """Parse a graph from JSON text or an already-decoded object.

    Raises:
        GraphValidationError: the document does not fit the schema; one detail per problem, each with
            a target such as ``steps[2].inputs[0].mode``.
    """
    try:
        if isinstance(raw, str | bytes):
            return PipelineGraph.model_validate_json(raw)
        return _from_mapping(raw)
    except ValidationError as exc:
        details = [
            ErrorDetail(code="InvalidGraphSchema", message=str(err["msg"]), target=_target(err["loc"]))
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise GraphValidationError(
            f"The pipeline graph does not match schema version {SCHEMA_VERSION}: {len(details)} problem(s).",
            target="graph",
            details=details,
        ) from exc


def _from_mapping(raw: Mapping[str, Any]) -> PipelineGraph:
    # Python-mode strict validation would refuse JSON-decoded lists for tuple fields; validating in
    # JSON mode keeps one set of rules for text and decoded bodies alike.
    try:
        text = json.dumps(raw, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GraphValidationError(
            "The pipeline graph is not JSON-serialisable.", target="graph", code="InvalidGraphSchema"
        ) from exc
    return PipelineGraph.model_validate_json(text)


def _target(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "graph"
