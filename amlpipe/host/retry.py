"""``@app.retry`` policies, as the Functions host applies them (pure logic).

The host retries a failed invocation in-process for the triggers that support retry policies; of
those served here that is the timer trigger. Queue and blob triggers keep their own retries
(``maxDequeueCount``), and HTTP has none: a policy on them is ignored with a warning at start.

* ``fixed_delay``: ``delay_interval`` between attempts.
* ``exponential_backoff``: ``minimum_interval`` doubled each retry, capped at ``maximum_interval``.
* ``max_retry_count``: retries after the first attempt; ``-1`` retries until the function succeeds
  (or the host stops).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from amlpipe.host.errors import HostConfigError
from amlpipe.host.settings import parse_timespan

#: Trigger types whose functions the host retries by policy.
RETRYABLE_TRIGGERS = ("timerTrigger",)


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str
    max_retry_count: int
    delay_interval: timedelta = timedelta(0)
    minimum_interval: timedelta = timedelta(0)
    maximum_interval: timedelta = timedelta(0)

    @classmethod
    def parse(cls, settings: Mapping[str, Any], *, function: str) -> RetryPolicy:
        what = f"Function '{function}' retry policy"
        strategy = str(settings.get("strategy", "")).lower()
        try:
            count = int(settings.get("max_retry_count", 0))
        except (TypeError, ValueError) as exc:
            raise HostConfigError(f"{what}: max_retry_count must be an integer (-1 for no limit).") from exc
        if count < -1:
            raise HostConfigError(f"{what}: max_retry_count must be -1 or more.")
        if strategy == "fixed_delay":
            delay = parse_timespan(str(settings.get("delay_interval", "")), what=f"{what} delay_interval")
            return cls(strategy, count, delay_interval=delay)
        if strategy == "exponential_backoff":
            low = parse_timespan(str(settings.get("minimum_interval", "")), what=f"{what} minimum_interval")
            high = parse_timespan(str(settings.get("maximum_interval", "")), what=f"{what} maximum_interval")
            if high < low:
                raise HostConfigError(f"{what}: maximum_interval must not be below minimum_interval.")
            return cls(strategy, count, minimum_interval=low, maximum_interval=high)
        raise HostConfigError(f"{what}: strategy must be 'fixed_delay' or 'exponential_backoff', not {strategy!r}.")

    def allows(self, retry: int) -> bool:
        """Whether retry number ``retry`` (1 for the first retry) may run."""
        return self.max_retry_count == -1 or retry <= self.max_retry_count

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry``."""
        if self.strategy == "fixed_delay":
            return self.delay_interval.total_seconds()
        grown = self.minimum_interval * (1 << min(retry - 1, 30))
        return min(grown, self.maximum_interval).total_seconds()
