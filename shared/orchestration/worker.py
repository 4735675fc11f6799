"""The step worker's I/O layer: execute one step execution named by an ``amlpipe-steps`` message.

``StepWorker.execute(message)`` is what the step queue trigger calls:

1. Drop the message unless the step row is this execution's (``attempt``) and Queued — or Running
   with a stale heartbeat, see 7 (a duplicate, or a late message of an older execution, is a
   logged no-op).
2. Queued → Running, guarded by the row's ETag (Queued → Canceled instead if a cancel is pending);
   losing that write means another delivery or the orchestrator got there first: drop.
3. Materialise a private working folder: the snapshot (cached by sha) in ``src``, a folder per
   PipelineData output, every input downloaded into a folder of its own (datasets, data
   references, datapath parameters, PipelineData: see :mod:`~shared.orchestration.inputs`), and the
   run context ``.amlpipe/context.json`` that ``Run.get_context()`` reads
   (:mod:`~shared.orchestration.run_context`).
4. Run the step in ``src``: ``python <script_name> <arguments>`` (python_script, estimator) or its
   command (command: a string through ``/bin/sh -c``, a list as argv) with ``AML_PARAMETER_<name>``,
   ``AZUREML_DATAREFERENCE_<name>`` and ``AMLPIPE_RUN_CONTEXT`` set (argv and environment:
   :mod:`~shared.orchestration.step_process`), streaming its output into the
   execution's log blob, killed at the timeout. A ``data_transfer`` step runs no process: its copy
   runs here, streamed between datastores (:mod:`~shared.orchestration.transfer`), and then commits
   as in 5. Every ``AMLPIPE_HEARTBEAT_SECONDS``
   write ``HeartbeatAt`` on the step row, ETag-guarded; a lost write means someone else wrote the
   row: a cancel request (stop the process: SIGTERM, SIGKILL after a grace, record Canceled) or the
   watchdog moving the step on (stop the process, record nothing).
5. Exit 0: upload the outputs, each to the datastore its PipelineData names (completion marker last,
   in the default container), then Running → Finished; otherwise Running → Failed with the last
   lines of stderr. Both guarded; a lost write is re-read and retried while the row is still this
   execution's and Running. An output that cannot be written where its PipelineData says fails the
   step without retry, found before the script runs (a datastore not registered or registered with
   a SAS token, a bucket or container that is gone, a credential refused) or, if it changes
   meanwhile, when written. An upload asks the heartbeat before each file and before the marker: an
   execution taken over meanwhile stops there and never publishes over its successor's marker.
6. Return the report for the orchestrator (``amlpipe-runs``), which the trigger sends.
7. Crash recovery. A worker killed mid-step leaves the step Running and its message in the queue,
   which the host delivers again once the message lease expires. If the row's heartbeat is older
   than three heartbeat periods the worker is gone: the new delivery takes the execution over (a
   guarded Running → Running write, so only one delivery wins) and runs it again — or, if the
   attempt's execution marker (written after every output, artifact and model) is there, recognises
   it as done and records Finished without running it. If the heartbeat is still fresh the old worker may be alive: the
   message is sent again, invisible until the heartbeat would be stale, and this delivery ends.
   The takeover writes a new ``StartTime``: the claim's fencing token. A worker that sees another
   ``StartTime`` on its row stops its process and records nothing; a worker whose heartbeats have
   failed for ``stale_after - heartbeat`` stops its process too (self-fencing).

An input that cannot be read as defined (a missing dataset, datastore or path, an unsafe blob name)
fails the step with a reason naming it, not retried; a storage fault while downloading is retryable.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError, NotFoundError
from shared.graph.model import PipelineDataInput, PipelineGraph, Step
from shared.orchestration.actions import Event
from shared.orchestration.files import LogBlob, OutputStopped, StepFiles, log_blob_name
from shared.orchestration.fingerprint import INPUT_PART_PREFIX, input_part, parameter_values
from shared.orchestration.heartbeat import Heartbeat, Pulse, same_claim
from shared.orchestration.inputs import DataAccess, LocalInput, datapath_values, materialise_inputs
from shared.orchestration.journal import RunJournal
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.process import run_process
from shared.orchestration.queues import StepQueue
from shared.orchestration.run_context import CONTEXT_ENV, write_run_context
from shared.orchestration.settings import OrchestrationSettings, step_time_limit
from shared.orchestration.step_process import StepFailed, check_runnable, step_argv, step_environment
from shared.orchestration.transfer import TransferStopped, run_transfer
from shared.pipelines._storage import key, utcnow
from shared.pipelines.runs import PipelineRun, StaleEtagError, StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.redaction import redacted_traceback
from shared.registry import WorkspaceRegistry
from shared.storage import StorageAccount

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "Outcome", "StepWorker"]

log = logging.getLogger("amlpipe.worker")

#: Graphs kept in memory by the worker (each is read once per process, not once per step).
_GRAPH_CACHE = 64
#: How often the running script's supervisor looks at the pulse (a cancel stops it within this).
_CHECK_SECONDS = 0.5
#: A step's process limit when neither its runconfig nor the app's host.json sets one.
DEFAULT_TIMEOUT_SECONDS = 540.0


@dataclass(frozen=True)
class Outcome:
    """How an execution ended, as recorded on its step row."""

    status: StepStatus
    reason: str | None = None  # None for Canceled: the cancel request's reason, on the row, is kept
    retryable: bool = False
    #: Why this execution must not be indexed for reuse (the content it read is not what was fingerprinted).
    not_indexed: str | None = None


class StepWorker:
    """Executes step executions.

    Args:
        stores: the pipeline stores (runs, graphs).
        blobs: the blob service (snapshots, PipelineData, logs; the default datastore).
        steps: the step queue, to send a redelivered message back for later (see the module docstring).
        registry: the workspace's datasets and datastores, for inputs (default: ``default_registry()``,
            opened when a step first needs it).
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
        registry: WorkspaceRegistry | None = None,
        settings: OrchestrationSettings | None = None,
        root: Path | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._registry = registry
        self._root = root or Path(tempfile.gettempdir()) / "amlpipe-worker"
        self._files = StepFiles(blobs, self._root, datastores=lambda: self._workspace().datastores)
        self._blobs = blobs
        self._steps = steps
        self._settings = settings or OrchestrationSettings.from_env()
        self._clock = clock
        self._time_limit = step_time_limit()
        self._graphs: dict[str, PipelineGraph] = {}  # content-addressed: a cached graph never goes stale
        self._graphs_lock = threading.Lock()
        _sweep_work_dirs(self._root / "work")

    def execute(self, message: StepMessage) -> RunMessage | None:
        """Run the execution ``message`` names if it is still the step's current one; the report to send."""
        runs = self._stores.runs
        try:
            run, (step,) = runs.get_run_with_steps(message.run_id, message.step)
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
        if run.cancel_requested or run.status.is_terminal or step.cancel_requested_at is not None:
            # Its worker is gone and the step was to stop anyway: record that instead of running it again.
            reason = step.reason or "Canceled: its worker was lost while a cancel was pending."
            try:
                self._stores.runs.replace_step(replace(step, status=StepStatus.CANCELED, end_time=now, reason=reason))
            except StaleEtagError:
                return None
            return RunMessage(message.run_id, Event.STEP_FAILED, message.step, message.attempt)
        # A new start_time is the new claim (see same_claim): it must differ from the lost worker's.
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
        # The pulse beats for the whole execution (downloads, script, commit), not only the script.
        with Pulse(beat, self._settings.heartbeat.total_seconds()) as pulse:
            outcome = self._outcome(run, step, pulse, resume=resume)
        if beat.fenced:
            # Nothing is known to be recorded and storage was unreachable: fail the invocation so the
            # host delivers the message again; that delivery takes over (and finds a committed
            # execution done) once the heartbeat is stale, instead of waiting for the watchdog.
            raise AmlPipeError(f"Execution {run.id}:{step.name}:{step.attempt} stopped: its heartbeats kept failing.")
        if outcome is None:
            return None
        if not pulse.alive and not beat.canceled:
            log.info("Not recording %s:%s:%d: the execution was taken over.", run.id, step.name, step.attempt)
            return None
        return self._record(beat.step, outcome)

    def _outcome(self, run: PipelineRun, step: StepRun, pulse: Pulse, *, resume: bool) -> Outcome | None:
        # One folder per delivery (``<pid>.<random>``): a second delivery of the same execution never
        # shares, nor deletes, the folder of one that is still running.
        work = self._root / "work" / f"{os.getpid()}.{uuid.uuid4().hex}"
        try:
            graph = self._graph(run.graph_id)
            definition = graph.step(step.name)
            if resume and self._files.execution_committed(run.id, step.name, step.attempt):
                log.warning("%s:%s:%d had committed everything: recorded as done.", run.id, step.name, step.attempt)
                return Outcome(StepStatus.FINISHED)
            return self._run_in(run, step, definition, graph, work, pulse, resume=resume)
        except (StepFailed, BadRequestError) as exc:
            # Deterministic (the step's definition, a malformed graph or completion marker): a retry
            # would fail the same way.
            return Outcome(StepStatus.FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 - recorded on the step: failures cross as data
            # Redacted: a storage error may quote the URL it failed on, with its SAS.
            log.error(
                "Execution %s:%s:%d failed in the worker.\n%s",
                run.id,
                step.name,
                step.attempt,
                redacted_traceback(exc),
            )
            # The detail (paths, account and container names) stays in the app's logs, not on the row
            # every Reader sees.
            reason = f"The worker failed ({type(exc).__name__}); the app's logs name execution {step.run_id}:"
            return Outcome(StepStatus.FAILED, f"{reason}{step.name}:{step.attempt}.", retryable=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _workspace(self) -> WorkspaceRegistry:
        if self._registry is None:
            from shared.registry import default_registry

            self._registry = default_registry()
        return self._registry

    def _inputs(self, run: PipelineRun, graph: PipelineGraph, definition: Step, work: Path) -> dict[str, LocalInput]:
        """Every input of ``definition`` downloaded into ``work`` (see :mod:`~shared.orchestration.inputs`)."""
        if not definition.inputs:
            return {}
        datapaths = datapath_values(graph, run.data_paths)
        with DataAccess(self._workspace(), self._blobs) as access:
            return materialise_inputs(definition, work, access=access, run_id=run.id, datapaths=datapaths)

    def _transfer(
        self, run: PipelineRun, step: StepRun, definition: Step, graph: PipelineGraph, pulse: Pulse, *, resume: bool
    ) -> Outcome | None:
        """Run a ``data_transfer`` step in this process (:mod:`~shared.orchestration.transfer`), then commit
        as a script step does: its output's completion marker (written by the copy, last), the execution
        marker, Finished. Heartbeats, cancel and the time limit stop the copy between chunks."""
        timeout = self._timeout(definition)
        deadline = time.monotonic() + timeout
        timed_out = False

        def check() -> None:
            nonlocal timed_out
            if not pulse.alive:
                raise TransferStopped("The execution was stopped.")
            if time.monotonic() > deadline:
                timed_out = True
                raise TransferStopped(f"The copy ran longer than {timeout:g} seconds.")

        logblob = LogBlob(self._blobs, log_blob_name(run.id, step.name, step.attempt), resume=resume)
        append = _best_effort(logblob, step)
        datapaths = datapath_values(graph, run.data_paths)
        try:
            with DataAccess(self._workspace(), self._blobs) as access:
                report = run_transfer(
                    definition,
                    access=access,
                    blobs=self._blobs,
                    data=self._files.data,
                    run_id=run.id,
                    attempt=step.attempt,
                    datapaths=datapaths,
                    check=check,
                    say=lambda line: append(f"{line}\n".encode()),
                )
        except TransferStopped:
            if not timed_out:
                return _stopped(pulse)
            append(f"Stopped: the copy ran longer than {timeout:g} seconds.\n".encode())
            retry = definition.retry_settings is not None and definition.retry_settings.max_retries > 0
            reason = f"The copy ran longer than {timeout:g} seconds and was stopped."
            return Outcome(StepStatus.FAILED, reason, retryable=retry)
        except (StepFailed, BadRequestError) as exc:
            append(f"Failed: {exc.message}\n".encode())
            raise
        except Exception as exc:
            append(f"Failed: a storage fault ({type(exc).__name__}); the copy may be tried again.\n".encode())
            raise
        if not pulse.alive:
            return _stopped(pulse)
        self._files.commit_execution(run.id, step.name, step.attempt)
        drifted = _drifted_inputs(run, graph, definition, step, {definition.inputs[0].name: report.source_identity})
        if drifted:
            return Outcome(StepStatus.FINISHED, not_indexed=_not_indexed(drifted))
        return Outcome(StepStatus.FINISHED)

    def _run_in(
        self,
        run: PipelineRun,
        step: StepRun,
        definition: Step,
        graph: PipelineGraph,
        work: Path,
        pulse: Pulse,
        *,
        resume: bool,
    ) -> Outcome | None:
        check_runnable(definition)
        if definition.kind == "data_transfer":
            return self._transfer(run, step, definition, graph, pulse, resume=resume)
        for output in definition.outputs:  # a datastore that cannot be written fails before the script runs
            self._files.data.check_output(run.id, output.name, output.datastore)
        began = time.perf_counter()
        src = work / "src"
        shutil.rmtree(work, ignore_errors=True)
        src.mkdir(parents=True)
        if definition.snapshot is not None:
            self._files.materialise_snapshot(definition.snapshot.sha256, src)
        data: dict[str, Path] = {}
        for output in definition.outputs:
            data[output.name] = work / "outputs" / key(output.name)
            data[output.name].mkdir(parents=True)
        local = self._inputs(run, graph, definition, work)
        drifted = _drifted_inputs(run, graph, definition, step, {name: item.identity for name, item in local.items()})
        inputs = {name: item.path for name, item in local.items()}
        for item in definition.inputs:
            if isinstance(item, PipelineDataInput):
                data.setdefault(item.pipeline_data, inputs[item.name])
        context = write_run_context(
            work, run_id=run.id, step=step.name, attempt=step.attempt, experiment=run.experiment_name, inputs=local
        )
        env = step_environment(run, step, graph, definition, data, inputs)
        env[CONTEXT_ENV] = str(context)
        argv = step_argv(run, graph, definition, data, inputs, src=src, env=env)
        logblob = LogBlob(self._blobs, log_blob_name(run.id, step.name, step.attempt), resume=resume)
        # Read the context before the script starts: the script could rewrite the file.
        journal = RunJournal.from_context(self._stores, context, resumed=resume)
        pulse.attach(journal.poll)  # metrics become visible while the script runs; never raises
        timeout = self._timeout(definition)
        started = time.perf_counter()
        result = run_process(
            argv,
            cwd=src,
            env=env,
            timeout=timeout,
            sink=_best_effort(logblob, step),
            check=lambda: pulse.alive,
            check_every=_CHECK_SECONDS,
            kill_grace=self._settings.kill_grace.total_seconds(),
        )
        pulse.detach()  # waits for a poll under way: from here the journal is this thread's alone
        ended = time.perf_counter()
        if not pulse.alive and not pulse.beat.canceled:
            return None  # another delivery owns the execution now: its journal is not ours to finish
        journal.finish()
        if result.stopped:
            return Outcome(StepStatus.CANCELED)
        # A script's own failure is retried only when its step asked for retries (retry_settings).
        retry = definition.retry_settings is not None and definition.retry_settings.max_retries > 0
        if result.timed_out:
            reason = f"The script ran longer than {timeout:g} seconds and was stopped."
            return Outcome(StepStatus.FAILED, reason, retryable=retry)
        if result.returncode != 0:
            tail = f":\n{result.stderr_tail}" if result.stderr_tail else "."
            return Outcome(StepStatus.FAILED, f"The script exited with code {result.returncode}{tail}", retryable=retry)
        outcome = self._commit(run, step, definition, data, journal, src, pulse)
        if outcome is not None and drifted:
            outcome = replace(outcome, not_indexed=_not_indexed(drifted))
        log.info(
            "Execution %s:%s:%d: prepared in %.0f ms, ran %.0f ms, committed in %.0f ms.",
            run.id,
            step.name,
            step.attempt,
            (started - began) * 1000,
            (ended - started) * 1000,
            (time.perf_counter() - ended) * 1000,
        )
        return outcome

    def _commit(
        self,
        run: PipelineRun,
        step: StepRun,
        definition: Step,
        data: Mapping[str, Path],
        journal: RunJournal,
        src: Path,
        pulse: Pulse,
    ) -> Outcome | None:
        """The script exited 0: commit its outputs, then its artifacts and models, then the execution.

        Each part is committed only while the execution is still this worker's (the pulse says so), so
        a delivery that was taken over writes nothing more. Models come after the outputs so that a
        failed output upload registers nothing; the execution marker comes last, and only it lets a
        takeover record the step Finished without running it again.
        """
        for output in definition.outputs:
            try:
                self._files.upload_output(
                    run.id,
                    output.name,
                    data[output.name],
                    attempt=step.attempt,
                    datastore=output.datastore,
                    alive=lambda: pulse.alive,
                )
            except OutputStopped:
                return _stopped(pulse)
        if not pulse.alive:
            return _stopped(pulse)
        committed = journal.commit(src)
        if not pulse.alive:
            return _stopped(pulse)
        if definition.outputs or committed.artifacts or committed.models:
            # Nothing committed, nothing to mark: a takeover then runs the script again, which
            # costs what recording it done would have saved and cannot register or publish twice.
            self._files.commit_execution(run.id, step.name, step.attempt)
        return Outcome(StepStatus.FINISHED)

    def _graph(self, graph_id: str) -> PipelineGraph:
        with self._graphs_lock:
            found = self._graphs.get(graph_id)
        if found is None:
            found = self._stores.graphs.get_graph(graph_id)
            with self._graphs_lock:
                if len(self._graphs) >= _GRAPH_CACHE:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[graph_id] = found
        return found

    def _timeout(self, definition: Step) -> float:
        """How long the step's process may run: its ``max_run_duration_seconds``, within the app's limit.

        Publishing refuses a longer duration; this also bounds graphs published before
        ``functionTimeout`` was lowered, so the host never ends the invocation mid-step.
        """
        limit = self._time_limit.total_seconds() if self._time_limit is not None else None
        requested = definition.runconfig.max_run_duration_seconds
        timeout = float(requested) if requested is not None else (limit or DEFAULT_TIMEOUT_SECONDS)
        return min(timeout, limit) if limit is not None else timeout

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
            if outcome.not_indexed is not None:  # never offered for reuse under a fingerprint it does not match
                changed = replace(
                    changed,
                    reuse_key=None,
                    reuse_reason=" ".join(r for r in (current.reuse_reason, outcome.not_indexed) if r),
                )
            try:
                runs.replace_step(changed)
            except StaleEtagError:
                # A cancel request (or the watchdog) wrote the row: keep its fields, unless the
                # execution is no longer this one.
                current = runs.get_step(step.run_id, step.name)
                if not same_claim(current, step):
                    log.info("Not recording %s:%s:%d: the step moved on.", step.run_id, step.name, step.attempt)
                    return None
                continue
            event = Event.STEP_FINISHED if outcome.status is StepStatus.FINISHED else Event.STEP_FAILED
            return RunMessage(step.run_id, event, step.name, step.attempt)
        raise StaleEtagError(f"Step {step.name!r} of run {step.run_id} kept changing; try again.")


#: A work folder not named ``<pid>.<random>`` (an older layout) is removed once this old.
_STALE_WORK_SECONDS = 24 * 3600


def _stopped(pulse: Pulse) -> Outcome | None:
    """Why a commit stopped part-way: a cancel (record the step Canceled, so the run can end) or the
    execution moved on to another delivery (record nothing)."""
    return Outcome(StepStatus.CANCELED) if pulse.beat.canceled else None


def _not_indexed(drifted: list[str]) -> str:
    names = ", ".join(repr(n) for n in drifted)
    return (
        f"Not indexed for reuse: input {names} changed between queueing and running, so what it read is not"
        " what its fingerprint describes."
    )


def _drifted_inputs(
    run: PipelineRun, graph: PipelineGraph, definition: Step, step: StepRun, identities: Mapping[str, str | None]
) -> list[str]:
    """The datastore inputs whose content, as read (``identities``: input name → its listing's identity),
    is not what the step's fingerprint recorded when it was queued (a dataset version registered, a blob
    written, in between)."""
    if step.reuse_key is None or step.reuse_parts is None:
        return []
    values = parameter_values(graph, run.parameters, run.data_paths)
    drifted = []
    for item in definition.inputs:
        if isinstance(item, PipelineDataInput):
            continue  # its marker fixed its content when its producer committed (and is checked on download)
        stored = step.reuse_parts.get(INPUT_PART_PREFIX + item.name)
        if stored is None or stored != input_part(item, values, identities.get(item.name)):
            drifted.append(item.name)
    return drifted


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


_default: dict[StorageAccount, StepWorker] = {}
_default_lock = threading.Lock()


def default_worker() -> StepWorker:
    """The process-wide worker on the app's storage account (``AzureWebJobsStorage``)."""
    from shared import storage
    from shared.pipelines.stores import default_stores

    account = storage.StorageAccount.from_settings()
    with _default_lock:
        found = _default.get(account)
        if found is None:
            clients = storage.clients()
            found = _default[account] = StepWorker(default_stores(), clients.blobs, StepQueue.of(clients.queues))
        return found
