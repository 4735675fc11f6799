"""A step's reuse fingerprint and the sentence that explains a miss: pure functions, no I/O.

A step is reused when its fingerprint equals the fingerprint of an earlier successful execution
(spec §4). The fingerprint is a set of named *parts*, each the digest of one thing that can change
what the step computes:

    step            the step's name, kind and version
    snapshot        the source snapshot (sha256 of the deterministic zip, ignore files honoured)
    script          the script name, or the command (resolved like the arguments)
    arguments       the arguments, each parameter replaced by its effective value in this run
    params          ``params`` and ``runconfig_pipeline_params``, resolved the same way
    compute_target  the compute target (names are case-insensitive)
    runconfig       the run configuration: environment, variables, framework, node count, timeout
    io              how inputs and outputs are declared (names, sources, modes, datastores)
    input:<name>    one per input: the *content* identity of the data it reads (and, for a
                    ``datapath`` parameter, the location assigned in this run)

Beyond azureml, inputs count by content, not only by definition: an upstream output counts by the
sha256 of its files (so a re-run producer that writes the same bytes still lets its consumers be
reused, and one that writes different bytes never does), a dataset or datastore path by the blobs it
lists. A step whose input content cannot be identified has no fingerprint and is never reused.

The key is the sha256 of the parts, canonical JSON. Parts are kept (per execution) so a miss can say
which of them changed since the step's last successful execution: :func:`explain_miss`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.graph.model import (
    DataArgument,
    DataPathParameterInput,
    DataPathValue,
    InputArgument,
    LiteralArgument,
    ParameterArgument,
    ParameterRef,
    PipelineGraph,
    Step,
    StepInput,
)
from shared.registry.compute import LOCAL_COMPUTE

__all__ = [
    "input_part",
    "step_parameters",
    "INPUT_PART_PREFIX",
    "PARTS",
    "Fingerprint",
    "changed_parts",
    "describe_parts",
    "digest",
    "explain_miss",
    "fingerprint",
    "parameter_values",
]

#: The parts every fingerprint has, in the order explanations name them; then one ``input:<name>``
#: per input.
PARTS = ("step", "snapshot", "script", "arguments", "params", "compute_target", "runconfig", "io")
INPUT_PART_PREFIX = "input:"
#: Parts stored on a row are capped so a step with thousands of inputs still fits a Table property:
#: past this many characters the ``input:*`` parts are folded into one ``inputs`` part.
MAX_STORED_PARTS_CHARS = 24_000

_DESCRIPTIONS = {
    "step": "the step's name, kind or version",
    "snapshot": "the source directory (snapshot)",
    "script": "the script",
    "arguments": "the arguments",
    "params": "the parameter values",
    "compute_target": "the compute target",
    "runconfig": "the run configuration (environment)",
    "io": "the declaration of its inputs or outputs",
    "inputs": "the content of its inputs",
}


def digest(value: Any) -> str:
    """A part's digest: 32 hex digits of the sha256 of ``value`` as canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Fingerprint:
    """A step's fingerprint in one run.

    Attributes:
        parts: part name → digest (see the module docstring).
        key: the sha256 (hex) of all parts: equal keys mean a reusable execution.
    """

    parts: Mapping[str, str]
    key: str

    @classmethod
    def of(cls, parts: Mapping[str, str]) -> Fingerprint:
        ordered = dict(sorted(parts.items()))
        text = json.dumps(ordered, separators=(",", ":"))
        return cls(parts=ordered, key=hashlib.sha256(text.encode("utf-8")).hexdigest())

    def stored_parts(self) -> dict[str, str]:
        """The parts to keep on a row: all of them, or with the inputs folded when they are too many."""
        parts = dict(self.parts)
        if len(json.dumps(parts)) <= MAX_STORED_PARTS_CHARS:
            return parts
        inputs = {k: v for k, v in parts.items() if k.startswith(INPUT_PART_PREFIX)}
        kept = {k: v for k, v in parts.items() if not k.startswith(INPUT_PART_PREFIX)}
        kept["inputs"] = digest(inputs)
        return kept


