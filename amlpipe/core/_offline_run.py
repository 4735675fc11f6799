"""The run ``Run.get_context()`` returns outside a step: prints what is logged and keeps it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import IO, Any

from amlpipe.core._run_base import CONTEXT_ENV, PendingModel, RunContext, StepExperiment
from amlpipe.exceptions import UserErrorException
from shared.run_history import MetricRecord, Record, aggregate

__all__ = ["OfflineRun"]


class OfflineRun(RunContext):
    """The run outside a step: logs are printed and kept; nothing is uploaded or registered."""

    def __init__(self) -> None:
        super().__init__(StepExperiment("offline", where="in an offline run"), f"OfflineRun_{uuid.uuid4()}")
        self._records: list[MetricRecord] = []
        self._tags: dict[str, str] = {}

    @property
    def parent(self) -> None:
        """None: an offline run has no parent."""
        return None

    @property
    def name(self) -> str:
        return self.id

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags)

    @property
    def properties(self) -> dict[str, str]:
        return {}

    @property
    def input_datasets(self) -> dict[str, Any]:
        """Empty: an offline run has no inputs."""
        return {}

    def get_status(self) -> str:
        return "Running"

    def get_details(self) -> dict[str, Any]:
        return {"runId": self.id, "target": "local", "status": "Running", "properties": {}, "tags": self.tags,
                "inputDatasets": [], "outputDatasets": []}  # fmt: skip

    def _refresh(self) -> dict[str, Any]:
        raise UserErrorException("An offline run is not known to the service.")

    def _record(self, record: Record) -> None:
        assert isinstance(record, MetricRecord)  # the only records an offline run makes
        self._records.append(record)
        print(f"Attempted to log {record.type} metric {record.name}:\n{record.value}")

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """What was logged in this process, in azureml's shapes."""
        found = aggregate((r.type, r.name, r.value) for r in self._records if name is None or r.name == name)
        return {self.id: found} if recursive else found

    def tag(self, key: str, value: str | None = None) -> None:
        self._tags[key] = "" if value is None else str(value)

    def set_tags(self, tags: Mapping[str, str | None]) -> None:
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self) -> dict[str, str]:
        return self.tags

    def upload_file(
        self, name: str, path_or_stream: str | os.PathLike[str] | IO[Any], datastore_name: str | None = None
    ) -> None:
        """Prints what would be uploaded (an offline run keeps no artifacts)."""
        print(f"Attempted to upload file {name} (offline run: nothing is uploaded)")

    def upload_files(
        self,
        names: list[str],
        paths: list[str],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> None:
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None) -> None:
        print(f"Attempted to upload folder {name} (offline run: nothing is uploaded)")

    def get_file_names(self) -> list[str]:
        """Empty: an offline run keeps no artifacts."""
        return []

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        print(f"Attempted to log image metric {name} (offline run: the image is not kept)")

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: list[Any] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> PendingModel:
        """Not possible offline.

        Raises:
            UserErrorException: always.
        """
        raise UserErrorException(
            f"register_model({model_name!r}) needs a step run, but Run.get_context() returned an offline run"
            f" ({CONTEXT_ENV} is not set). Outside a pipeline, register with Model.register(workspace, model_path,"
            " model_name)."
        )

    def complete(self, _set_status: bool = True) -> None:
        """Does nothing offline."""

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Does nothing offline."""

    def __repr__(self) -> str:
        return f"Run(Experiment: offline, Id: {self.id}, Type: None, Status: Running)"
