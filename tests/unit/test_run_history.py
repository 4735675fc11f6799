"""The journal format (``shared.run_history``) and the worker's reading of it (``RunJournal.drain``), no storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.errors import BadRequestError
from shared.orchestration.journal import MAX_LINE_BYTES, RunJournal
from shared.pipelines.metrics import Execution, MetricRow, parse_attempt, parse_execution_id
from shared.run_history import (
    ArtifactRecord,
    MetricRecord,
    ModelRegistration,
    RecordError,
    TagsRecord,
    aggregate,
    artifact_name_problem,
    encode,
    parse_line,
)

RUN_ID = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"


@dataclass
class RecordingMetrics:
    """Stands in for ``MetricStore``: what the journal asked it to write."""

    rows: dict[tuple[str, int, int], MetricRow] = field(default_factory=dict)
    upserts: int = 0
    trims: list[tuple[str, int, int]] = field(default_factory=list)

    def upsert_metrics(self, run_id: str, rows: list[MetricRow]) -> None:
        self.upserts += 1
        for row in rows:
            self.rows[(row.step, row.attempt, row.seq)] = row

    def trim(self, run_id: str, step: str, attempt: int, *, keep_below: int) -> int:
        self.trims.append((step, attempt, keep_below))
        return 0


def new_journal(tmp_path: Path, metrics: RecordingMetrics, *, resumed: bool = False) -> RunJournal:
    stores: Any = SimpleNamespace(metrics=metrics, artifacts=None, models=None)
    path = tmp_path / "journal.jsonl"
    path.touch()
    return RunJournal(
        stores,
        run_id=RUN_ID,
        step="train",
        attempt=1,
        journal=path,
        artifacts_dir=tmp_path / "artifacts",
        resumed=resumed,
    )


def metric(name: str, value: Any, kind: str = "scalar") -> bytes:
    return encode(MetricRecord(kind, name, value, time="2024-01-01T00:00:00.000Z"))


def append(journal: RunJournal, data: bytes) -> None:
    with open(journal.journal, "ab") as handle:
        handle.write(data)


# -- the format -----------------------------------------------------------------------------------


def test_every_record_kind_round_trips_through_one_ascii_line() -> None:
    records = [
        MetricRecord("scalar", "naïve", "ünïcode\nline", time="t"),
        MetricRecord("list", "l", [1, 2.5, True, None, "s"]),
        MetricRecord("row", "r", {"x": 1}, target="parent"),
        MetricRecord("table", "t", {"a": [1, 2], "b": [3, 4]}),
        ArtifactRecord("outputs/model.pkl"),
        ModelRegistration("m", "outputs/model.pkl", {"k": "v"}, {}, "d", "ScikitLearn", "1.5"),
        TagsRecord({"stage": "dev"}),
    ]
    for record in records:
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
        assert parse_line(line[:-1]) == record


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"v": 1, "kind": "metric", "type": "scalar", "name": "x"', "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"v": 2, "kind": "metric"}', "Unsupported record version"),
        (b'{"v": 1, "kind": "alien"}', "Unknown record kind"),
        (b'{"v": 1, "kind": "metric", "type": "gauge", "name": "x", "value": 1}', "Metric type"),
        (b'{"v": 1, "kind": "metric", "type": "scalar", "name": "x", "value": [1]}', "scalar metric's value"),
        (b'{"v": 1, "kind": "artifact", "name": "../etc/passwd"}', "relative path"),
        (b'{"v": 1, "kind": "model", "name": "m", "path": "/abs"}', "model_path"),
        (b'{"v": 1, "kind": "tags", "tags": {"a": 1}}', "string values"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_invalid_lines_are_record_errors(line: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse_line(line)


@pytest.mark.parametrize("name", ["", "/a", "a//b", "a/./b", "a/../b", "C:/x", "a\\b", "a\x00b", "x" * 513])
def test_unsafe_artifact_names_are_refused(name: str) -> None:
    assert artifact_name_problem(name) is not None


def test_aggregate_gives_azureml_shapes() -> None:
    assert aggregate([("scalar", "a", 1)]) == {"a": 1}
    assert aggregate([("scalar", "a", 1), ("scalar", "a", 2)]) == {"a": [1, 2]}
    assert aggregate([("list", "l", [1])]) == {"l": [1]}
    assert aggregate([("scalar", "l", 0), ("list", "l", [1, 2])]) == {"l": [0, 1, 2]}
    assert aggregate([("row", "r", {"x": 1, "y": 2})]) == {"r": {"x": 1, "y": 2}}
    assert aggregate([("row", "r", {"x": 1}), ("row", "r", {"x": 2, "y": 3})]) == {"r": {"x": [1, 2], "y": [None, 3]}}
    assert aggregate([("table", "t", {"x": [1, 2]}), ("row", "t", {"x": 3})]) == {"t": {"x": [1, 2, 3]}}
    assert list(aggregate([("scalar", "b", 1), ("scalar", "a", 1)])) == ["b", "a"]  # logged order


def test_parse_attempt() -> None:
    assert parse_attempt(None) is None and parse_attempt("") is None and parse_attempt("3") == 3
    for bad in ("0", "-1", "x", "1.5", "²", "9999999"):
        with pytest.raises(BadRequestError) as caught:
            parse_attempt(bad)
        assert caught.value.target == "attempt"


def test_parse_execution_id_splits_on_the_first_and_last_colon() -> None:
    assert parse_execution_id(f"{RUN_ID}:a:b:3") == Execution(RUN_ID, "a:b", 3)
    parsed = parse_execution_id(f"{RUN_ID}:train:1")
    assert parsed is not None and parsed.id == f"{RUN_ID}:train:1"
    for bad in (None, "", "x:train:1", f"{RUN_ID}:train", f"{RUN_ID}::1", f"{RUN_ID}:train:x"):
        assert parse_execution_id(bad) is None


# -- RunJournal.drain ---------------------------------------------------------------------------


def test_drain_reads_complete_lines_once_and_numbers_them(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    journal = new_journal(tmp_path, metrics)
    append(journal, metric("acc", 0.5) + metric("acc", 0.6))
    assert journal.drain() == 2
    assert journal.drain() == 0 and metrics.upserts == 1
    append(journal, metric("loss", [1, 2], "list"))
    assert journal.drain() == 1
    assert sorted(metrics.rows) == [("train", 1, 0), ("train", 1, 1), ("train", 1, 2)]
    assert metrics.rows[("train", 1, 2)].value == [1, 2] and metrics.rows[("train", 1, 2)].type == "list"
    assert journal.lines == 3 and journal.skipped == 0


def test_an_incomplete_last_line_waits_until_it_is_complete(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    journal = new_journal(tmp_path, metrics)
    line = metric("acc", 0.5)
    append(journal, metric("first", 1) + line[:10])
    assert journal.drain() == 1 and list(metrics.rows) == [("train", 1, 0)]
    append(journal, line[10:])
    assert journal.drain() == 1
    assert metrics.rows[("train", 1, 1)].name == "acc"


def test_a_garbage_line_is_skipped_with_a_warning_but_keeps_its_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = RecordingMetrics()
    journal = new_journal(tmp_path, metrics)
    append(journal, metric("a", 1) + b"{garbage\n" + b"\n" + metric("b", 2))
    with caplog.at_level(logging.WARNING, logger="amlpipe.worker.journal"):
        assert journal.drain() == 4
    assert sorted(metrics.rows) == [("train", 1, 0), ("train", 1, 3)]
    assert journal.skipped == 2 and journal.lines == 4
    assert "journal line 1 skipped" in caplog.text and "journal line 2 skipped" in caplog.text


def test_an_overlong_line_is_skipped_and_counted(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    journal = new_journal(tmp_path, metrics)
    append(journal, metric("a", 1) + b"x" * (MAX_LINE_BYTES + 10))
    journal.drain()
    assert journal.lines == 1  # the long line has no end yet
    append(journal, b"x" * 100 + b"\n" + metric("b", 2))
    journal.drain()
    assert sorted(metrics.rows) == [("train", 1, 0), ("train", 1, 2)] and journal.skipped == 1


@pytest.mark.parametrize("resumed", [True, False])
def test_finish_counts_a_cut_off_last_line_and_a_takeover_trims_beyond_the_end(tmp_path: Path, resumed: bool) -> None:
    metrics = RecordingMetrics()
    journal = new_journal(tmp_path, metrics, resumed=resumed)
    append(journal, metric("a", 1) + metric("b", 2)[:5])
    journal.finish()
    assert journal.lines == 2 and journal.skipped == 1
    # Only a delivery that took the execution over can find rows a lost delivery wrote beyond its end.
    assert metrics.trims == ([("train", 1, 2)] if resumed else [])


def test_registrations_artifacts_and_tags_are_collected_in_order(tmp_path: Path) -> None:
    journal = new_journal(tmp_path, RecordingMetrics())
    append(journal, encode(ModelRegistration("m1", "outputs/a.pkl")) + encode(ArtifactRecord("plot.png")))
    append(journal, encode(TagsRecord({"a": "1"})) + encode(ModelRegistration("m2", "outputs/b")))
    append(journal, encode(TagsRecord({"a": "2", "b": "x"})))
    journal.drain()
    assert [r.name for r in journal.registrations] == ["m1", "m2"]
    assert journal.artifact_names == ["plot.png"] and journal.tags == {"a": "2", "b": "x"}


def test_a_failed_write_leaves_the_lines_to_be_read_again(tmp_path: Path) -> None:
    class Failing(RecordingMetrics):
        def upsert_metrics(self, run_id: str, rows: list[MetricRow]) -> None:
            raise OSError("storage is down")

    journal = new_journal(tmp_path, Failing())
    append(journal, metric("a", 1) + encode(ModelRegistration("m", "outputs/m.pkl")))
    assert journal.poll() == 0  # logged, not raised: the script goes on
    with pytest.raises(OSError):
        journal.drain()
    assert journal.lines == 0 and journal.registrations == []
    recording = RecordingMetrics()
    journal._metrics = recording  # type: ignore[assignment]  # storage is back
    assert journal.drain() == 2 and list(recording.rows) == [("train", 1, 0)] and len(journal.registrations) == 1
