"""The step worker's I/O layer: execute one step execution named by an ``amlpipe-steps`` message.

``StepWorker.execute(message)`` is what the step queue trigger calls:

1. Drop the message unless the step row is Queued *with the message's attempt* (a duplicate, or a
   late message of an older execution, is a logged no-op).
2. Queued → Running, guarded by the row's ETag (Queued → Canceled instead if a cancel is pending);
   losing that write means another delivery or the orchestrator got there first: drop.
3. Materialise a private working folder: the snapshot (cached by sha), a folder per PipelineData
   output, and per PipelineData input a folder holding the producer's completed output.
4. Run ``python <script_name> <arguments>`` there with ``AML_PARAMETER_<name>`` set, streaming its
   output into the execution's log blob, killed at the timeout.
5. Exit 0: upload the outputs (completion marker last), then Running → Finished; otherwise
   Running → Failed with the last lines of stderr. Both guarded; a lost write is re-read and retried
   while the row is still this execution's and Running.
6. Return the report for the orchestrator (``amlpipe-runs``), which the trigger sends.

Not in this slice: datasets and data references, cancelling a running process, heartbeats.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, NotFoundError
from shared.graph.model import (
    DataArgument,
    InputArgument,
    LiteralArgument,
    ParameterArgument,
    PipelineDataInput,
    PipelineGraph,
    Step,
)
from shared.orchestration.actions import Event
from shared.orchestration.files import LogBlob, StepFiles, log_blob_name
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.process import run_process
from shared.pipelines._storage import key, utcnow
from shared.pipelines.runs import PipelineRun, StaleEtagError, StepRun, StepStatus, wire_string
from shared.pipelines.stores import Stores

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Outcome", "StepWorker"]

log = logging.getLogger("amlpipe.worker")

#: A step's process limit when its runconfig sets none: under the host's 10-minute functionTimeout.
DEFAULT_TIMEOUT_SECONDS = 540.0
# Settings of the app itself (storage secrets) never reach a user's script.
_PRIVATE_ENV = ("AzureWebJobs", "AMLPIPE_", "FUNCTIONS_", "AZURE_STORAGE", "ConnectionStrings")


@dataclass(frozen=True)
class Outcome:
    """How an execution ended, as recorded on its step row."""

    status: StepStatus
    reason: str | None = None
    retryable: bool = False


class StepFailed(AmlPipeError):
    """The step cannot run as defined (not retryable): its reason is recorded on the step."""


class StepWorker:
    """Executes step executions.

    Args:
        stores: the pipeline stores (runs, graphs).
        blobs: the blob service (snapshots, PipelineData, logs).
        root: where working folders and the snapshot cache live (default: the temp dir).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        blobs: BlobServiceClient,
        *,
        root: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._root = root or Path(tempfile.gettempdir()) / "amlpipe-worker"
        self._files = StepFiles(blobs, self._root)
        self._blobs = blobs
        self._clock = clock

    def execute(self, message: StepMessage) -> RunMessage | None:
        """Run the execution ``message`` names if it is still the step's current one; the report to send."""
        runs = self._stores.runs
        try:
            run = runs.get_run(message.run_id)
            step = runs.get_step(message.run_id, message.step)
        except NotFoundError:
            log.warning("Dropping %s: no such run or step.", message.key)
            return None
        if step.attempt != message.attempt or step.status is not StepStatus.QUEUED:
            log.info("Dropping %s: the step is %s at attempt %d.", message.key, step.status.value, step.attempt)
            return None
        now = self._clock()
        if run.cancel_requested or run.status.is_terminal or step.cancel_requested_at is not None:
            reason = step.reason or "Canceled before it started."
            try:
                runs.replace_step(replace(step, status=StepStatus.CANCELED, end_time=now, reason=reason))
            except StaleEtagError:
                return None
            return RunMessage(message.run_id, Event.STEP_FAILED, message.step, message.attempt)
        try:
            step = runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=now, heartbeat_at=now))
        except StaleEtagError:
            log.info("Dropping %s: another delivery or a cancel wrote the step first.", message.key)
            return None
        outcome = self._run(run, step)
        return self._record(step, outcome)

    def _run(self, run: PipelineRun, step: StepRun) -> Outcome:
        work = self._root / "work" / run.id / key(step.name).replace("/", "%2F") / str(step.attempt)
        try:
            graph = self._stores.graphs.get_graph(run.graph_id)
            return self._run_in(run, step, graph.step(step.name), graph, work)
        except StepFailed as exc:
            return Outcome(StepStatus.FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 - recorded on the step: failures cross as data
            log.exception("Execution %s:%s:%d failed in the worker.", run.id, step.name, step.attempt)
            return Outcome(StepStatus.FAILED, f"The worker failed: {type(exc).__name__}: {exc}", retryable=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run_in(self, run: PipelineRun, step: StepRun, definition: Step, graph: PipelineGraph, work: Path) -> Outcome:
        if definition.kind != "python_script" or not definition.script_name:
            raise StepFailed(f"Steps of kind {definition.kind!r} cannot run yet; only python_script steps.")
        src = work / "src"
        shutil.rmtree(work, ignore_errors=True)
        src.mkdir(parents=True)
        if definition.snapshot is not None:
            self._files.materialise_snapshot(definition.snapshot.sha256, src)
        data: dict[str, Path] = {}
        inputs: dict[str, Path] = {}
        for output in definition.outputs:
            data[output.name] = work / "outputs" / key(output.name)
            data[output.name].mkdir(parents=True)
        for item in definition.inputs:
            if not isinstance(item, PipelineDataInput):
                raise StepFailed(f"Input {item.name!r} reads a {item.source}; only PipelineData inputs run yet.")
            folder = work / "inputs" / key(item.name)
            folder.mkdir(parents=True)
            self._files.download_output(run.id, item.pipeline_data, folder)
            data.setdefault(item.pipeline_data, folder)
            inputs[item.name] = folder
        args = [_argument(arg, run, graph, data, inputs) for arg in definition.arguments]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
        env.update(definition.runconfig.environment_variables)
        for name, value in _parameters(run, graph).items():
            env[f"AML_PARAMETER_{name}"] = value
        for name, folder in data.items():
            env[f"AZUREML_DATAREFERENCE_{name}"] = str(folder)
        env["AZUREML_RUN_ID"] = f"{run.id}:{step.name}:{step.attempt}"
        env["AZUREML_PIPELINE_RUN_ID"] = run.id
        logblob = LogBlob(self._blobs, log_blob_name(run.id, step.name, step.attempt))
        timeout = float(definition.runconfig.max_run_duration_seconds or DEFAULT_TIMEOUT_SECONDS)
        result = run_process(
            [sys.executable, definition.script_name, *args], cwd=src, env=env, timeout=timeout, sink=logblob.append
        )
        if result.timed_out:
            return Outcome(StepStatus.FAILED, f"The script ran longer than {timeout:g} seconds and was stopped.")
        if result.returncode != 0:
            tail = f":\n{result.stderr_tail}" if result.stderr_tail else "."
            return Outcome(StepStatus.FAILED, f"The script exited with code {result.returncode}{tail}")
        for output in definition.outputs:
            self._files.upload_output(run.id, output.name, data[output.name], attempt=step.attempt)
        return Outcome(StepStatus.FINISHED)

    def _record(self, step: StepRun, outcome: Outcome) -> RunMessage | None:
        runs = self._stores.runs
        current = step
        for _ in range(8):
            changed = replace(
                current,
                status=outcome.status,
                end_time=self._clock(),
                reason=outcome.reason,
                retryable=outcome.retryable,
            )
            try:
                runs.replace_step(changed)
            except StaleEtagError:
                # A cancel request (or the watchdog) wrote the row: keep its fields, unless the
                # execution is no longer this one.
                current = runs.get_step(step.run_id, step.name)
                if current.attempt != step.attempt or current.status is not StepStatus.RUNNING:
                    log.info("Not recording %s:%s:%d: the step moved on.", step.run_id, step.name, step.attempt)
                    return None
                continue
            event = Event.STEP_FINISHED if outcome.status is StepStatus.FINISHED else Event.STEP_FAILED
            return RunMessage(step.run_id, event, step.name, step.attempt)
        raise StaleEtagError(f"Step {step.name!r} of run {step.run_id} kept changing; try again.")


def _parameters(run: PipelineRun, graph: PipelineGraph) -> dict[str, str]:
    values = {p.name: p.default_value for p in graph.parameters}
    values.update(run.parameters)
    return {name: wire_string(value) for name, value in values.items()}


def _argument(
    arg: LiteralArgument | DataArgument | ParameterArgument | InputArgument,
    run: PipelineRun,
    graph: PipelineGraph,
    data: Mapping[str, Path],
    inputs: Mapping[str, Path],
) -> str:
    if isinstance(arg, LiteralArgument):
        return arg.value
    if isinstance(arg, ParameterArgument):
        values = _parameters(run, graph)
        if arg.name not in values:
            raise StepFailed(f"The argument names parameter {arg.name!r}, which the pipeline does not declare.")
        return values[arg.name]
    if isinstance(arg, DataArgument):
        if arg.name not in data:
            raise StepFailed(f"The argument names PipelineData {arg.name!r}, which this step neither reads nor writes.")
        return str(data[arg.name])
    if arg.name not in inputs:
        raise StepFailed(f"The argument names input {arg.name!r}, which this step does not have.")
    return str(inputs[arg.name])


_default: StepWorker | None = None


def default_worker() -> StepWorker:
    """The process-wide worker on ``AzureWebJobsStorage``."""
    global _default
    from shared import storage
    from shared.pipelines.stores import default_stores

    if _default is None:
        _default = StepWorker(default_stores(), storage.clients().blobs)
    return _default
