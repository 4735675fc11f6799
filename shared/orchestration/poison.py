"""Messages the Functions host gave up on: their run learns why, instead of waiting for the watchdog.

A queue message whose function fails ``maxDequeueCount`` times (host.json) is moved to
``<queue>-poison``. Two functions read those queues and hand the bodies here:

* a poisoned **step** message: the execution it names could not even be started or recorded. If
  the step is still at that attempt and Queued, or Running without a fresh heartbeat (a live worker
  holds it otherwise), it becomes Failed (retryable: the step's retry policy applies) with the
  reason, and the orchestrator is asked to decide (retries, ``continue_on_step_failure`` and the
  run's end follow as for any failure).
* a poisoned **run** message: the orchestrator itself cannot advance the run, so it cannot be asked
  to end it either. The run is written Failed with the reason, its steps that have not started are
  Canceled and its running steps are asked to stop (their workers see the request at their next
  heartbeat, kill the script and record Canceled).

Both are idempotent (a poison message may be delivered twice too): a step no longer at that attempt,
or a run already ended, is left as it is — except that the steps of a failed run are swept again,
so a crash between the run's write and its steps' is mended by the redelivery. A body that is not
a message at all is logged and dropped: there is no run to tell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from shared.errors import BadRequestError, NotFoundError
from shared.orchestration.actions import Event
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.settings import OrchestrationSettings
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import PipelineRun, RunStatus, StaleEtagError, StepStatus
from shared.pipelines.stores import Stores

__all__ = ["PoisonHandler"]

log = logging.getLogger("amlpipe.orchestrator")

_ROUNDS = 8


class PoisonHandler:
    """Records on their runs the messages that ended in a poison queue.

    Args:
        stores: the pipeline stores.
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        *,
        clock: Callable[[], datetime] = utcnow,
        settings: OrchestrationSettings | None = None,
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._fresh = (settings or OrchestrationSettings.from_env()).stale_after

    def step_message(self, body: bytes | str, queue: str) -> RunMessage | None:
        """A step message the workers gave up on; the report that makes the orchestrator decide, if any."""
        try:
            message = StepMessage.parse(body)
        except (BadRequestError, KeyError, ValueError) as exc:
            log.error("Dropping an undecodable message from %s: %s", queue, exc)
            return None
        runs = self._stores.runs
        reason = (
            f"Attempt {message.attempt} could not be run: its message failed every delivery and was moved to"
            f" {queue!r}. The app's logs have each failure of execution {message.key}."
        )
        for _ in range(_ROUNDS):
            try:
                step = runs.get_step(message.run_id, message.step)
            except NotFoundError:
                log.warning("Dropping poisoned %s: no such run or step.", message.key)
                return None
            if step.status is StepStatus.FAILED and step.attempt == message.attempt and step.reason == reason:
                # Recorded by an earlier delivery whose report may have been lost: report again.
                return RunMessage(message.run_id, Event.STEP_FAILED, message.step, message.attempt)
            if step.attempt != message.attempt or step.status not in (StepStatus.QUEUED, StepStatus.RUNNING):
                log.info(
                    "Poisoned %s: the step is %s at attempt %d; nothing to do.", message.key, step.status, step.attempt
                )
                return None
            now = self._clock()
            last = step.heartbeat_at or step.start_time
            if step.status is StepStatus.RUNNING and last is not None and now - last < self._fresh:
                # A worker holds the execution and is alive: the poisoned copy is a stale duplicate.
                log.info("Poisoned %s: the step is Running with a fresh heartbeat; left to its worker.", message.key)
                return None
            # Retryable: a message that could not be processed says nothing against the step itself,
            # so the step's retry policy decides (without retries, the step and the run fail).
            failed = replace(step, status=StepStatus.FAILED, end_time=now, reason=reason, retryable=True)
            try:
                runs.replace_step(failed)
            except StaleEtagError:
                continue
            log.error("Poisoned %s: the step is recorded Failed.", message.key)
            return RunMessage(message.run_id, Event.STEP_FAILED, message.step, message.attempt)
        raise StaleEtagError(f"Step {message.step!r} of run {message.run_id} kept changing; try again.")

    def run_message(self, body: bytes | str, queue: str) -> None:
        """A run message the orchestrator gave up on: the run ends Failed with the reason."""
        try:
            message = RunMessage.parse(body)
        except (BadRequestError, KeyError, ValueError) as exc:
            log.error("Dropping an undecodable message from %s: %s", queue, exc)
            return
        reason = (
            f"The orchestrator could not advance this run: a message for it failed every delivery and was"
            f" moved to {queue!r}. The app's logs have each failure of run {message.run_id}."
        )
        now = self._clock()

        def fail(run: PipelineRun) -> PipelineRun:
            if run.status.is_terminal:
                return run
            return replace(run, status=RunStatus.FAILED, end_time=now, status_detail=reason, last_modified_date=now)

        try:
            current = self._stores.runs.get_run(message.run_id)
        except NotFoundError:
            log.warning("Dropping a poisoned message for run %s: no such run.", message.run_id)
            return
        if current.status.is_terminal:
            log.info("Poisoned message for run %s, which is %s; nothing to do.", current.id, current.status.value)
            return
        # Its steps first, then the run: whoever sees the run ended sees its steps ended (or asked
        # to stop) too. A crash in between leaves the run active; the redelivery finishes the job.
        self._stop_steps(current, reason, now)
        run = self._stores.runs.update_run(message.run_id, fail)
        if run.status is not RunStatus.FAILED:
            log.info("Poisoned message for run %s, which is %s; nothing to do.", run.id, run.status.value)
            return
        log.error("Run %s is recorded Failed: %s", run.id, reason)
        self._stores.runs.mark_ended(run.id)

    def _stop_steps(self, run: PipelineRun, reason: str, now: datetime) -> None:
        runs = self._stores.runs
        for step in runs.list_steps(run.id):
            for _ in range(_ROUNDS):
                if step.status in (StepStatus.NOT_STARTED, StepStatus.QUEUED):
                    changed = replace(step, status=StepStatus.CANCELED, end_time=now, reason=f"Canceled: {reason}")
                elif step.status is StepStatus.RUNNING and step.cancel_requested_at is None:
                    changed = replace(step, cancel_requested_at=now, reason=f"Canceled: {reason}")
                else:
                    break
                try:
                    runs.replace_step(changed)
                    break
                except StaleEtagError:
                    step = runs.get_step(run.id, step.name)
