"""``Run.get_context()``: offline, and inside a step from a hand-written context.json (files only)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from amlpipe.core import Run
from amlpipe.core import _run_context as rc
from amlpipe.core._tabular_input import StepTabularDataset
from amlpipe.core.dataset import TabularDataset
from amlpipe.core.run import RunEnvironmentException
from amlpipe.exceptions import AzureMLException, UserErrorException
from shared.run_history import MetricRecord, ModelRegistration, TagsRecord, parse_line

RUN_ID = "0b5c7a9e-2f35-4b61-9d0e-5a8f1c2d3e4f"


@pytest.fixture(autouse=True)
def fresh_contexts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets its own context objects (get_context caches one per process)."""
    monkeypatch.delenv(rc.CONTEXT_ENV, raising=False)
    rc._contexts.clear()
    yield
    rc._contexts.clear()


@pytest.fixture
def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A step's work folder as the worker lays it out; the process runs in ``src``; returns the work folder."""
    work = tmp_path / "work"
    meta = work / ".amlpipe"
    (meta / "artifacts").mkdir(parents=True)
    (meta / "journal.jsonl").touch()
    (work / "src").mkdir()
    data = work / "inputs" / "raw"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    context = {
        "schema": 1,
        "id": f"{RUN_ID}:train:1",
        "pipeline_run_id": RUN_ID,
        "step": "train",
        "attempt": 1,
        "experiment": "diabetes-training",
        "journal": str(meta / "journal.jsonl"),
        "artifacts_dir": str(meta / "artifacts"),
        "inputs": {
            "files": {"type": "File", "path": str(data), "dataset_name": "raw", "dataset_version": 2, "tabular": None},
            "prepped": {"type": "PipelineData", "path": str(work / "inputs" / "prepped"), "dataset_name": None,
                        "dataset_version": None, "tabular": None},
            "table": {"type": "Tabular", "path": str(data), "dataset_name": "raw_dataset", "dataset_version": 3,
                      "tabular": {"files": [str(data / "a.csv")], "options": {"separator": ","}}},
        },
    }  # fmt: skip
    (meta / "context.json").write_text(json.dumps(context))
    monkeypatch.setenv(rc.CONTEXT_ENV, str(meta / "context.json"))
    monkeypatch.chdir(work / "src")
    return work


