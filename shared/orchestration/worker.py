"""The step worker's I/O layer: execute one step execution named by an ``amlpipe-steps`` message.

``StepWorker.execute(message)`` is what the step queue trigger calls:

1. Drop the message unless the step row is this execution's (``attempt``) and Queued — or Running
   with a stale heartbeat, see 7 (a duplicate, or a late message of an older execution, is a
   logged no-op).
2. Queued → Running, guarded by the row's ETag (Queued → Canceled instead if a cancel is pending);
   losing that write means another delivery or the orchestrator got there first: drop.
3. Materialise a private working folder: the snapshot (cached by sha), a folder per PipelineData
   output, and per PipelineData input a folder holding the producer's completed output.
4. Run ``python <script_name> <arguments>`` there with ``AML_PARAMETER_<name>`` set, streaming its
   output into the execution's log blob, killed at the timeout. Every ``AMLPIPE_HEARTBEAT_SECONDS``
   write ``HeartbeatAt`` on the step row, ETag-guarded; a lost write means someone else wrote the
   row: a cancel request (stop the process: SIGTERM, SIGKILL after a grace, record Canceled) or the
   watchdog moving the step on (stop the process, record nothing).
5. Exit 0: upload the outputs (completion marker last), then Running → Finished; otherwise
   Running → Failed with the last lines of stderr. Both guarded; a lost write is re-read and retried
   while the row is still this execution's and Running.
6. Return the report for the orchestrator (``amlpipe-runs``), which the trigger sends.
7. Crash recovery. A worker killed mid-step leaves the step Running and its message in the queue,
   which the host delivers again once the message lease expires. If the row's heartbeat is older
   than three heartbeat periods the worker is gone: the new delivery takes the execution over (a
   guarded Running → Running write, so only one delivery wins) and runs it again — or, if every
   output of the step carries this attempt's completion marker, recognises it as done and records
   Finished without running it. If the heartbeat is still fresh the old worker may be alive: the
   message is sent again, invisible until the heartbeat would be stale, and this delivery ends.
   The takeover writes a new ``StartTime``: the claim's fencing token. A worker that sees another
   ``StartTime`` on its row stops its process and records nothing; a worker whose heartbeats have
   failed for ``stale_after - heartbeat`` stops its process too (self-fencing).

Not in this slice: datasets and data references.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError, NotFoundError
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
from shared.orchestration.queues import StepQueue
from shared.orchestration.settings import OrchestrationSettings
from shared.pipelines._storage import key, utcnow
from shared.pipelines.runs import PipelineRun, StaleEtagError, StepRun, StepStatus, wire_string
from shared.pipelines.stores import Stores

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Heartbeat", "Outcome", "StepWorker"]

log = logging.getLogger("amlpipe.worker")

#: A step's process limit when its runconfig sets none: under the host's 10-minute functionTimeout.
DEFAULT_TIMEOUT_SECONDS = 540.0
# The only variables of the host a script inherits: an allow-list, so app settings (storage
# connection strings, identity endpoints, client secrets) are not handed to it. This is not an
# isolation boundary: a script runs as the app's user and can read the host's environment through
# /proc. Steps are not a security boundary from the app (see docs/orchestration.md).
_INHERITED_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "PYTHONUNBUFFERED"})
_INHERITED_ENV_PREFIXES = ("LC_",)
_INHERITED_ENV_WINDOWS = frozenset({"SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT"})


def _inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The host variables a step's script starts with (see ``_INHERITED_ENV``)."""
    windows = os.name == "nt"
    return {
        name: value
        for name, value in environ.items()
        if name in _INHERITED_ENV
        or name.startswith(_INHERITED_ENV_PREFIXES)
        or (windows and name.upper() in _INHERITED_ENV_WINDOWS)
    }


@dataclass(frozen=True)
class Outcome:
    """How an execution ended, as recorded on its step row."""

    status: StepStatus
    reason: str | None = None  # None for Canceled: the cancel request's reason, on the row, is kept
    retryable: bool = False


class StepFailed(AmlPipeError):
    """The step cannot run as defined (not retryable): its reason is recorded on the step."""


