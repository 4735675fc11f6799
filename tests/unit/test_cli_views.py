"""What the CLI shows of runs and logs, from REST entities (pure: no service): the run view and its
JSON, plain rows, the live table, log lines, log chunk decoding, and loading a pipeline file."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from amlpipe.cli._common import CliError, ExitCode
from amlpipe.cli._loader import pipeline_from_file
from amlpipe.cli._views import RunView, format_duration, live_view, run_row, step_rows
from amlpipe.cli._watch import LineSplitter, LogText
from amlpipe.pipeline.core import Pipeline
from shared.errors import BadRequestError
from shared.pipelines.logs import decode_chunk, parse_offset

NOW = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)

ENTITY = {
    "Id": "6f1c0e4e-0000-4000-8000-000000000001",
    "RunHistoryExperimentName": "training",
    "Status": {
        "StatusCode": "Running",
        "StatusDetail": None,
        "CreationTime": "2024-05-01T12:00:00Z",
        "EndTime": None,
    },
    "PipelineId": "p-1",
    "ParameterAssignments": {"reg_rate": "0.1"},
    "TotalRunSteps": 3,
    "StepRuns": [
        {
            "Name": "train",
            "RunId": "6f1c...:train:2",
            "Attempt": 2,
            "Status": {"StatusCode": "Running", "StartTime": "2024-05-01T12:00:10Z", "EndTime": None},
            "IsReused": False,
        },
        {
            "Name": "prep",
            "RunId": None,
            "Attempt": 0,
            "Status": {
                "StatusCode": "Finished",
                "StartTime": "2024-05-01T12:00:01Z",
                "EndTime": "2024-05-01T12:00:01Z",
            },
            "IsReused": True,
            "ReusedRunId": "older:prep:1",
        },
        {"Name": "score", "Attempt": 0, "Status": {"StatusCode": 0}},
    ],
}


def test_a_run_view_from_its_entity() -> None:
    view = RunView.from_entity(ENTITY)
    assert [s.name for s in view.steps or ()] == ["prep", "score", "train"]
    assert (view.status, view.ended, view.steps_done(), view.total_steps) == ("Running", False, 1, 3)
    body = view.to_json(NOW)
    assert body["durationSeconds"] == 30.0 and body["parameters"] == {"reg_rate": "0.1"}
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["train"] == {
        "name": "train",
        "status": "Running",
        "runId": "6f1c...:train:2",
        "attempt": 2,
        "reused": False,
        "reusedRunId": None,
        "startTime": "2024-05-01T12:00:10Z",
        "endTime": None,
        "durationSeconds": 20.0,
        "statusDetail": None,
    }
    assert steps["prep"]["reused"] is True and steps["prep"]["reusedRunId"] == "older:prep:1"
    assert steps["score"]["status"] == "NotStarted" and steps["score"]["durationSeconds"] is None


def test_a_listed_run_has_no_steps_and_integer_status_codes_map_as_azureml() -> None:
    listed = {**ENTITY, "Status": {"StatusCode": 3, "CreationTime": "2024-05-01T12:00:00Z"}}
    del listed["StepRuns"]
    view = RunView.from_entity(listed)
    assert view.status == "Finished" and view.ended and view.steps is None and "steps" not in view.to_json(NOW)
    assert run_row(view, NOW) == [ENTITY["Id"], "Finished", "training", "2024-05-01 12:00:00Z", "30.0s", "p-1"]


def test_step_rows_and_durations() -> None:
    rows = step_rows(RunView.from_entity(ENTITY), NOW)
    assert rows == [
        ["prep", "Finished", "yes", "", "0.0s", ""],
        ["score", "NotStarted", "no", "", "", ""],
        ["train", "Running", "no", "2", "20.0s", ""],
    ]
    assert [format_duration(s) for s in (None, 0.42, 59.99, 185, 7380)] == ["", "0.4s", "60.0s", "3m05s", "2h03m"]


def test_the_live_table_shows_each_step_and_the_progress() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    console.print(live_view(RunView.from_entity(ENTITY), NOW))
    text = console.export_text()
    assert "Run 6f1c0e4e-0000-4000-8000-000000000001  training  Running  30.0s" in text
    for name in ("prep", "score", "train"):
        assert name in text
    assert "1/3 steps ended" in text


def test_lines_are_split_per_step_and_attempt_and_the_rest_is_flushed() -> None:
    splitter = LineSplitter()
    assert splitter.feed(LogText("a", 1, "one\ntw")) == [("a", 1, "one")]
    assert splitter.feed(LogText("b", 1, "x\r\n")) == [("b", 1, "x")]
    assert splitter.feed(LogText("a", 1, "o\nthr")) == [("a", 1, "two")]
    assert splitter.feed(LogText("a", 2, "new")) == []
    assert splitter.flush() == [("a", 1, "thr"), ("a", 2, "new")]
    assert splitter.flush() == []


def test_a_log_chunk_never_ends_inside_a_character() -> None:
    data = "héllo €".encode()
    cut = data[:-1]  # the euro sign's last byte is still to come
    text, used = decode_chunk(cut, at_end=False)
    assert text == "héllo " and used == len(cut) - 2
    text, used = decode_chunk(data[used:], at_end=False)
    assert text == "€" and used == 3
    assert decode_chunk(b"ok\xff\xfe", at_end=False) == ("ok\ufffd\ufffd", 4)  # invalid bytes are not waited for
    assert decode_chunk(b"\xe2\x82", at_end=True) == ("\ufffd", 2)


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "1e3", "１"])
def test_a_bad_offset_is_a_400(raw: str) -> None:
    with pytest.raises(BadRequestError, match="offset"):
        parse_offset(raw)
    assert parse_offset(None) == 0 and parse_offset("") == 0 and parse_offset("1048576") == 1048576


PIPELINE_FILE = """\
import os
from helper import STEP_NAME  # a sibling module: the file's folder is on sys.path
from amlpipe.pipeline.core import Pipeline
from amlpipe.pipeline.steps import PythonScriptStep

