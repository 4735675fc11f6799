"""Following a run without a service: which log bytes ``LogTail`` asks for as a run's steps move on
(retries, earlier attempts, failures part-way), how ``Poller`` backs off and tolerates blips, and
the SDK reading a reused step's long log. The service's side is tested in tests/e2e/test_cli_runs.py."""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

import amlpipe.pipeline.core._run as sdk_run
from amlpipe.cli import _watch
from amlpipe.cli._views import RunView
from amlpipe.cli._watch import LogTail, Poller
from amlpipe.exceptions import ServiceException
from amlpipe.pipeline.core._run import StepLogChunk

RUN = "11111111-1111-4111-8111-111111111111"


@dataclass
class FakeRun:
    """A run whose entity the test sets; its steps' logs are ``logs[(step, attempt)]``."""

    id: str = RUN
    entity: dict[str, Any] = field(default_factory=dict)
    logs: dict[tuple[str, int], str] = field(default_factory=dict)
    reads: list[tuple[str, int | None, int]] = field(default_factory=list)
    fail_reads: int = 0

    def _details(self) -> dict[str, Any]:
        return self.entity

    def show(self, status: str, *steps: tuple[str, str, int]) -> RunView:
        self.entity = {
            "Id": self.id,
            "Status": {"StatusCode": status},
            "StepRuns": [
                {"Name": name, "Status": {"StatusCode": code}, "Attempt": attempt} for name, code, attempt in steps
            ],
        }
        return RunView.from_entity(self.entity)


class FakeStepRun:
    """Stands in for the SDK's StepRun: reads the fake run's logs (the real one calls the service)."""

    def __init__(self, run: FakeRun, entity: dict[str, Any]) -> None:
        self._run, self.name = run, str(entity["Name"])
        self._attempt = int(entity.get("Attempt") or 0)

    def read_log(self, offset: int = 0, *, attempt: int | None = None) -> StepLogChunk:
        if self._run.fail_reads:
            self._run.fail_reads -= 1
            raise ServiceException("the service is busy", status_code=503)
        which = attempt or self._attempt
        self._run.reads.append((self.name, attempt, offset))
        data = self._run.logs.get((self.name, which), "")
        part = data[offset : offset + 4]  # small chunks: draining takes several reads
        size = len(data)
        return StepLogChunk(part, offset, offset + len(part), size, which, f"{RUN}:{self.name}:{which}")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    monkeypatch.setattr(sdk_run, "StepRun", FakeStepRun)
    return FakeRun()


def texts(found: list[_watch.LogText]) -> list[tuple[str, int | None, str]]:
    return [(t.step, t.attempt, t.text) for t in found]


def joined(found: list[_watch.LogText]) -> dict[tuple[str, int | None], str]:
    out: dict[tuple[str, int | None], str] = {}
    for text in found:
        out[(text.step, text.attempt)] = out.get((text.step, text.attempt), "") + text.text
    return out


def test_a_failed_step_is_followed_into_its_retry_while_the_run_goes_on(run: FakeRun) -> None:
    tail = LogTail(run)  # type: ignore[arg-type]
    run.logs[("train", 1)] = "attempt one\n"
    seen = joined(tail.poll(run.show("Running", ("train", "Running", 1))))
    # Failed, not yet queued again: the run goes on, so the step may be retried.
    seen.update(joined(tail.poll(run.show("Running", ("train", "Failed", 1)))))
    run.logs[("train", 2)] = "attempt two\n"
    seen.update(joined(tail.poll(run.show("Running", ("train", "Running", 2)))))
    seen.update(joined(tail.poll(run.show("Finished", ("train", "Finished", 2)))))
    assert seen == {("train", 1): "attempt one\n", ("train", 2): "attempt two\n"}
    reads = len(run.reads)
    assert tail.poll(run.show("Finished", ("train", "Finished", 2))) == []
    assert len(run.reads) == reads  # complete: not read again


def test_a_failed_step_of_an_ended_run_is_complete(run: FakeRun) -> None:
    tail = LogTail(run)  # type: ignore[arg-type]
    run.logs[("boom", 1)] = "Traceback\n"
    assert texts(tail.poll(run.show("Failed", ("boom", "Failed", 1)))) == [
        ("boom", 1, "Trac"),
        ("boom", 1, "ebac"),
        ("boom", 1, "k\n"),
    ]
    reads = len(run.reads)
    assert tail.poll(run.show("Failed", ("boom", "Failed", 1))) == [] and len(run.reads) == reads


