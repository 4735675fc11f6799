"""Model names, file names, commit bodies and list filters: pure checks, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlpipe.core.model import Model, ModelNotFoundException, _files_of
from amlpipe.exceptions import UserErrorException
from shared.errors import BadRequestError
from shared.registry import model_spec


@pytest.mark.parametrize("name", ["m", "diabetes_model", "A1.b-c_d", "9lives", "x" * 255])
def test_valid_model_names(name: str) -> None:
    assert model_spec.name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-x", "_x", ".x", "a/b", "a b", "a:b", "..", "x" * 256, "é", None, 3])
def test_invalid_model_names_say_the_rule(name: object) -> None:
    problem = model_spec.name_problem(name)
    assert problem is not None and "start" in problem


@pytest.mark.parametrize("path", ["model.pkl", "outputs/model.pkl", "m/a b/ç.txt", "m/.hidden"])
def test_safe_file_names(path: str) -> None:
    assert model_spec.file_problem(path) is None


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../x", "m/../../x", "m\\x", "C:/x", "m//x", "m/./x", "m/", "a\0b", "a\nb", "m" * 513]
)
def test_traversal_and_odd_file_names_are_refused(path: str) -> None:
    assert model_spec.file_problem(path) is not None


def test_declared_files_are_distinct_under_one_top_name() -> None:
    assert model_spec.parse_files(["m/a", "m/b/c"]) == ("m/a", "m/b/c")
    for bad, target in (
        ([], "files"),
        ("m", "files"),
        (["m/a", "m/a"], "files"),
        (["a", "b"], "files"),
        (["m", "m/x"], "files"),
        (["m/a", "m/../b"], "files[1]"),
        (["m"] * 1001, "files"),
    ):
        with pytest.raises(BadRequestError) as caught:
            model_spec.parse_files(bad)
        assert caught.value.target == target


def test_a_commit_body_is_checked_field_by_field() -> None:
    upload = "0" * 32
    got, meta = model_spec.parse_commit({"uploadId": upload, "tags": {"a": "b"}, "runId": "run:1", "description": None})
    assert got == upload and meta.tags == {"a": "b"} and meta.run_id == "run:1" and meta.description is None
    for body, target in (
        ({"uploadId": "nope"}, "uploadId"),
        ({"uploadId": upload, "tags": {"a": 1}}, "tags"),
        ({"uploadId": upload, "properties": ["x"]}, "properties"),
        ({"uploadId": upload, "runId": "a/b"}, "runId"),
        ({"uploadId": upload, "description": "x" * 5001}, "description"),
        ({"uploadId": upload, "version": 3}, "version"),
    ):
        with pytest.raises(BadRequestError) as caught:
            model_spec.parse_commit(body)
        assert caught.value.target == target


@pytest.mark.parametrize("raw", ["0", "-1", "x", "²", "1.5", "1234567890", ""])
def test_versions_in_urls_are_ascii_numbers_from_1(raw: str) -> None:
    with pytest.raises(BadRequestError):
        model_spec.parse_version(raw)
    assert model_spec.parse_version("12") == 12


def test_tag_filters_follow_azureml_key_or_key_value_items() -> None:
    tags = {"stage": "prod", "team": "a"}
    assert model_spec.matches(tags, ["stage", ["team", "a"]])
    assert not model_spec.matches(tags, [["stage", "dev"]]) and not model_spec.matches(tags, ["owner"])
    assert model_spec.parse_filter('["stage", ["team", "a"]]', "tags") == ["stage", ["team", "a"]]
    assert model_spec.parse_filter(None, "tags") == []
    for raw in ("stage", '{"a": 1}', '[["a"]]', "[1]"):
        with pytest.raises(BadRequestError):
            model_spec.parse_filter(raw, "tags")


def test_sdk_names_files_under_the_file_or_folder_name(tmp_path: Path) -> None:
    (tmp_path / "model" / "sub").mkdir(parents=True)
    (tmp_path / "model" / "a.pkl").write_bytes(b"a")
    (tmp_path / "model" / "sub" / "b.txt").write_bytes(b"b")
    assert [n for _, n in _files_of(tmp_path / "model" / "a.pkl", None)] == ["a.pkl"]
    assert [n for _, n in _files_of(tmp_path / "model", None)] == ["model/a.pkl", "model/sub/b.txt"]
    assert [n for _, n in _files_of(tmp_path / "model", ["sub/b.txt"])] == ["model/sub/b.txt"]
    with pytest.raises(UserErrorException, match="not a file or a folder"):
        _files_of(tmp_path / "missing", None)
    with pytest.raises(UserErrorException, match="child_paths"):
        _files_of(tmp_path / "model", ["../escape"])


def test_model_needs_a_name_or_a_valid_id_and_not_found_is_a_user_error() -> None:
    assert issubclass(ModelNotFoundException, UserErrorException)
    with pytest.raises(UserErrorException, match="name or an id"):
        Model(None)
    with pytest.raises(UserErrorException, match="name:version"):
        Model(None, id="no-version")


def test_get_model_path_without_a_workspace_reads_the_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundException):
        Model.get_model_path("m")
    for version in (1, 2):
        (tmp_path / "amlpipe-models" / "m" / str(version)).mkdir(parents=True)
        (tmp_path / "amlpipe-models" / "m" / str(version) / "model.pkl").write_bytes(b"x")
    assert Model.get_model_path("m").endswith("amlpipe-models/m/2/model.pkl")
    assert Model.get_model_path("m", version=1).endswith("amlpipe-models/m/1/model.pkl")