class Heartbeat:
    """The worker's periodic check while a process runs: write ``HeartbeatAt``, notice cancels.

    Called by :func:`~shared.orchestration.process.run_process`; returns whether the process may go on.
    After it returned False, ``canceled`` says why: a cancel request (record Canceled) or, when
    False, the step moved on to another execution or status (record nothing).
    """

    def __init__(
        self,
        stores: Stores,
        step: StepRun,
        clock: Callable[[], datetime],
        *,
        fence_after: timedelta | None = None,
    ) -> None:
        self.step = step
        self.canceled = False
        self._runs = stores.runs
        self._clock = clock
        self._fence_after = fence_after.total_seconds() if fence_after is not None else None
        self._last_beat = time.monotonic()

    def __call__(self) -> bool:
        try:
            alive = self._beat()
        except AzureError as exc:
            # A storage blip must not kill a healthy step. But once the heartbeat has failed for so
            # long that a redelivery may take the execution over, stop (self-fencing): never two
            # processes of one execution.
            log.warning("Heartbeat of %s:%s:%d failed: %s", self.step.run_id, self.step.name, self.step.attempt, exc)
            silent = time.monotonic() - self._last_beat
            if self._fence_after is not None and silent >= self._fence_after:
                log.warning(
                    "Stopping %s:%s:%d: no heartbeat written for %.0f s; it may be taken over.",
                    self.step.run_id,
                    self.step.name,
                    self.step.attempt,
                    silent,
                )
                return False
            return True
        self._last_beat = time.monotonic()
        return alive

    def _beat(self) -> bool:
        try:
            self.step = self._runs.replace_step(replace(self.step, heartbeat_at=self._clock()))
            return True
        except StaleEtagError:
            current = self._runs.get_step(self.step.run_id, self.step.name)
        if not _same_claim(current, self.step):
            log.warning(
                "Stopping %s:%s:%d: the step is now %s at attempt %d.",
                current.run_id,
                current.name,
                self.step.attempt,
                current.status.value,
                current.attempt,
            )
            return False
        self.step = current
        if current.cancel_requested_at is not None:
            self.canceled = True
            return False
        return True  # someone else wrote the row (keep its fields); beat again next period


