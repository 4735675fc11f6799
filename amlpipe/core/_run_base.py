"""What every run a script gets from ``Run.get_context()`` shares: the logging calls and the API.

``RunContext`` declares the run-context API once, for the step's run (``_run_context``) and the
offline run (``_offline_run``); ``_Logging`` turns ``log*`` calls into journal records
(:mod:`shared.run_history`), checked in the script so a bad value fails where it was logged.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from amlpipe.core.experiment import Experiment
from amlpipe.core.run import Run
from amlpipe.exceptions import UserErrorException
from shared.run_history import MetricRecord, Record, RecordError, encode

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace

__all__ = ["CONTEXT_ENV", "PendingModel", "RunContext"]

#: The variable the worker sets to the step's ``context.json``; unset, ``Run.get_context()`` is offline.
CONTEXT_ENV = "AMLPIPE_RUN_CONTEXT"


def now() -> str:
    """Now as the journal's ISO 8601 UTC text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """numpy/pandas values as the Python values JSON can carry (``np.float64`` → float, arrays → lists)."""
    module = type(value).__module__.split(".", 1)[0]
    if module in ("numpy", "pandas"):
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "item"):
            return value.item()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class StepExperiment(Experiment):
    """The experiment of a step's run: its name is known; its workspace only with a config file.

    A step has no credentials to call the service. ``workspace`` is found the way
    ``Workspace.from_config()`` finds it (``.amlpipe/config.json`` in the working folder or a
    parent); without one it raises, saying so.
    """

    def __init__(self, name: str, *, where: str) -> None:  # no super().__init__: no workspace yet
        self._name = name
        self._id = None
        self._where = where
        self._found: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        if self._found is None:
            from amlpipe.core.workspace import Workspace

            try:
                self._found = Workspace.from_config()
            except UserErrorException as exc:
                raise UserErrorException(
                    f"The workspace is not available {self._where}: a step has no credentials to call the amlpipe"
                    " service. Put an .amlpipe/config.json in the step's source folder (it travels with the"
                    f" snapshot, secret included) to use it. ({exc.message})"
                ) from exc
        return self._found


@dataclass(frozen=True)
class PendingModel:
    """A model ``register_model`` asked for; registered when the step finishes successfully.

    It has no version yet: the worker registers it after the script exited 0, from the step's
    uploaded artifacts, atomically with the step's outputs (a failed step registers nothing). Find
    it afterwards with ``Model.list(ws, name=..., run_id=<this run's id>)``.
    """

    name: str
    model_path: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    model_framework: str | None = None
    model_framework_version: str | None = None
    version: None = None
    id: None = None


class Logging:
    """``log``, ``log_list``, ``log_row``, ``log_table``, ``log_image``: each call is one metric record."""

    _target = "run"

    def _record(self, record: Record) -> None:
        raise NotImplementedError

    def _metric(self, kind: str, name: str, value: Any, description: str) -> None:
        try:
            record = MetricRecord(kind, name, plain(value), description or "", self._target, now())
            encode(record)  # validates: a bad value fails here, in the script, not later in the worker
        except RecordError as exc:
            raise UserErrorException(f"Cannot log metric {name!r}: {exc}") from exc
        self._record(record)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a value (a number, string or boolean) under ``name``; logged again, the name holds a list."""
        self._metric("scalar", name, value, description)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a list of values under ``name`` (appended to what the name holds)."""
        values = plain(value)
        if hasattr(values, "__iter__") and not isinstance(values, str | bytes | Mapping | list):
            values = [plain(v) for v in values]  # a tuple, range, generator, ...: its values in order
        self._metric("list", name, values, description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Log one row of a table: ``log_row("Y over X", x=1, y=0.4)``; rows logged in a loop make the table."""
        self._metric("row", name, {k: plain(v) for k, v in kwargs.items()}, description or "")

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        """Log a table: column name → list of values, all of one length."""
        if not isinstance(value, Mapping):
            raise UserErrorException(f"Cannot log table {name!r}: give a dict of column name → list of values.")
        self._metric("table", name, {k: plain(v) for k, v in value.items()}, description)


class RunContext(Logging, Run, ABC):
    """What ``Run.get_context()`` returns: the run of the current step, or an offline run.

    Declares the run-context API once, for both, so scripts type-check against it.
    """

    @property
    @abstractmethod
    def parent(self) -> Run | None:
        """The pipeline run (inside a step); None offline."""

    @property
    @abstractmethod
    def input_datasets(self) -> dict[str, Any]:
        """Named inputs: a local path, or a ``TabularDataset`` for a Tabular dataset."""

    @abstractmethod
    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """What was logged, in azureml's shapes."""

    @abstractmethod
    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Log an image file or a matplotlib plot."""

    @abstractmethod
    def upload_file(
        self, name: str, path_or_stream: str | os.PathLike[str] | IO[Any], datastore_name: str | None = None
    ) -> None:
        """Upload a file as artifact ``name``."""

    @abstractmethod
    def upload_files(
        self,
        names: list[str],
        paths: list[str],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> None:
        """Upload several files."""

    @abstractmethod
    def upload_folder(self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None) -> None:
        """Upload a folder's files under ``name``."""

    @abstractmethod
    def get_file_names(self) -> list[str]:
        """The run's artifacts so far."""

    @abstractmethod
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
        """Register an artifact of the run as a model."""

    @abstractmethod
    def tag(self, key: str, value: str | None = None) -> None:
        """Set one tag."""

    @abstractmethod
    def set_tags(self, tags: Mapping[str, str | None]) -> None:
        """Set several tags."""

    @abstractmethod
    def get_tags(self) -> dict[str, str]:
        """The tags set so far."""

    @abstractmethod
    def complete(self, _set_status: bool = True) -> None:
        """azureml marks the run completed; see the subclasses for what it does here."""

    @abstractmethod
    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """azureml marks the run failed; see the subclasses for what it does here."""
