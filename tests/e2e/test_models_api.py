"""Models on the real app over HTTP: the SDK registers files and folders, gets, lists, downloads;
roles, azureml error bodies and traversal refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.core import Model, Workspace
from amlpipe.core.model import ModelNotFoundException
from amlpipe.exceptions import ServiceException, UserErrorException
from amlpipe.host.testing import HostProcess
from tests.e2e.conftest import real_app

pytestmark = pytest.mark.integration


@dataclass
class App:
    host: HostProcess
    contributor: Workspace
    reader: Workspace

    def call(self, method: str, path: str, *, ws: Workspace | None = None, body: Any = None) -> requests.Response:
        headers = {} if ws is None else ws._auth.get_authentication_header()
        return requests.request(method, f"{self.host.url}/api/{path}", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with real_app(storage, tmp_path_factory.mktemp("models"), "models") as real:
        yield App(real.host, real.workspace_as("Contributor"), real.workspace_as("Reader"))


def error_of(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["Error"]
    assert set(body) >= {"Code", "Message", "Details"}
    return body


def test_register_a_file_and_a_folder_then_get_list_and_download(app: App, tmp_path: Path) -> None:
    ws = app.contributor
    (tmp_path / "model.pkl").write_bytes(b"pickle-1")
    first = Model.register(ws, str(tmp_path / "model.pkl"), "diabetes_model", tags={"stage": "dev"},
                           properties={"auc": "0.8"}, description="first", model_framework="ScikitLearn")  # fmt: skip
    assert (first.name, first.version, first.id, first.tags) == (
        "diabetes_model",
        1,
        "diabetes_model:1",
        {"stage": "dev"},
    )
    folder = tmp_path / "outputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "sub" / "config.json").write_text("{}")
    second = Model.register(ws, folder, "diabetes_model", tags={"stage": "prod"})
    assert second.version == 2 and second.created_time >= first.created_time

    latest = Model(app.reader, "diabetes_model")
    assert latest.version == 2 and latest.tags == {"stage": "prod"}
    assert Model(app.reader, "diabetes_model", version=1).description == "first"
    assert Model(app.reader, id="diabetes_model:1").model_framework == "ScikitLearn"
    assert Model(app.reader, "diabetes_model", tags=[["stage", "dev"]]).version == 1
    assert [m.id for m in Model.list(app.reader, name="diabetes_model")] == ["diabetes_model:2", "diabetes_model:1"]
    assert [m.version for m in Model.list(app.reader, tags=["stage"], latest=True)] == [2]
    assert [m.version for m in Model.list(app.reader, properties=[["auc", "0.8"]])] == [1]

    out = tmp_path / "down"
    path = Model(app.reader, "diabetes_model", version=1).download(out)
    assert Path(path) == (out / "model.pkl").resolve() and Path(path).read_bytes() == b"pickle-1"
    with pytest.raises(UserErrorException, match="exist_ok"):
        Model(app.reader, "diabetes_model", version=1).download(out)
    path = latest.download(out, exist_ok=True)
    assert Path(path).is_dir() and (Path(path) / "sub" / "config.json").read_text() == "{}"

    with pytest.raises(ModelNotFoundException):
        Model(app.reader, "diabetes_model", version=9)
    with pytest.raises(ModelNotFoundException):
        Model(app.reader, "no_such_model")


def test_delete_is_idempotent_and_contributor_only(app: App, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"x")
    model = Model.register(app.contributor, tmp_path / "m.bin", "scratch")
    denied = app.call("DELETE", "models/scratch/versions/1", ws=app.reader)
    assert denied.status_code == 403 and error_of(denied)["Code"] == "Forbidden"
    model.delete()
    assert app.call("DELETE", "models/scratch/versions/1", ws=app.contributor).status_code == 204
    gone = app.call("GET", "models/scratch/versions/1", ws=app.reader)
    assert gone.status_code == 404 and error_of(gone)["Code"] == "NotFound"


@pytest.mark.parametrize(
    ("path", "body", "target"),
    [
        ("models/ok/uploads", {"files": ["../escape.pkl"]}, "files[0]"),
        ("models/ok/uploads", {"files": ["/etc/passwd"]}, "files[0]"),
        ("models/ok/uploads", {"files": ["m/..\\x"]}, "files[0]"),
        ("models/-bad/uploads", {"files": ["m.pkl"]}, "name"),
        ("models/ok/versions", {"uploadId": "nope"}, "uploadId"),
        ("models/ok/versions", {"uploadId": "0" * 32}, "uploadId"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(app: App, path: str, body: Any, target: str) -> None:
    response = app.call("POST", path, ws=app.contributor, body=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["Code"] == "BadArgument" and error_of(response)["Target"] == target


def test_401_without_a_token_403_for_readers_writing_and_400_for_bad_versions(app: App) -> None:
    anonymous = app.call("GET", "models")
    assert anonymous.status_code == 401 and error_of(anonymous)["Code"] == "Unauthorized"
    write = app.call("POST", "models/x/uploads", ws=app.reader, body={"files": ["m.pkl"]})
    assert write.status_code == 403 and error_of(write)["Code"] == "Forbidden"
    bad = app.call("GET", "models/x/versions/0", ws=app.reader)
    assert bad.status_code == 400 and error_of(bad)["Target"] == "version"
    bad_filter = app.call("GET", "models?tags=nope", ws=app.reader)
    assert bad_filter.status_code == 400 and error_of(bad_filter)["Target"] == "tags"
    with pytest.raises(UserErrorException):
        Model.register(app.contributor, __file__, "bad name")
    with pytest.raises(ModelNotFoundException, match="ModelNotFound"):
        Model(app.reader, id="x:1")
    with pytest.raises(ServiceException) as caught:  # a Reader's token cannot start an upload
        Model.register(app.reader, __file__, "readers_cannot")
    assert caught.value.status_code == 403
