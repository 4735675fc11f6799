"""Models (azureml.core.Model): named, versioned, immutable files registered in the workspace.

    model = Model.register(ws, model_path="outputs/model.pkl", model_name="diabetes_model", tags={"a": "b"})
    model = Model(ws, "diabetes_model")                  # the latest version; Model(ws, id="diabetes_model:1")
    path = model.download(target_dir="models")           # "models/model.pkl"
    for m in Model.list(ws, tags=[["a", "b"]], latest=True): ...

``register`` uploads a file or a folder straight to Blob storage with write-only SAS URLs the service
grants per file, then commits; the service copies the files to where only it can write, so a
registered version never changes. ``download`` writes only inside ``target_dir``.

Exceptions: ``ModelNotFoundException`` (a ``UserErrorException``; azureml raises a
``WebserviceException`` there) when no model matches; ``UserErrorException`` for invalid arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient

from amlpipe._client import api_path
from amlpipe.core.compute import _require_service
from amlpipe.data import _transfer
from amlpipe.exceptions import ServiceException, UserErrorException

__all__ = ["Model", "ModelNotFoundException"]

#: Where ``get_model_path`` looks for (and ``_workspace`` downloads) models, under the current folder.
LOCAL_MODELS_DIR = "amlpipe-models"

TagFilter = Sequence[str | Sequence[str]]


class ModelNotFoundException(UserErrorException):
    """No registered model matches (azureml raises ``WebserviceException`` with "ModelNotFound")."""


def _service_call(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except ServiceException as exc:
        if exc.status_code == 404:
            raise ModelNotFoundException(f"ModelNotFound: {exc.message}") from exc
        if exc.status_code in (400, 409):
            raise UserErrorException(exc.message) from exc
        raise


def _files_of(model_path: str | os.PathLike[str], child_paths: list[str] | None) -> list[tuple[Path, str]]:
    """``(local file, model file name)`` pairs; names start with the file's or folder's own name (as azureml)."""
    source = Path(model_path)
    if source.is_file():
        if child_paths:
            raise UserErrorException("child_paths may only be given when model_path is a folder.")
        return [(source, source.name)]
    if not source.is_dir():
        raise UserErrorException(f"model_path '{model_path}' is not a file or a folder.")
    top = source.resolve().name
    if not top:
        raise UserErrorException(f"model_path '{model_path}' must name a file or a folder, not a root.")
    files = [(f, "/".join((top, *f.relative_to(source).parts))) for f in _transfer.walk(source)]
    if child_paths is not None:
        wanted = {_transfer.blob_prefix(c, "child_paths") for c in child_paths}
        files = [(f, n) for f, n in files if n.split("/", 1)[1] in wanted]
    if not files:
        raise UserErrorException(f"model_path '{model_path}' holds no files to register.")
    return files


class Model:
    """A registered model version; ``Model(ws, name)`` gets the latest, ``version=`` or ``id=`` a given one.

    Args:
        workspace: the workspace.
        name: the model's name.
        id: ``"name:version"`` (instead of ``name``/``version``).
        tags: keep only versions with these tags: ``"key"`` or ``["key", "value"]`` items.
        properties: likewise for properties.
        version: a version number (default: the newest that matches).
        run_id: keep only versions registered from this run.

    Raises:
        ModelNotFoundException: nothing matches.
        UserErrorException: neither ``name`` nor ``id`` was given.
    """

    def __init__(
        self,
        workspace: Any,
        name: str | None = None,
        id: str | None = None,
        tags: TagFilter | None = None,
        properties: TagFilter | None = None,
        version: int | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.workspace = workspace
        body: dict[str, Any] | None = kwargs.get("_body")
        if body is None:
            body = Model._fetch(workspace, name, id, tags, properties, version, run_id)
        self._load(body)

    @staticmethod
    def _fetch(
        workspace: Any,
        name: str | None,
        id: str | None,
        tags: TagFilter | None,
        properties: TagFilter | None,
        version: int | None,
        run_id: str | None,
    ) -> dict[str, Any]:
        if id is not None:
            name, sep, raw = id.rpartition(":")
            if not sep or not name or not raw.isascii() or not raw.isdigit():
                raise UserErrorException(f"Model id {id!r} is invalid: expected 'name:version'.")
            version = int(raw)
        if not name:
            raise UserErrorException("Model needs a name or an id.")
        client = _require_service(workspace)
        if tags or properties or run_id:
            found = [
                m
                for m in Model._query(workspace, name=name, tags=tags, properties=properties, run_id=run_id)
                if version is None or m["version"] == version
            ]
            if not found:
                raise ModelNotFoundException(
                    f"ModelNotFound: Model with name {name} (version {version or 'latest'}) and the given tags,"
                    " properties or run id not found in the workspace."
                )
            return found[0]
        path = api_path("models", name) if version is None else api_path("models", name, "versions", version)
        body: dict[str, Any] = _service_call(client.get, path)
        return body

    @staticmethod
    def _query(
        workspace: Any,
        *,
        name: str | None = None,
        tags: TagFilter | None = None,
        properties: TagFilter | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[dict[str, Any]]:
        params: dict[str, str] = {"latest": "true" if latest else "false"}
        if name is not None:
            params["name"] = name
        if run_id is not None:
            params["runId"] = run_id
        for key, value in (("tags", tags), ("properties", properties)):
            if value:
                params[key] = json.dumps([v if isinstance(v, str) else list(v) for v in value])
        body = _service_call(_require_service(workspace).get, "models", params=params)
        return list(body["value"])

    def _load(self, body: dict[str, Any]) -> None:
        self.name: str = body["name"]
        self.version: int = int(body["version"])
        self.id: str = body["id"]
        self.description: str | None = body.get("description")
        self.tags: dict[str, str] = dict(body.get("tags") or {})
        self.properties: dict[str, str] = dict(body.get("properties") or {})
        self.run_id: str | None = body.get("runId")
        self.model_framework: str | None = body.get("modelFramework")
        self.model_framework_version: str | None = body.get("modelFrameworkVersion")
        self.created_time: datetime = datetime.fromisoformat(body["createdTime"])
        self.url: str = body.get("blobPrefix", "")
        self._path: str = body["path"]

    @staticmethod
    def register(
        workspace: Any,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        datasets: list[Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> Model:
        """Register the file or folder ``model_path`` as the next version of ``model_name``.

        Args:
            workspace: the workspace.
            model_path: a local file, or a folder (every file under it; ``child_paths`` picks some).
            model_name: letters, digits, '-', '_' and '.', at most 255, starting with a letter or digit.
            tags, properties: string key/value pairs.
            description: free text.
            model_framework, model_framework_version: recorded as given (e.g. ``"ScikitLearn"``).

        Raises:
            UserErrorException: an invalid argument, a missing path, or an unsupported option.
        """
        unsupported = {
            "datasets": datasets,
            "sample_input_dataset": sample_input_dataset,
            "sample_output_dataset": sample_output_dataset,
            "resource_configuration": resource_configuration,
        }
        given = [k for k, v in unsupported.items() if v]
        if given:
            raise UserErrorException(f"{', '.join(given)} is not supported by amlpipe yet.")
        return Model._register(
            workspace, model_path, model_name, tags=tags, properties=properties, description=description,
            model_framework=model_framework, model_framework_version=model_framework_version, child_paths=child_paths,
        )  # fmt: skip

    @staticmethod
    def _register(
        workspace: Any,
        model_path: str | os.PathLike[str],
        model_name: str,
        *,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        run_id: str | None = None,
    ) -> Model:
        """``register``, plus the run the model came from (what ``Run.register_model`` passes)."""
        files = _files_of(model_path, child_paths)
        client = _require_service(workspace)
        ticket = _service_call(client.post, api_path("models", model_name, "uploads"), {"files": [n for _, n in files]})
        urls = {f["path"]: f["url"] for f in ticket["files"]}
        for local, name in files:
            with open(local, "rb") as data, BlobClient.from_blob_url(urls[name]) as blob:
                blob.upload_blob(data, overwrite=True)
        body: dict[str, Any] = {
            "uploadId": ticket["uploadId"],
            "description": description,
            "tags": tags or {},
            "properties": properties or {},
            "runId": run_id,
            "modelFramework": model_framework,
            "modelFrameworkVersion": model_framework_version,
        }
        answer = _service_call(client.post, api_path("models", model_name, "versions"), body)
        return Model(workspace, _body=answer)

    @staticmethod
    def list(
        workspace: Any,
        name: str | None = None,
        tags: TagFilter | None = None,
        properties: TagFilter | None = None,
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[Model]:
        """Registered model versions, by name then newest first.

        Args:
            name: only this model's versions.
            tags, properties: keep versions having each ``"key"``, or each ``["key", "value"]``.
            run_id: only versions registered from this run.
            latest: only the newest version of each model (then filtered).
        """
        found = Model._query(workspace, name=name, tags=tags, properties=properties, run_id=run_id, latest=latest)
        return [Model(workspace, _body=body) for body in found]

    def download(self, target_dir: str | os.PathLike[str] = ".", exist_ok: bool = False) -> str:
        """Download this version's files into ``target_dir``; return the path of the model file or folder.

        Raises:
            UserErrorException: a file exists and ``exist_ok`` is False, or a file name would land
                outside ``target_dir`` (nothing is written then).
        """
        answer = _service_call(
            _require_service(self.workspace).post, api_path("models", self.name, "versions", self.version, "sas")
        )
        root = Path(target_dir)
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        planned = [(f["url"], _transfer.local_destination(root, f["path"])) for f in answer["files"]]
        if not exist_ok:
            for _, destination in planned:
                if destination.exists():
                    raise UserErrorException(
                        f"File '{destination}' already exists; pass exist_ok=True to overwrite it."
                    )
        for url, destination in planned:
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(destination.name + ".amlpipe-partial")
            with BlobClient.from_blob_url(url) as blob, open(partial, "wb") as out:
                blob.download_blob().readinto(out)
            os.replace(partial, destination)  # a reader never sees half a file
        return str(_transfer.local_destination(root, self._path))

    def delete(self) -> None:
        """Delete this version and its files (azureml's ``Model.delete``)."""
        _service_call(_require_service(self.workspace).delete, api_path("models", self.name, "versions", self.version))

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """The local path of a model's file or folder.

        With ``_workspace`` the version (default: the latest) is downloaded to
        ``./amlpipe-models/{name}/{version}/`` unless already there; without, that folder is searched
        (the highest local version when ``version`` is None).

        Raises:
            ModelNotFoundException: no such model (locally, or in the workspace).
        """
        base = Path(LOCAL_MODELS_DIR) / _transfer.blob_prefix(model_name, "model_name")
        if _workspace is not None:
            model = Model(_workspace, model_name, version=version)
            target = base / str(model.version)
            return model.download(target, exist_ok=True)
        versions = sorted(int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit())
        chosen = version if version is not None else (versions[-1] if versions else None)
        folder = base / str(chosen)
        entries = sorted(folder.iterdir()) if chosen is not None and folder.is_dir() else []
        if not entries:
            raise ModelNotFoundException(
                f"ModelNotFound: Model {model_name} (version {version or 'latest'}) not found in {base}."
            )
        return str(entries[0])

    def __repr__(self) -> str:
        return f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version})"
