"""PipelineStep: what every step shares, and its conversion to a wire ``Step``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from amlpipe.core.runconfig import RunConfiguration
from amlpipe.pipeline.core import _wire
from amlpipe.pipeline.core._builder import InputPortBinding, PipelineData
from amlpipe.pipeline.core._parameter import PipelineParameter
from shared.graph import model as m
from shared.graph.validate import RUNCONFIG_PIPELINE_PARAMS


class PipelineStep:
    """The base of all steps: a name, inputs, outputs, arguments and ordering.

    Args:
        name: the step's name, unique within its pipeline.
        inputs: the step's inputs.
        outputs: the PipelineData it writes.
        arguments: command-line arguments.
        fix_port_name_collisions: accepted for compatibility; ignored.
        resource_inputs: accepted for compatibility; ignored.
    """

    _kind: m.StepKind = "python_script"

    def __init__(
        self,
        name: str,
        inputs: list[Any] | None,
        outputs: list[Any] | None,
        arguments: list[Any] | None = None,
        fix_port_name_collisions: bool = False,
        resource_inputs: list[Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Step name must be a non-empty string")
        self.name = name
        self._inputs: list[Any] = list(inputs or [])
        self._outputs: list[Any] = list(outputs or [])
        self._arguments: list[Any] = list(arguments or [])
        self._run_after: list[PipelineStep] = []
        self._script_name: str | None = None
        self._command: str | list[Any] | None = None
        self._source_directory: str | None = None
        self._compute_target: Any = None
        self._runconfig: RunConfiguration | None = None
        self._params: dict[str, Any] = {}
        self._runconfig_pipeline_params: dict[str, Any] = {}
        self._allow_reuse = True
        self._version: str | None = None
        self._retry: m.StepRetrySettings | None = None
        for output in self._outputs:
            if isinstance(output, PipelineData):
                output._producer = self

    def set_retry_settings(self, max_retries: int, backoff_seconds: float = 10.0) -> None:
        """Try this step again when an attempt fails (amlpipe's addition to azureml v1).

        A failed attempt — the script's non-zero exit or timeout, or a lost worker — is retried up to
        ``max_retries`` times, the first after ``backoff_seconds``, each later one twice as long (at
        most 10 minutes). Without it a script's failure fails the step at once, as in azureml.

        Raises:
            ValueError: ``max_retries`` is not 0-10 or ``backoff_seconds`` not 0-600.
        """
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 10:
            raise ValueError(f"max_retries must be a whole number from 0 to 10, not {max_retries!r}")
        if isinstance(backoff_seconds, bool) or not isinstance(backoff_seconds, int | float):
            raise ValueError(f"backoff_seconds must be a number of seconds, not {backoff_seconds!r}")
        if not 0 <= backoff_seconds <= 600:
            raise ValueError(f"backoff_seconds must be from 0 to 600, not {backoff_seconds!r}")
        self._retry = m.StepRetrySettings(max_retries=max_retries, backoff_seconds=float(backoff_seconds))

    def run_after(self, step: PipelineStep) -> None:
        """Run this step after ``step`` even without a data dependency (may be called repeatedly)."""
        if not isinstance(step, PipelineStep):
            raise ValueError(f"run_after expects a step, got {type(step).__name__}")
        if step not in self._run_after:
            self._run_after.append(step)

    @property
    def source_directory(self) -> str | None:
        """The local folder snapshotted for this step (None: the pipeline's default)."""
        return self._source_directory

    def _set_params(self, params: dict[str, Any] | None, runconfig_pipeline_params: dict[str, Any] | None) -> None:
        params = dict(params or {})
        overrides = dict(runconfig_pipeline_params or {})
        for key in overrides:
            if key in params:
                raise ValueError(f"Duplicate parameter {key} in params and runconfig_pipeline_params")
            if key not in RUNCONFIG_PIPELINE_PARAMS:
                raise ValueError(
                    f"runconfig_pipeline_params key {key!r} is not supported; "
                    f"use one of {list(RUNCONFIG_PIPELINE_PARAMS)}"
                )
            if not isinstance(overrides[key], PipelineParameter):
                raise ValueError(f"runconfig_pipeline_params[{key!r}] must be a PipelineParameter")
        self._params = params
        self._runconfig_pipeline_params = overrides

    def _upstream(self) -> Iterator[PipelineStep]:
        """Steps this one depends on: producers of the data it reads, then ``run_after`` steps."""
        outputs = {id(o) for o in self._outputs}
        items: list[Any] = [*self._inputs, *self._arguments]
        if isinstance(self._command, list):
            items.extend(self._command)
        for item in items:
            data = item.bind_object if isinstance(item, InputPortBinding) else item
            if isinstance(data, PipelineData) and id(data) not in outputs and data._producer is not None:
                yield data._producer
        yield from self._run_after

    def _extra_wire(self, params: _wire.ParameterTable) -> dict[str, Any]:
        """Kind-specific wire fields (data transfer overrides this)."""
        return {}

    def _to_wire(self, params: _wire.ParameterTable) -> m.Step:
        """This step as a wire ``Step`` (snapshot not yet known), collecting parameters in ``params``."""
        inputs: list[m.StepInput] = []

        def add_input(item: m.StepInput) -> None:
            # The same input passed in both ``inputs`` and ``arguments`` is one input; a different input
            # under a taken name is kept so validation reports DuplicateInputName instead of losing it.
            if item not in inputs:
                inputs.append(item)

        for item in self._inputs:
            add_input(_wire.convert_input(item, params))
        outputs = tuple(_wire.convert_output(o) for o in self._outputs)
        output_names = {o.name for o in outputs}
        arguments = tuple(_wire.convert_argument(a, params, output_names, add_input) for a in self._arguments)
        command: str | tuple[m.Argument, ...] | None
        if isinstance(self._command, list):
            command = tuple(_wire.convert_argument(a, params, output_names, add_input) for a in self._command)
        else:
            command = self._command
        runconfig = self._runconfig
        target = self._compute_target
        if target is None and runconfig is not None and runconfig.target not in (None, "local"):
            target = runconfig.target
        return m.Step(
            name=self.name,
            kind=self._kind,
            script_name=self._script_name,
            command=command,
            arguments=arguments,
            compute_target=_wire.compute_target_name(target),
            runconfig=_wire.convert_runconfig(runconfig),
            inputs=tuple(inputs),
            outputs=outputs,
            params={str(k): _wire.convert_param_value(v, params) for k, v in self._params.items()},
            runconfig_pipeline_params={
                k: m.ParameterRef(name=params.add(v)) for k, v in self._runconfig_pipeline_params.items()
            },
            run_after=tuple(dict.fromkeys(s.name for s in self._run_after)),
            allow_reuse=self._allow_reuse,
            version=self._version,
            retry_settings=self._retry,
            **self._extra_wire(params),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
