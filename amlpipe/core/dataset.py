"""Datasets (azureml.core.Dataset): named, versioned definitions of data on datastores.

    ds = Dataset.Tabular.from_delimited_files(path=[(datastore, "data/*.csv")])
    ds = ds.register(ws, "raw_dataset", create_new_version=True)
    raw = Dataset.get_by_name(ws, "raw_dataset")            # the latest version
    step_input = raw.as_named_input("raw_data")              # a DatasetConsumptionConfig

A definition names datastore paths (glob patterns allowed); registering it stores it on the service
under a name, versions counting from 1. Registering the latest definition again returns that version.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from amlpipe._client import api_path
from amlpipe.core.compute import _require_service
from amlpipe.data._names import name_of
from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath
from amlpipe.data.dataset_consumption_config import DatasetConsumptionConfig
from amlpipe.exceptions import ServiceException, UserErrorException

__all__ = ["Dataset", "FileDataset", "FileDatasetFactory", "TabularDataset", "TabularDatasetFactory"]

_PORT_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def _paths(path: Any) -> list[dict[str, str]]:
    """``path`` as ``[{"datastore", "path"}]``: tuples ``(datastore, path)``, DataPath, DataReference or lists."""
    items = path if isinstance(path, list) else [path]
    if not items:
        raise UserErrorException("path must name at least one location, e.g. [(datastore, 'data/*.csv')].")
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            store, where = name_of(item[0], "datastore"), item[1]
        elif isinstance(item, DataPath):
            store, where = item.datastore_name, item.path_on_datastore
        elif isinstance(item, DataReference):
            store, where = item.datastore_name, item.path_on_datastore
        else:
            raise UserErrorException(
                f"Unsupported path {item!r}: amlpipe datasets read from datastores; pass"
                " path=[(datastore, 'folder/**')] or datastore.path('folder')."
            )
        if where is not None and not isinstance(where, str):
            raise UserErrorException(f"The path on datastore '{store}' must be a string, got {type(where).__name__}.")
        where = (where or "").lstrip("/") or "**"  # azureml paths are relative to the datastore's root
        out.append({"datastore": store, "path": where})
    return out


class Dataset:
    """A dataset: its definition and, once registered, its name, version and id.

    ``Dataset.File`` and ``Dataset.Tabular`` create definitions; ``register`` stores them.
    """

    File: ClassVar[type[FileDatasetFactory]]
    Tabular: ClassVar[type[TabularDatasetFactory]]
    _kind = ""

    def __init__(
        self, definition: dict[str, Any], *, workspace: Any = None, registration: dict[str, Any] | None = None
    ):
        self._definition = definition
        self._workspace = workspace
        reg = registration or {}
        self.name: str | None = reg.get("name")
        self.version: int | None = reg.get("version")
        self.id: str | None = reg.get("id")
        self.description: str | None = reg.get("description")
        self.tags: dict[str, str] = dict(reg.get("tags") or {})

    @property
    def workspace(self) -> Any:
        """The workspace it is registered in (None when unregistered)."""
        return self._workspace

    @property
    def definition(self) -> dict[str, Any]:
        """``{"kind", "paths": [{"datastore", "path"}], "options"}``."""
        return dict(self._definition)

    @staticmethod
    def _from_json(workspace: Any, body: dict[str, Any]) -> Dataset:
        cls: type[Dataset] = TabularDataset if body["definition"]["kind"] == "Tabular" else FileDataset
        return cls(body["definition"], workspace=workspace, registration=body)

    def register(
        self,
        workspace: Any,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        create_new_version: bool = False,
    ) -> Dataset:
        """Register this definition as ``name``: version 1, or the next version with ``create_new_version``.

        Returns:
            The registered dataset (the existing version when the latest has this same definition).

        Raises:
            UserErrorException: ``name`` is registered with another definition and ``create_new_version``
                is False, or an argument is invalid (the message says which).
        """
        body = {
            "definition": self._definition,
            "description": description,
            "tags": tags or {},
            "createNewVersion": create_new_version,
        }
        try:
            answer = _require_service(workspace).post(api_path("datasets", name, "versions"), body)
        except ServiceException as exc:
            if exc.status_code in (400, 404, 409):
                raise UserErrorException(exc.message) from exc
            raise
        return Dataset._from_json(workspace, answer)

    @staticmethod
    def get_by_name(workspace: Any, name: str, version: int | str = "latest") -> Dataset:
        """Registered dataset ``name`` at ``version`` (default: the latest).

        Raises:
            UserErrorException: no such dataset or version.
        """
        if version != "latest" and not (isinstance(version, int) or str(version).isdigit()):
            raise UserErrorException(f"version must be 'latest' or a positive integer, got {version!r}.")
        try:
            answer = _require_service(workspace).get(api_path("datasets", name), params={"version": str(version)})
        except ServiceException as exc:
            if exc.status_code in (400, 404):
                raise UserErrorException(
                    f'Cannot find dataset registered with name "{name}" (version: {version}) in the workspace.'
                ) from exc
            raise
        return Dataset._from_json(workspace, answer)

    @staticmethod
    def get_all(workspace: Any) -> dict[str, Dataset]:
        """The latest version of every registered dataset, by name."""
        return {d.name or "": d for d in Dataset.list(workspace)}

    @staticmethod
    def list(workspace: Any) -> list[Dataset]:
        """The latest version of every registered dataset."""
        body = _require_service(workspace).get("datasets")
        return [Dataset._from_json(workspace, item) for item in body["value"]]

    def unregister_all_versions(self) -> None:
        """Unregister every version of this dataset (the data stays)."""
        if self.name is None:
            raise UserErrorException("This dataset is not registered.")
        _require_service(self._workspace).delete(api_path("datasets", self.name))

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """This dataset as a step input called ``name`` (``Run.input_datasets[name]``)."""
        return DatasetConsumptionConfig(name, self)

    def _input_name(self) -> str:
        return _PORT_UNSAFE.sub("_", self.name) if self.name else "dataset"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, paths={self._definition['paths']!r})"
        )


class FileDataset(Dataset):
    """Files on datastores (azureml.data.FileDataset)."""

    _kind = "File"

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This dataset as a mounted step input."""
        return DatasetConsumptionConfig(self._input_name(), self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This dataset as a step input downloaded before the step starts."""
        return DatasetConsumptionConfig(self._input_name(), self, "download", path_on_compute)


class TabularDataset(Dataset):
    """Delimited files on datastores read as one table (azureml.data.TabularDataset)."""

    _kind = "Tabular"


class FileDatasetFactory:
    """``Dataset.File``: creates FileDataset definitions."""

    @staticmethod
    def from_files(
        path: Any, validate: bool = True, partition_format: str | None = None, is_file: bool = False
    ) -> FileDataset:
        """A FileDataset of the files at ``path``: ``[(datastore, 'folder/**')]``, DataPaths or DataReferences."""
        if partition_format is not None:
            raise UserErrorException("partition_format is not supported by amlpipe yet.")
        return FileDataset({"kind": "File", "paths": _paths(path), "options": {}})


class TabularDatasetFactory:
    """``Dataset.Tabular``: creates TabularDataset definitions."""

    @staticmethod
    def from_delimited_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: dict[str, Any] | None = None,
        separator: str = ",",
        header: bool | str = True,
        partition_format: str | None = None,
        support_multi_line: bool = False,
        empty_as_string: bool = False,
        encoding: str = "utf8",
    ) -> TabularDataset:
        """A TabularDataset of the delimited files at ``path`` (azureml's options, checked on ``register``)."""
        if set_column_types or partition_format is not None:
            raise UserErrorException("set_column_types and partition_format are not supported by amlpipe yet.")
        if isinstance(header, str):  # azureml's PromoteHeadersBehavior names, any case
            header = header.lower()
        options = {
            "separator": separator,
            "header": header,
            "encoding": encoding,
            "infer_column_types": infer_column_types,
            "support_multi_line": support_multi_line,
            "empty_as_string": empty_as_string,
            "include_path": include_path,
        }
        return TabularDataset({"kind": "Tabular", "paths": _paths(path), "options": options})


Dataset.File = FileDatasetFactory
Dataset.Tabular = TabularDatasetFactory