def parameter_values(
    graph: PipelineGraph, parameters: Mapping[str, Any], data_paths: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """Every pipeline parameter's effective value in a run: its assignment, else its default."""
    values: dict[str, Any] = {}
    for p in graph.parameters:
        default = p.default_value
        values[p.name] = default.model_dump(mode="json") if isinstance(default, DataPathValue) else default
    values.update(parameters)
    values.update({name: dict(path) for name, path in data_paths.items()})
    return values


def input_part(item: StepInput, values: Mapping[str, Any], content: str | None) -> str:
    """The fingerprint part of one input: where it reads (a datapath's assigned location) and what."""
    location = values.get(item.parameter) if isinstance(item, DataPathParameterInput) else None
    return digest({"location": location, "content": content})


def step_parameters(step: Step) -> frozenset[str] | None:
    """The pipeline parameters ``step`` uses (arguments, command list, params, runconfig params,
    datapath inputs); None for a command line, which may read any ``$AML_PARAMETER_<name>``.

    The worker exports only these to the step's process and the fingerprint counts only these, so
    a step can never read a parameter value its fingerprint does not cover.
    """
    if isinstance(step.command, str):
        return None
    refs = [*step.arguments, *(step.command or ()), *step.params.values(), *step.runconfig_pipeline_params.values()]
    names = {ref.name for ref in refs if isinstance(ref, ParameterArgument | ParameterRef)}
    names.update(item.parameter for item in step.inputs if isinstance(item, DataPathParameterInput))
    return frozenset(names)


def fingerprint(graph: PipelineGraph, step: Step, values: Mapping[str, Any], inputs: Mapping[str, str]) -> Fingerprint:
    """The fingerprint of ``step`` of ``graph`` in a run.

    Args:
        graph: the run's graph.
        step: the step.
        values: every parameter's effective value (:func:`parameter_values`).
        inputs: input name → the content identity of what it reads, for every input of the step.

    Raises:
        KeyError: an input of the step has no identity in ``inputs`` (the caller must not
            fingerprint a step whose input content is unknown).
    """

    def resolve(arg: Any) -> Any:
        if isinstance(arg, LiteralArgument):
            return ["literal", arg.value]
        if isinstance(arg, ParameterArgument | ParameterRef):
            return ["parameter", arg.name, values.get(arg.name)]
        if isinstance(arg, DataArgument):
            return ["data", arg.name]
        if isinstance(arg, InputArgument):
            return ["input", arg.name]
        return ["value", arg]

    command = step.command
    parts: dict[str, str] = {
        "step": digest({"name": step.name, "kind": step.kind, "version": step.version}),
        "snapshot": digest(step.snapshot.sha256 if step.snapshot is not None else None),
        "script": digest(
            {
                "script_name": step.script_name,
                "command": [resolve(a) for a in command] if isinstance(command, tuple) else command,
            }
        ),
        "arguments": digest([resolve(a) for a in step.arguments]),
        "params": digest(
            {
                "params": {name: resolve(value) for name, value in step.params.items()},
                "runconfig_pipeline_params": {
                    name: resolve(ref) for name, ref in step.runconfig_pipeline_params.items()
                },
            }
        ),
        "compute_target": digest((step.compute_target or LOCAL_COMPUTE).lower()),
        "runconfig": digest(step.runconfig.model_dump(mode="json")),
        "io": digest(
            {
                "inputs": [item.model_dump(mode="json") for item in step.inputs],
                "outputs": [output.model_dump(mode="json") for output in step.outputs],
                "data_transfer": step.data_transfer.model_dump(mode="json") if step.data_transfer else None,
            }
        ),
    }
    if step_parameters(step) is None:  # a command line may read any parameter's variable
        parts["script"] = digest({"script": parts["script"], "parameters": dict(sorted(values.items()))})
    for item in step.inputs:
        parts[INPUT_PART_PREFIX + item.name] = input_part(item, values, inputs[item.name])
    return Fingerprint.of(parts)


def changed_parts(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The parts whose digests differ (or that only one side has), in explanation order.

    A side whose inputs were folded into ``inputs`` (see :meth:`Fingerprint.stored_parts`) is
    compared with the other side folded the same way.
    """
    if ("inputs" in previous) != ("inputs" in current):
        previous, current = _folded(previous), _folded(current)
    names = set(previous) | set(current)
    changed = [n for n in names if previous.get(n) != current.get(n)]
    order = {name: i for i, name in enumerate((*PARTS, "inputs"))}
    return sorted(changed, key=lambda n: (order.get(n, len(order)), n))


def _folded(parts: Mapping[str, str]) -> dict[str, str]:
    if "inputs" in parts:
        return dict(parts)
    kept = {k: v for k, v in parts.items() if not k.startswith(INPUT_PART_PREFIX)}
    kept["inputs"] = digest({k: v for k, v in parts.items() if k.startswith(INPUT_PART_PREFIX)})
    return kept


def describe_parts(names: Iterable[str], previous: Mapping[str, str], current: Mapping[str, str]) -> str:
    """``names`` (changed parts) as an English list: "the arguments and the content of input 'raw'"."""
    phrases: list[str] = []
    for name in names:
        if name.startswith(INPUT_PART_PREFIX):
            input_name = name[len(INPUT_PART_PREFIX) :]
            if name not in previous:
                phrases.append(f"the inputs (new input {input_name!r})")
            elif name not in current:
                phrases.append(f"the inputs (input {input_name!r} removed)")
            else:
                phrases.append(f"the data of input {input_name!r}")
        else:
            phrases.append(_DESCRIPTIONS.get(name, name))
    if not phrases:
        return "nothing"
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def explain_miss(
    step: str,
    current: Mapping[str, str],
    previous: Mapping[str, str] | None,
    previous_run: str | None,
) -> str:
    """Why ``step`` is not reused, against its last successful execution (run ``previous_run``
    with parts ``previous``); None/None when it never ran successfully with reuse allowed."""
    if previous is None or previous_run is None:
        return f"Not reused: no earlier successful run of step {step!r} to reuse."
    changed = changed_parts(previous, current)
    if not changed:
        return f"Not reused: the outputs of run {previous_run} (the same fingerprint) are no longer available."
    return f"Not reused: {describe_parts(changed, previous, current)} changed since run {previous_run}."
