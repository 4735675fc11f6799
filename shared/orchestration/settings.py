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

The watchdog's lease is deliberately longer than the Functions host's 10-minute queue message lease:
a worker that dies mid-step leaves its message in the queue, and its redelivery resumes the execution
(see :mod:`shared.orchestration.worker`). The watchdog is the backstop for a message that was lost
or poisoned, so it should not race the redelivery.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from shared.orchestration.state import Limits, RetryPolicy

__all__ = ["OrchestrationSettings"]

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
        )