SEEN = {}


def build(ws):
    SEEN["cwd"] = os.getcwd()
    SEEN["ws"] = ws
    return Pipeline(ws, steps=[PythonScriptStep("train.py", name=STEP_NAME, source_directory="scripts")])
"""


def test_a_python_file_builds_the_pipeline_beside_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "pipeline.py").write_text(PIPELINE_FILE)
    (folder / "helper.py").write_text("STEP_NAME = 'train'\n")
    monkeypatch.chdir(tmp_path)
    workspace = object()
    with pipeline_from_file(Path("defs/pipeline.py"), workspace) as pipeline:  # type: ignore[arg-type]
        assert isinstance(pipeline, Pipeline) and [s.name for s in pipeline.steps] == ["train"]
        assert os.getcwd() == str(folder)
    assert os.getcwd() == str(tmp_path)
    assert str(folder) not in sys.path


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "must define build(ws)"),
        ("def build(ws):\n    return 42\n", "build(ws) returned int, not a Pipeline"),
        ("def build(ws):\n    raise KeyError('reg_rate')\n", "build(ws) raised KeyError: 'reg_rate'"),
        ("import no_such_module_here\n", "failed to import: ModuleNotFoundError"),
        ("import sys\nsys.exit(0)\n", "called sys.exit(0) while it was imported"),  # not a silent success
        ("def build(ws):\n    raise SystemExit('bad config')\n", "build(ws) called sys.exit('bad config')"),
    ],
)
def test_a_python_file_that_builds_no_pipeline_is_a_usage_error(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "p.py").write_text(source)
    with pytest.raises(CliError, match=re.escape(message)) as caught, pipeline_from_file(tmp_path / "p.py", object()):  # type: ignore[arg-type]
        pass
    assert caught.value.code == ExitCode.USAGE


def test_what_a_pipeline_file_prints_goes_to_stderr_never_into_the_commands_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.py").write_text("print('hello from import')\ndef build(ws):\n    print('hello from build')\n")
    with pytest.raises(CliError), pipeline_from_file(tmp_path / "p.py", object()):  # type: ignore[arg-type]
        pass  # build returns None: refused, after both prints
    out, err = capsys.readouterr()
    assert out == "" and "hello from import" in err and "hello from build" in err