class StepWorker:
    """Executes step executions.

    Args:
        stores: the pipeline stores (runs, graphs).
        blobs: the blob service (snapshots, PipelineData, logs).
        steps: the step queue, to send a redelivered message back for later (see the module docstring).
        settings: heartbeat period and kill grace (default: from the app settings).
        root: where working folders and the snapshot cache live (default: the temp dir).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        blobs: BlobServiceClient,
        steps: StepQueue,
        *,
        settings: OrchestrationSettings | None = None,
        root: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._root = root or Path(tempfile.gettempdir()) / "amlpipe-worker"
        self._files = StepFiles(blobs, self._root)
        self._blobs = blobs
        self._steps = steps
        self._settings = settings or OrchestrationSettings.from_env()
        self._clock = clock
        _sweep_work_dirs(self._root / "work")

    def execute(self, message: StepMessage) -> RunMessage | None:
        """Run the execution ``message`` names if it is still the step's current one; the report to send."""
        runs = self._stores.runs
        try:
            run = runs.get_run(message.run_id)
            step = runs.get_step(message.run_id, message.step)
        except NotFoundError:
            log.warning("Dropping %s: no such run or step.", message.key)
            return None
        if step.attempt == message.attempt and step.status is StepStatus.RUNNING:
            return self._redelivered(message, run, step)
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
        return self._run(run, step, resume=False)

    def _redelivered(self, message: StepMessage, run: PipelineRun, step: StepRun) -> RunMessage | None:
        """The message of a Running execution came again: take it over if its worker is gone."""
        now = self._clock()
        last = step.heartbeat_at or step.start_time or now
        stale_at = last + self._settings.stale_after
        if now < stale_at:
            # Its worker may be alive (or died a moment ago): look again once the heartbeat would be stale.
            log.info("Deferring %s: Running with a heartbeat at %s.", message.key, last.isoformat())
            self._steps.send(message, delay=max(stale_at - now, timedelta(seconds=1)))
            return None
        # A new start_time is the new claim (see _same_claim): it must differ from the lost worker's.
        start = now if step.start_time is None or now > step.start_time else step.start_time + timedelta(milliseconds=1)
        try:
            step = self._stores.runs.replace_step(replace(step, start_time=start, heartbeat_at=now))
        except StaleEtagError:
            log.info("Dropping %s: the step changed while taking it over.", message.key)
            return None
        log.warning("Taking over %s: no heartbeat since %s; its worker was lost.", message.key, last.isoformat())
        return self._run(run, step, resume=True)

    def _run(self, run: PipelineRun, step: StepRun, *, resume: bool) -> RunMessage | None:
        # Self-fence one heartbeat before a redelivery could find the heartbeat stale and take over.
        fence_after = self._settings.stale_after - self._settings.heartbeat
        beat = Heartbeat(self._stores, step, self._clock, fence_after=fence_after)
        outcome = self._outcome(run, step, beat, resume=resume)
        if outcome is None:
            return None
        return self._record(beat.step, outcome)

    def _outcome(self, run: PipelineRun, step: StepRun, beat: Heartbeat, *, resume: bool) -> Outcome | None:
        # One folder per delivery (``<pid>.<random>``): a second delivery of the same execution never
        # shares, nor deletes, the folder of one that is still running.
        work = self._root / "work" / f"{os.getpid()}.{uuid.uuid4().hex}"
        try:
            graph = self._stores.graphs.get_graph(run.graph_id)
            definition = graph.step(step.name)
            if resume and self._outputs_committed(run, step, definition):
                log.warning("%s:%s:%d had committed its outputs: recorded as done.", run.id, step.name, step.attempt)
                return Outcome(StepStatus.FINISHED)
            return self._run_in(run, step, definition, graph, work, beat, resume=resume)
        except (StepFailed, BadRequestError) as exc:
            # Deterministic (the step's definition, a malformed graph or completion marker): a retry
            # would fail the same way.
            return Outcome(StepStatus.FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 - recorded on the step: failures cross as data
            log.exception("Execution %s:%s:%d failed in the worker.", run.id, step.name, step.attempt)
            return Outcome(StepStatus.FAILED, f"The worker failed: {type(exc).__name__}: {exc}", retryable=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _outputs_committed(self, run: PipelineRun, step: StepRun, definition: Step) -> bool:
        # Each marker is written after its files and names its attempt: all present means exit 0 and
        # every upload done. A step without outputs leaves no trace, so it is run again.
        return bool(definition.outputs) and all(
            self._files.completed_attempt(run.id, output.name) == step.attempt for output in definition.outputs
        )

    def _run_in(
        self,
        run: PipelineRun,
        step: StepRun,
        definition: Step,
        graph: PipelineGraph,
        work: Path,
        beat: Heartbeat,
        *,
        resume: bool,
    ) -> Outcome | None:
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
        env = _inherited_env(os.environ)
        env.update(definition.runconfig.environment_variables)
        for name, value in _parameters(run, graph).items():
            env[f"AML_PARAMETER_{name}"] = value
        for name, folder in data.items():
            env[f"AZUREML_DATAREFERENCE_{name}"] = str(folder)
        env["AZUREML_RUN_ID"] = f"{run.id}:{step.name}:{step.attempt}"
        env["AZUREML_PIPELINE_RUN_ID"] = run.id
        logblob = LogBlob(self._blobs, log_blob_name(run.id, step.name, step.attempt), resume=resume)
        timeout = float(definition.runconfig.max_run_duration_seconds or DEFAULT_TIMEOUT_SECONDS)
        result = run_process(
            [sys.executable, definition.script_name, *args],
            cwd=src,
            env=env,
            timeout=timeout,
            sink=_best_effort(logblob, step),
            check=beat,
            check_every=self._settings.heartbeat.total_seconds(),
            kill_grace=self._settings.kill_grace.total_seconds(),
        )
        if result.stopped:
            return Outcome(StepStatus.CANCELED) if beat.canceled else None
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
                reason=outcome.reason if outcome.status is not StepStatus.CANCELED else current.reason or "Canceled.",
                retryable=outcome.retryable,
            )
            try:
                runs.replace_step(changed)
            except StaleEtagError:
                # A cancel request (or the watchdog) wrote the row: keep its fields, unless the
                # execution is no longer this one.
                current = runs.get_step(step.run_id, step.name)
                if not _same_claim(current, step):
                    log.info("Not recording %s:%s:%d: the step moved on.", step.run_id, step.name, step.attempt)
                    return None
                continue
            event = Event.STEP_FINISHED if outcome.status is StepStatus.FINISHED else Event.STEP_FAILED
            return RunMessage(step.run_id, event, step.name, step.attempt)
        raise StaleEtagError(f"Step {step.name!r} of run {step.run_id} kept changing; try again.")


def _same_claim(current: StepRun, mine: StepRun) -> bool:
    """Whether ``current`` (the row as read now) is still the claim ``mine`` holds.

    The claim is the execution (attempt), Running, and its ``start_time``, which the claim and
    every takeover write anew (ETag-guarded, so each is unique): a worker whose execution was taken
    over by a redelivery sees another ``start_time`` and must stop and record nothing.
    """
    return (
        current.attempt == mine.attempt
        and current.status is StepStatus.RUNNING
        and current.start_time == mine.start_time
    )


#: A work folder not named ``<pid>.<random>`` (an older layout) is removed once this old.
_STALE_WORK_SECONDS = 24 * 3600


def _sweep_work_dirs(work: Path) -> None:
    """Remove the work folders of worker processes that are gone (a crash leaves its folder behind)."""
    try:
        entries = list(work.iterdir())
    except OSError:
        return
    for entry in entries:
        pid_text, _, rest = entry.name.partition(".")
        if pid_text.isdigit() and rest:
            pid = int(pid_text)
            if pid == os.getpid() or _alive(pid):
                continue
        else:
            try:
                if time.time() - entry.stat().st_mtime < _STALE_WORK_SECONDS:
                    continue
            except OSError:
                continue
        log.info("Removing the stale work folder %s.", entry)
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no harmless probe (os.kill would end it): leave the folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _best_effort(logblob: LogBlob, step: StepRun) -> Callable[[bytes], None]:
    """``logblob.append``, but a failed append is logged and skipped: the step's process goes on."""

    def append(data: bytes) -> None:
        try:
            logblob.append(data)
        except AzureError as exc:
            log.warning(
                "Dropped %d bytes of the log of %s:%s:%d: %s", len(data), step.run_id, step.name, step.attempt, exc
            )

    return append


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
        clients = storage.clients()
        _default = StepWorker(default_stores(), clients.blobs, StepQueue.of(clients.queues))
    return _default
