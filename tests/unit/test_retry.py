"""@app.retry policies (pure logic)."""

from __future__ import annotations

import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.retry import RetryPolicy


def test_fixed_delay() -> None:
    policy = RetryPolicy.parse(
        {"strategy": "fixed_delay", "max_retry_count": "2", "delay_interval": "00:00:03"}, function="f"
    )
    assert [policy.delay_before(n) for n in (1, 2)] == [3.0, 3.0]
    assert policy.allows(2) and not policy.allows(3)


def test_exponential_backoff_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy.parse(
        {
            "strategy": "exponential_backoff",
            "max_retry_count": "-1",
            "minimum_interval": "00:00:01",
            "maximum_interval": "00:00:05",
        },
        function="f",
    )
    assert [policy.delay_before(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay_before(100) == 5.0
    assert policy.allows(10_000)  # -1: no limit


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "linear", "max_retry_count": "1"}, "'fixed_delay' or 'exponential_backoff'"),
        ({"strategy": "fixed_delay", "max_retry_count": "x", "delay_interval": "00:00:01"}, "must be an integer"),
        ({"strategy": "fixed_delay", "max_retry_count": "-2", "delay_interval": "00:00:01"}, "-1 or more"),
        ({"strategy": "fixed_delay", "max_retry_count": "1", "delay_interval": "soon"}, "not a TimeSpan"),
        (
            {
                "strategy": "exponential_backoff",
                "max_retry_count": "1",
                "minimum_interval": "00:00:05",
                "maximum_interval": "00:00:01",
            },
            "must not be below minimum_interval",
        ),
    ],
)
def test_bad_policies_name_the_field(settings: dict[str, str], message: str) -> None:
    with pytest.raises(HostConfigError, match=message):
        RetryPolicy.parse(settings, function="f")
