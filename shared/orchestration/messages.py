"""The messages that drive runs, and the queues they travel on.

    amlpipe-runs   {"run_id"}                                  submit: "look at this run"
                   {"run_id", "step", "attempt", "event"}      a worker's report (event for logs only)
    amlpipe-steps  {"run_id", "step", "attempt"}               execute one step execution

A message is a reference, never state: the orchestrator and the worker read the run from storage, so
a message delivered twice or late changes nothing that the recorded state does not already say.
Bodies are JSON; the Functions host base64-encodes them (host.json ``messageEncoding``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.errors import BadRequestError
from shared.orchestration.actions import Event
from shared.orchestration.state import execution_key
from shared.pipelines.stores import RUN_QUEUE, RUN_QUEUE_SETTING

__all__ = ["RUN_QUEUE", "RUN_QUEUE_SETTING", "STEP_QUEUE", "STEP_QUEUE_SETTING", "RunMessage", "StepMessage"]

#: The queue step workers consume: one message per step execution. Its name is the app setting
#: ``AMLPIPE_STEP_QUEUE`` (the trigger reads ``%AMLPIPE_STEP_QUEUE%``); ``amlpipe-steps`` by default.
STEP_QUEUE = "amlpipe-steps"
STEP_QUEUE_SETTING = "AMLPIPE_STEP_QUEUE"


def _load(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"The message is not JSON: {exc}", target="message") from exc
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise BadRequestError("The message must be a JSON object with a string run_id.", target="run_id")
    return data


@dataclass(frozen=True)
class RunMessage:
    """``amlpipe-runs``: advance run ``run_id``; a report also names the execution it is about."""

    run_id: str
    event: Event = Event.SUBMITTED
    step: str | None = None
    attempt: int | None = None

    @classmethod
    def parse(cls, body: bytes | str) -> RunMessage:
        """The message in ``body``.

        Raises:
            BadRequestError: it is not a run message.
        """
        data = _load(body)
        try:
            event = Event(data.get("event", Event.SUBMITTED.value))
        except ValueError as exc:
            raise BadRequestError(f"Unknown event {data.get('event')!r}.", target="event") from exc
        step = data.get("step")
        attempt = data.get("attempt")
        return cls(
            run_id=data["run_id"],
            event=event,
            step=step if isinstance(step, str) else None,
            attempt=attempt if isinstance(attempt, int) else None,
        )

    def to_text(self) -> str:
        body: dict[str, Any] = {"run_id": self.run_id}
        if self.event is not Event.SUBMITTED:
            body["event"] = self.event.value
        if self.step is not None:
            body["step"] = self.step
            body["attempt"] = self.attempt
        return json.dumps(body)


@dataclass(frozen=True)
class StepMessage:
    """``amlpipe-steps``: run execution ``attempt`` of ``step`` of ``run_id``."""

    run_id: str
    step: str
    attempt: int

    @property
    def key(self) -> str:
        """The execution key ``{run_id}:{step}:{attempt}``."""
        return execution_key(self.run_id, self.step, self.attempt)

    @classmethod
    def parse(cls, body: bytes | str) -> StepMessage:
        """The message in ``body``.

        Raises:
            BadRequestError: it is not a step message.
        """
        data = _load(body)
        step, attempt = data.get("step"), data.get("attempt")
        if not isinstance(step, str) or not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise BadRequestError("A step message needs a string step and an attempt ≥ 1.", target="step")
        return cls(run_id=data["run_id"], step=step, attempt=attempt)

    def to_text(self) -> str:
        return json.dumps({"run_id": self.run_id, "step": self.step, "attempt": self.attempt})