def test_an_earlier_attempt_asked_for_by_number_is_read_once_while_a_later_one_runs(run: FakeRun) -> None:
    tail = LogTail(run, steps=("train",), attempt=1)  # type: ignore[arg-type]
    run.logs[("train", 1)] = "old\n"
    assert joined(tail.poll(run.show("Running", ("train", "Running", 2)))) == {("train", 1): "old\n"}
    reads = len(run.reads)
    assert tail.poll(run.show("Running", ("train", "Running", 2))) == [] and len(run.reads) == reads


def test_a_poll_that_fails_part_way_hands_what_it_read_to_the_next(run: FakeRun) -> None:
    tail = LogTail(run)  # type: ignore[arg-type]
    run.logs[("a", 1)] = "first step\n"
    run.logs[("b", 1)] = "second\n"
    view = run.show("Running", ("a", "Running", 1), ("b", "Running", 1))
    original = FakeStepRun.read_log

    def fail_on_b(self: FakeStepRun, offset: int = 0, *, attempt: int | None = None) -> StepLogChunk:
        if self.name == "b":
            raise ServiceException("reset", status_code=0)
        return original(self, offset, attempt=attempt)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(FakeStepRun, "read_log", fail_on_b)
        with pytest.raises(ServiceException):
            tail.poll(view)
    assert joined(tail.poll(view)) == {("a", 1): "first step\n", ("b", 1): "second\n"}  # nothing lost, nothing twice


def test_the_poller_backs_off_while_quiet_and_returns_to_its_pace_on_change(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_watch.time, "sleep", slept.append)
    poller = Poller(0.5, 5.0)
    for changed in (False, False, False, False, False, False, False, True):
        poller.wait(changed=changed)
    assert slept[:3] == [0.75, 1.125, 1.6875] and max(slept) == 5.0 and slept[-1] == 0.5


def test_the_poller_rides_out_a_few_service_blips_but_not_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_watch.time, "sleep", lambda seconds: None)
    answers = itertools.chain([ServiceException("down", status_code=503), ServiceException("reset", status_code=0)])

    def flaky() -> str:
        for answer in answers:
            raise answer
        return "view"

    assert Poller().call(flaky) == "view"
    always_down = Poller()
    calls: list[int] = []

    def down() -> str:
        calls.append(1)
        raise ServiceException("down", status_code=502)

    with pytest.raises(ServiceException):
        always_down.call(down)
    assert len(calls) == _watch.MAX_FAILED_POLLS
    refused: list[int] = []

    def forbidden() -> str:
        refused.append(1)
        raise ServiceException("no", status_code=403)

    with pytest.raises(ServiceException):
        Poller().call(forbidden)
    assert refused == [1]


class ChunkedService:
    """The log route of a reused step whose log is two chunks long, as the service answers it."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str] | None] = []

    def get(self, path: str, *, params: dict[str, str] | None = None) -> dict[str, Any]:
        self.asked.append(params)
        if params and "attempt" in params:  # this run's step never ran: no attempt 1 here
            raise ServiceException("Step 'big' has no attempt 1.", status_code=404)
        offset = int((params or {}).get("offset", "0"))
        text = "a" * 5 if offset == 0 else "b" * 3
        source = "22222222-2222-4222-8222-222222222222:big:1"  # the reused execution: another run's
        return {"content": text, "offset": offset, "nextOffset": offset + len(text), "size": 8, "attempt": 1,
                "runId": source}  # fmt: skip


def test_a_reused_steps_long_log_is_read_whole_from_the_execution_it_reused() -> None:
    service = ChunkedService()
    workspace = type("W", (), {"_client": service})()
    experiment = type("E", (), {"workspace": workspace})()
    pipeline_run = type("P", (), {"id": RUN, "experiment": experiment})()
    step = sdk_run.StepRun(pipeline_run, {"Name": "big", "IsReused": True, "Attempt": 0})  # type: ignore[arg-type]
    assert step.get_job_log() == "aaaaabbb"
    assert all("attempt" not in (params or {}) for params in service.asked)


def test_a_closed_pipe_ends_the_command_quietly_with_141() -> None:
    code = "import amlpipe.cli as cli\ndef boom():\n    raise BrokenPipeError()\ncli.app = boom\ncli.main()\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 141 and done.stderr == ""
