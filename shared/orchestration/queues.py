"""The step queue as the orchestrator and the worker send to it directly (the storage SDK).

Most step messages leave through the queue trigger's output binding, which the host writes only when
the function succeeds. A message that must stay invisible for a while — a retry's back-off, or a
redelivered execution told to come back once its old worker's heartbeat is stale — is sent here with
``visibility_timeout`` instead, because an output binding cannot delay a message.
"""

from __future__ import annotations

import base64
import math
import os
import threading
from collections.abc import Mapping
from datetime import timedelta

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.orchestration.messages import STEP_QUEUE, STEP_QUEUE_SETTING, StepMessage

__all__ = ["StepQueue", "step_queue_name"]

#: The queue service's longest visibility timeout (7 days).
_MAX_DELAY = timedelta(days=7)


def step_queue_name(settings: Mapping[str, str] | None = None) -> str:
    """The step workers' queue: app setting ``AMLPIPE_STEP_QUEUE``, else ``amlpipe-steps``."""
    return (settings if settings is not None else os.environ).get(STEP_QUEUE_SETTING) or STEP_QUEUE


class StepQueue:
    """Sends step messages (base64 JSON, as host.json ``messageEncoding`` says) with a delay."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._created = False
        self._lock = threading.Lock()

    @classmethod
    def of(cls, queues: QueueServiceClient, settings: Mapping[str, str] | None = None) -> StepQueue:
        """The step queue named by the app settings on ``queues``."""
        return cls(queues.get_queue_client(step_queue_name(settings)))

    def send(self, message: StepMessage, *, delay: timedelta = timedelta(0)) -> None:
        """Send ``message``, invisible for ``delay`` (rounded up to whole seconds, at most 7 days)."""
        with self._lock:
            if not self._created:
                try:
                    self._client.create_queue()
                except ResourceExistsError:
                    pass
                self._created = True
        seconds = math.ceil(min(delay, _MAX_DELAY).total_seconds())
        body = base64.b64encode(message.to_text().encode("utf-8")).decode("ascii")
        self._client.send_message(body, visibility_timeout=max(0, seconds) or None)
