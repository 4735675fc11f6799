"""The orchestration's app settings: heartbeat, watchdog limits and retries, read once from the environment.

    AMLPIPE_HEARTBEAT_SECONDS               10     a running step's heartbeat (and cancel check) period
    AMLPIPE_KILL_GRACE_SECONDS              5      SIGTERM → SIGKILL wait when a step is canceled
    AMLPIPE_WATCHDOG_LEASE_SECONDS          900    a Running step silent this long is lost (watchdog)
    AMLPIPE_WATCHDOG_QUEUED_SECONDS         900    a Queued step not started this long is lost (watchdog)
    AMLPIPE_WATCHDOG_CANCEL_GRACE_SECONDS   60     an unacknowledged step cancel is sent again
    AMLPIPE_RUN_TIMEOUT_SECONDS             (none) a run Running longer than this is canceled
    AMLPIPE_WATCHDOG_WINDOW_HOURS           168    the watchdog looks at runs created this recently
    AMLPIPE_STEP_MAX_RETRIES                0      retries of a retryable failure (lost execution, worker error)
    AMLPIPE_STEP_RETRY_BACKOFF_SECONDS      10     the first retry's delay (doubling, at most 10 min)
    AMLPIPE_LOCAL_MAX_NODES                 (none) steps the built-in ``local`` target runs at once

The watchdog's lease is deliberately longer than the Functions host's 10-minute queue message lease:
a worker that dies mid-step leaves its message in the queue, and its redelivery resumes the execution
(see :mod:`shared.orchestration.worker`). The watchdog is the backstop for a message that was lost
or poisoned, so it should not race the redelivery.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from shared.orchestration.state import Limits, RetryPolicy
from shared.timespan import try_parse_timespan

__all__ = ["OrchestrationSettings", "STEP_COMMIT_MARGIN", "step_time_limit"]

#: The app's own host.json (next to function_app.py): its functionTimeout bounds every step.
HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
#: The part of an invocation kept for what follows the script: uploading outputs, recording the step.
STEP_COMMIT_MARGIN = timedelta(seconds=30)

#: Missed heartbeats after which a worker that receives the execution's message again takes it over.
STALE_HEARTBEATS = 3


def _seconds(settings: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = settings.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"App setting {name} must be a number of seconds, not {raw!r}.") from exc
    if value <= 0:
        raise ValueError(f"App setting {name} must be positive, not {raw!r}.")
    return value


@dataclass(frozen=True)
class OrchestrationSettings:
    """Timing and retry settings of the orchestrator, the worker and the watchdog."""

    heartbeat: timedelta = timedelta(seconds=10)
    kill_grace: timedelta = timedelta(seconds=5)
    limits: Limits = Limits(
        queued_timeout=timedelta(minutes=15), lease=timedelta(minutes=15), cancel_grace=timedelta(minutes=1)
    )
    window: timedelta = timedelta(days=7)
    retry: RetryPolicy = RetryPolicy()
    #: The built-in ``local`` target's max_nodes; None: unlimited (the step queue's concurrency bounds it).
    local_max_nodes: int | None = None

    @property
    def stale_after(self) -> timedelta:
        """A Running execution whose heartbeat is older than this has lost its worker."""
        return self.heartbeat * STALE_HEARTBEATS

    @classmethod
    def from_env(cls, settings: Mapping[str, str] | None = None) -> OrchestrationSettings:
        """The settings in ``settings`` (default: the environment); defaults for those unset.

        Raises:
            ValueError: a setting is not a positive number.
        """
        env = os.environ if settings is None else settings
        default = cls()

        def span(name: str, fallback: timedelta) -> timedelta:
            value = _seconds(env, name, fallback.total_seconds())
            assert value is not None
            return timedelta(seconds=value)

        run_timeout = _seconds(env, "AMLPIPE_RUN_TIMEOUT_SECONDS", None)
        hours = _seconds(env, "AMLPIPE_WATCHDOG_WINDOW_HOURS", default.window.total_seconds() / 3600)
        assert hours is not None
        raw_local = (env.get("AMLPIPE_LOCAL_MAX_NODES") or "").strip()
        if raw_local and (not raw_local.isdigit() or int(raw_local) < 1):
            raise ValueError(f"App setting AMLPIPE_LOCAL_MAX_NODES must be a whole number ≥ 1, not {raw_local!r}.")
        raw_retries = env.get("AMLPIPE_STEP_MAX_RETRIES") or "0"
        if not raw_retries.strip().isdigit():
            raise ValueError(f"App setting AMLPIPE_STEP_MAX_RETRIES must be a whole number ≥ 0, not {raw_retries!r}.")
        return cls(
            heartbeat=span("AMLPIPE_HEARTBEAT_SECONDS", default.heartbeat),
            kill_grace=span("AMLPIPE_KILL_GRACE_SECONDS", default.kill_grace),
            limits=Limits(
                queued_timeout=span("AMLPIPE_WATCHDOG_QUEUED_SECONDS", default.limits.queued_timeout),
                lease=span("AMLPIPE_WATCHDOG_LEASE_SECONDS", default.limits.lease),
                cancel_grace=span("AMLPIPE_WATCHDOG_CANCEL_GRACE_SECONDS", default.limits.cancel_grace),
                run_timeout=timedelta(seconds=run_timeout) if run_timeout is not None else None,
            ),
            window=timedelta(hours=hours),
            retry=RetryPolicy(
                max_retries=int(raw_retries),
                backoff=span("AMLPIPE_STEP_RETRY_BACKOFF_SECONDS", default.retry.backoff),
            ),
            local_max_nodes=int(raw_local) if raw_local else None,
        )


def step_time_limit(host_json: Path = HOST_JSON) -> timedelta | None:
    """The longest a step's script may run: the app's ``functionTimeout`` less :data:`STEP_COMMIT_MARGIN`.

    A step runs inside one invocation of the step queue trigger, which the Functions host ends at
    ``functionTimeout`` (and then delivers the message again, until it is poisoned). None when the
    app sets no limit (``-1``) or has no host.json (the host's default then applies; not knowable here).

    Raises:
        ValueError: host.json is unreadable or its functionTimeout is not a TimeSpan.
    """
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{host_json} cannot be read: {exc}") from exc
    raw = data.get("functionTimeout") if isinstance(data, dict) else None
    if raw is None or str(raw).strip() == "-1":
        return None
    timeout = try_parse_timespan(str(raw))
    if timeout is None:
        raise ValueError(f"{host_json}: functionTimeout {raw!r} is not a TimeSpan (hh:mm:ss).")
    return max(timeout - STEP_COMMIT_MARGIN, timedelta(seconds=1))