def journal(work: Path) -> list[Any]:
    lines = (work / ".amlpipe" / "journal.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"", "every record ends with a newline"
    return [parse_line(line) for line in lines[:-1]]


# -- offline ------------------------------------------------------------------------------------


def test_offline_run_prints_logs_and_keeps_them_for_get_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    run = Run.get_context()
    assert run.id.startswith("OfflineRun_") and Run.get_context() is run
    run.log("accuracy", 0.9)
    run.log("accuracy", 0.95)
    run.log("rows", 10)
    run.log_row("Y over X", x=1, y=0.4)
    assert "Attempted to log scalar metric accuracy:\n0.9" in capsys.readouterr().out
    assert run.get_metrics() == {"accuracy": [0.9, 0.95], "rows": 10, "Y over X": {"x": 1, "y": 0.4}}
    assert run.get_metrics("rows") == {"rows": 10}
    assert run.get_metrics(recursive=True) == {run.id: run.get_metrics()}
    assert run.input_datasets == {} and run.parent is None


def test_offline_register_model_says_it_needs_a_step_run() -> None:
    run = Run.get_context()
    with pytest.raises(UserErrorException, match="needs a step run.*Model.register"):
        run.register_model("m", "outputs/m.pkl")


def test_without_a_context_allow_offline_false_raises() -> None:
    Run.get_context()  # an offline run already made does not count
    with pytest.raises(RunEnvironmentException, match="not a step of a pipeline run"):
        Run.get_context(allow_offline=False)


def test_a_context_file_that_is_broken_is_an_error_not_an_offline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(rc.CONTEXT_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(RunEnvironmentException, match="not a readable run context"):
        Run.get_context()
    (tmp_path / "bad.json").write_text(json.dumps({"schema": 1, "id": "x"}))
    monkeypatch.setenv(rc.CONTEXT_ENV, str(tmp_path / "bad.json"))
    with pytest.raises(RunEnvironmentException, match="lacks 'pipeline_run_id'"):
        Run.get_context()


def test_importing_the_run_context_does_not_import_pandas() -> None:
    code = "import sys; from amlpipe.core import Run; Run.get_context(); print('pandas' in sys.modules)"
    env = {**os.environ, rc.CONTEXT_ENV: ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "False"


# -- inside a step ------------------------------------------------------------------------------


def test_the_step_run_has_its_ids_parent_and_experiment(step: Path) -> None:
    run = Run.get_context()
    assert run.id == f"{RUN_ID}:train:1" and run.name == "train" and run.get_status() == "Running"
    assert run.parent.id == RUN_ID
    assert run.experiment.name == "diabetes-training"
    with pytest.raises(AzureMLException, match="workspace is not available inside a step.*config.json"):
        _ = run.experiment.workspace
    assert Run.get_context(allow_offline=False) is run


def test_logged_metrics_are_journaled_one_line_each_and_read_back_in_azureml_shapes(step: Path) -> None:
    run = Run.get_context()
    run.log("acc", 0.5)
    run.log("acc", np.float64(0.75))
    run.log("rows", np.int64(3), description="row count")
    run.log_list("losses", np.array([0.3, 0.2]))
    run.log_row("Y over X", x=1, y=0.4)
    run.log_row("Y over X", x=2, y=0.5)
    run.log_table("t", {"a": [1, 2], "b": ["u", "v"]})
    run.parent.log("best", True)
    records = journal(step)
    assert [type(r) for r in records] == [MetricRecord] * 8
    assert records[2] == MetricRecord("scalar", "rows", 3, "row count", "run", records[2].time)
    assert type(records[1].value) is float and type(records[2].value) is int
    assert records[-1].target == "parent"
    assert run.get_metrics() == {
        "acc": [0.5, 0.75],
        "rows": 3,
        "losses": [0.3, 0.2],
        "Y over X": {"x": [1, 2], "y": [0.4, 0.5]},
        "t": {"a": [1, 2], "b": ["u", "v"]},
    }


def test_log_list_takes_any_sequence_and_log_image_keeps_the_image_as_an_artifact(step: Path, tmp_path: Path) -> None:
    run = Run.get_context()
    run.log_list("squares", (i * i for i in range(3)))
    run.log_list("floats", [np.float32(0.5)])
    (tmp_path / "chart.png").write_bytes(b"png")
    run.log_image("ROC", path=str(tmp_path / "chart.png"))
    assert (step / ".amlpipe" / "artifacts" / "images" / "ROC.png").read_bytes() == b"png"
    assert run.get_metrics() == {"squares": [0, 1, 4], "floats": [0.5], "ROC": "images/ROC.png"}
    with pytest.raises(UserErrorException, match="exactly one of path= or plot="):
        run.log_image("none")


def test_bad_metric_values_fail_in_the_script(step: Path) -> None:
    run = Run.get_context()
    with pytest.raises(UserErrorException, match="scalar metric's value must be"):
        run.log("x", {"a": 1})
    with pytest.raises(UserErrorException, match="all of one length"):
        run.log_table("t", {"a": [1], "b": [1, 2]})
    with pytest.raises(UserErrorException, match="limit is 30000"):
        run.log_list("big", ["x" * 100] * 400)
    with pytest.raises(UserErrorException, match="metric name"):
        run.log("", 1)
    assert journal(step) == []


def test_upload_file_copies_into_the_artifacts_folder_and_journals_it(step: Path, tmp_path: Path) -> None:
    run = Run.get_context()
    (tmp_path / "plot.png").write_bytes(b"png")
    run.upload_file("outputs/plot.png", str(tmp_path / "plot.png"))
    run.upload_file("notes/readme.txt", io.BytesIO(b"hello"))
    artifacts = step / ".amlpipe" / "artifacts"
    assert (artifacts / "outputs" / "plot.png").read_bytes() == b"png"
    assert (artifacts / "notes" / "readme.txt").read_bytes() == b"hello"
    assert [r.name for r in journal(step)] == ["outputs/plot.png", "notes/readme.txt"]
    with pytest.raises(UserErrorException, match="Resource Conflict"):
        run.upload_file("outputs/plot.png", str(tmp_path / "plot.png"))
    with pytest.raises(UserErrorException, match="relative path"):
        run.upload_file("../escape.txt", io.BytesIO(b"x"))
    os.makedirs("outputs")
    Path("outputs/model.pkl").write_bytes(b"m")
    assert run.get_file_names() == ["notes/readme.txt", "outputs/model.pkl", "outputs/plot.png"]


def test_upload_folder_uploads_regular_files_only(step: Path, tmp_path: Path) -> None:
    run = Run.get_context()
    folder = tmp_path / "charts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "link.txt").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "outside.txt").write_text("secret")
    run.upload_folder("charts", str(folder))
    assert sorted(r.name for r in journal(step)) == ["charts/a.txt", "charts/sub/b.txt"]


def test_register_model_journals_a_pending_registration_of_an_existing_artifact(step: Path) -> None:
    run = Run.get_context()
    with pytest.raises(UserErrorException, match="Could not locate the provided model_path 'outputs/model.pkl'"):
        run.register_model("diabetes_model", "outputs/model.pkl")
    os.makedirs("outputs")
    Path("outputs/model.pkl").write_bytes(b"m")
    pending = run.register_model(
        model_name="diabetes_model",
        model_path="outputs/model.pkl",
        tags={"Training context": "Pipeline"},
        properties={"AUC": "0.9"},
    )
    assert (pending.name, pending.model_path, pending.run_id, pending.version) == (
        "diabetes_model", "outputs/model.pkl", f"{RUN_ID}:train:1", None)  # fmt: skip
    (record,) = journal(step)
    assert record == ModelRegistration(
        "diabetes_model", "outputs/model.pkl", {"Training context": "Pipeline"}, {"AUC": "0.9"}, time=record.time
    )
    with pytest.raises(UserErrorException, match="Model name"):
        run.register_model("bad name!", "outputs/model.pkl")
    with pytest.raises(UserErrorException, match="datasets is not supported"):
        run.register_model("m", "outputs/model.pkl", datasets=[("train", object())])
    with pytest.raises(UserErrorException, match="'tags' must be an object of at most 50"):
        run.register_model("m", "outputs/model.pkl", tags={f"k{i}": "v" for i in range(51)})


def test_tags_are_journaled_and_read_back(step: Path) -> None:
    run = Run.get_context()
    run.tag("stage", "dev")
    run.set_tags({"team": "ml", "flag": None})
    assert journal(step) == [TagsRecord({"stage": "dev"}, journal(step)[0].time),
                             TagsRecord({"team": "ml", "flag": ""}, journal(step)[1].time)]  # fmt: skip
    assert run.get_tags() == {"stage": "dev", "team": "ml", "flag": ""}


def test_complete_does_nothing_and_fail_says_how_to_fail(step: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = Run.get_context()
    run.complete()
    run.fail()
    assert "exit with a non-zero code" in capsys.readouterr().err
    assert journal(step) == []


def test_input_datasets_give_paths_and_a_tabular_dataset(step: Path) -> None:
    inputs = Run.get_context().input_datasets
    assert inputs["files"] == str(step / "inputs" / "raw")
    assert inputs["prepped"] == str(step / "inputs" / "prepped")
    table = inputs["table"]
    assert isinstance(table, TabularDataset) and (table.name, table.version) == ("raw_dataset", 3)
    frame = table.to_pandas_dataframe()
    assert frame.to_dict("list") == {"x": [1], "y": [2]}


# -- to_pandas_dataframe options ----------------------------------------------------------------


def tabular(tmp_path: Path, files: dict[str, bytes], **options: Any) -> Any:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    entry = {"type": "Tabular", "path": str(tmp_path), "dataset_name": "d", "dataset_version": 1,
             "tabular": {"files": [str(tmp_path / n) for n in files], "options": options}}  # fmt: skip
    return StepTabularDataset("d", entry).to_pandas_dataframe()


def test_all_files_same_headers_reads_each_header_and_names_columns_by_the_first(tmp_path: Path) -> None:
    frame = tabular(tmp_path, {"a.csv": b"x,y\n1,2\n", "b.csv": b"X,Y\n3,4\n"})
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_only_the_first_file_has_headers(tmp_path: Path) -> None:
    frame = tabular(tmp_path, {"a.csv": b"x,y\n1,2\n", "b.csv": b"3,4\n"}, header="only_first_file_has_headers")
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_combine_all_files_headers_unions_the_columns(tmp_path: Path) -> None:
    frame = tabular(tmp_path, {"a.csv": b"x,y\n1,2\n", "b.csv": b"y,z\n3,4\n"}, header="combine_all_files_headers")
    assert list(frame.columns) == ["x", "y", "z"]
    assert frame["y"].tolist() == [2, 3] and frame["x"].isna().tolist() == [False, True]


def test_no_headers_names_columns_column1_column2(tmp_path: Path) -> None:
    frame = tabular(tmp_path, {"a.csv": b"1,2\n3,4\n"}, header="no_headers")
    assert frame.to_dict("list") == {"Column1": [1, 3], "Column2": [2, 4]}


def test_separator_one_and_several_characters(tmp_path: Path) -> None:
    assert tabular(tmp_path, {"a.csv": b"x;y\n1;2\n"}, separator=";").to_dict("list") == {"x": [1], "y": [2]}
    assert tabular(tmp_path, {"b.csv": b"x||y\n1||a|b\n"}, separator="||").to_dict("list") == {"x": [1], "y": ["a|b"]}


def test_encodings_use_azureml_names(tmp_path: Path) -> None:
    latin = tabular(tmp_path, {"a.csv": "name\ncafé\n".encode("latin-1")}, encoding="latin1")
    assert latin["name"].tolist() == ["café"]
    bom = tabular(tmp_path, {"b.csv": "\ufeffname\nx\n".encode()}, encoding="utf8bom")
    assert list(bom.columns) == ["name"]


def test_include_path_adds_a_path_column_first(tmp_path: Path) -> None:
    (tmp_path / "2024").mkdir()
    frame = tabular(tmp_path, {"a.csv": b"x\n1\n", "2024/b.csv": b"x\n2\n"}, include_path=True)
    assert list(frame.columns) == ["Path", "x"]
    assert frame["Path"].tolist() == ["a.csv", "2024/b.csv"]


def test_infer_column_types_false_keeps_strings_and_empty_as_string(tmp_path: Path) -> None:
    typed = tabular(tmp_path, {"a.csv": b"x,y\n1,\n"})
    assert typed["x"].tolist() == [1] and typed["y"].isna().all()
    strings = tabular(tmp_path, {"b.csv": b"x,y\n1,\n"}, infer_column_types=False, empty_as_string=True)
    assert strings.to_dict("list") == {"x": ["1"], "y": [""]}


def test_no_files_give_an_empty_frame(tmp_path: Path) -> None:
    assert tabular(tmp_path, {}).empty
