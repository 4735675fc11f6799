"""The pure rules of step inputs: globs, relative layout, unsafe names, path_on_compute, datapath values."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import BadRequestError
from shared.graph.model import (
    DataPathParameterInput,
    DataPathValue,
    DataReferenceInput,
    DatasetInput,
    ParameterDef,
    PipelineDataInput,
    PipelineGraph,
    Step,
    StepInput,
)
from shared.orchestration.datapaths import common_base, glob_base, glob_pattern, parent_of, unsafe_relative
from shared.orchestration.inputs import InputError, LocalInput, datapath_values, input_folders


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("data/*.csv", ["data/a.csv", "data/.csv"], ["data/sub/a.csv", "data/a.csv.bak", "other/a.csv"]),
        ("data/**", ["data/a", "data/x/y/z.txt"], ["database/a", "data"]),
        ("data/**/*.txt", ["data/a.txt", "data/x/y/a.txt"], ["data/a.csv", "data/x/a.csv"]),
        ("**/x.csv", ["x.csv", "a/b/x.csv"], ["a/bx.csv"]),
        ("**", ["a", "a/b/c"], []),
        ("d/file?.csv", ["d/file1.csv"], ["d/file10.csv", "d/file/.csv"]),
        ("d/[ab].csv", ["d/a.csv", "d/b.csv"], ["d/c.csv"]),
        ("d/[!ab].csv", ["d/c.csv"], ["d/a.csv", "d//.csv"]),
        ("d/[]x].csv", ["d/].csv", "d/x.csv"], ["d/y.csv"]),
        ("d/[a-c]*.csv", ["d/b1.csv"], ["d/d1.csv"]),
        ("d/[.csv", ["d/[.csv"], ["d/a.csv"]),
        ("d/a+b(1).csv", ["d/a+b(1).csv"], ["d/aab1.csv"]),
    ],
)
def test_glob_patterns_stay_within_segments_unless_double_starred(
    pattern: str, matches: list[str], misses: list[str]
) -> None:
    regex = glob_pattern(pattern)
    assert [m for m in matches if not regex.fullmatch(m)] == []
    assert [m for m in misses if regex.fullmatch(m)] == []


@pytest.mark.parametrize(
    ("pattern", "base"),
    [("data/2024/*.csv", "data/2024/"), ("data/**", "data/"), ("**/x.csv", ""), ("*.csv", ""), ("a/b*/c/*.txt", "a/")],
)
def test_a_glob_s_base_is_its_fixed_folder(pattern: str, base: str) -> None:
    assert glob_base(pattern) == base


def test_common_base_is_the_shared_folder_of_every_path() -> None:
    assert common_base(["data/a/", "data/b/"]) == "data/"
    assert common_base(["data/a/", "data/a/deeper/"]) == "data/a/"
    assert common_base(["data/", "other/"]) == ""
    assert common_base(["x/"]) == "x/"
    assert common_base([]) == ""
    assert parent_of("a/b/c.csv") == "a/b/" and parent_of("c.csv") == ""


@pytest.mark.parametrize(
    "name",
    ["", "../x", "a/../../x", "a/..", "./x", "a//b", "/etc/passwd", "a\\..\\x", "C:/x", "a\x00b", "a/\nb", "a/"],
)
def test_unsafe_relative_names_are_refused(name: str) -> None:
    assert unsafe_relative(name) is not None


@pytest.mark.parametrize("name", ["a.txt", "a/b/c.txt", "..a/b..", "a b/ü.csv", ".hidden/x"])
def test_ordinary_relative_names_are_safe(name: str) -> None:
    assert unsafe_relative(name) is None


def _step(*inputs: StepInput) -> Step:
    return Step(name="s", kind="python_script", script_name="x.py", inputs=inputs)


def test_inputs_get_their_own_folder_or_their_path_on_compute(tmp_path: Path) -> None:
    step = _step(
        DatasetInput(name="raw", dataset_name="d"),
        DataReferenceInput(name="ref", datastore="s", path_on_compute="data/ref"),
        PipelineDataInput(name="handover", pipeline_data="handover", path_on_compute="./prepped"),
    )
    assert input_folders(step, tmp_path) == {
        "raw": tmp_path / "inputs" / "raw",
        "ref": tmp_path / "data" / "ref",
        "handover": tmp_path / "prepped",
    }


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("../escape", "'..'"),
        ("a/../../escape", "'..'"),
        ("/etc", "absolute"),
        ("a\\..\\b", "backslash"),
        ("src", "worker's folders"),
        ("src/data", "worker's folders"),
        (".amlpipe", "worker's folders"),
        ("outputs/x", "worker's folders"),
        ("inputs/other", "worker's folders"),
        (".", "worker's folders"),
    ],
)
def test_a_path_on_compute_outside_the_input_s_own_place_is_refused(tmp_path: Path, where: str, why: str) -> None:
    step = _step(DataPathParameterInput(name="p", parameter="p", path_on_compute=where))
    with pytest.raises(InputError, match=why) as caught:
        input_folders(step, tmp_path)
    assert caught.value.input_name == "p" and caught.value.path == where and "'p'" in caught.value.message


def test_a_path_on_compute_through_a_symlink_out_of_the_work_folder_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(tmp_path)
    with pytest.raises(InputError, match="leaves the step's work folder"):
        input_folders(_step(DataReferenceInput(name="r", datastore="s", path_on_compute="link/x")), work)


def test_two_inputs_may_not_share_or_nest_their_folders(tmp_path: Path) -> None:
    step = _step(
        DataReferenceInput(name="a", datastore="s", path_on_compute="data"),
        DataReferenceInput(name="b", datastore="s", path_on_compute="data/b"),
    )
    with pytest.raises(InputError, match="'a' and 'b' would share"):
        input_folders(step, tmp_path)


def test_an_input_error_is_a_bad_request_naming_the_input() -> None:
    error = InputError.of("raw", "nothing found.", datastore="store", path="a/b")
    assert isinstance(error, BadRequestError)  # the worker's non-retryable kind
    assert error.message == "Input 'raw': nothing found." and error.target == "raw"
    assert (error.input_name, error.datastore, error.path, error.code) == ("raw", "store", "a/b", "InputNotAvailable")


def test_datapath_values_are_the_assignments_over_the_defaults() -> None:
    graph = PipelineGraph(
        parameters=(
            ParameterDef(name="a", type="datapath", default_value=DataPathValue(datastore="s", path_on_datastore="x")),
            ParameterDef(name="b", type="datapath", default_value=DataPathValue(datastore="s", path_on_datastore="y")),
            ParameterDef(name="n", type="int", default_value=1),
        )
    )
    values = datapath_values(graph, {"b": {"datastore": "t", "path_on_datastore": "z"}})
    assert values == {
        "a": DataPathValue(datastore="s", path_on_datastore="x"),
        "b": DataPathValue(datastore="t", path_on_datastore="z"),
    }


def test_a_context_entry_carries_tabular_files_and_options_only_for_tabular_inputs(tmp_path: Path) -> None:
    files = (tmp_path / "a.csv", tmp_path / "b.csv")
    tabular = LocalInput("t", "Tabular", tmp_path, files, "ds", 3, {"separator": ";"})
    assert tabular.context_entry() == {
        "type": "Tabular",
        "path": str(tmp_path),
        "dataset_name": "ds",
        "dataset_version": 3,
        "tabular": {"files": [str(f) for f in files], "options": {"separator": ";"}},
    }
    single = LocalInput("r", "DataReference", files[0], files[:1])
    assert single.context_entry()["tabular"] is None and single.context_entry()["path"] == str(files[0])
