"""Experiments: named groups of runs, created by the first run submitted to them.

Table ``amlpipeexperiments`` (plus ``AMLPIPE_TABLE_PREFIX``): PartitionKey = the experiment name
(names are restricted to letters, digits, ``_`` and ``-``, so they are valid keys), RowKey
"experiment"; properties Id (GUID), Name, CreatedDate. One partition per experiment.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient

from shared.errors import BadRequestError, NotFoundError
from shared.pipelines._storage import LazyTable, as_datetime, iso, utcnow

TABLE = "amlpipeexperiments"
ROW = "experiment"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


@dataclass(frozen=True)
class Experiment:
    """An experiment: its id, name and creation time."""

    id: str
    name: str
    created_date: datetime

    def to_json(self) -> dict[str, Any]:
        return {"Id": self.id, "Name": self.name, "CreatedDate": iso(self.created_date)}


def check_experiment_name(name: Any, *, target: str = "ExperimentName") -> str:
    """``name`` if it is a valid experiment name (azureml's rule).

    Raises:
        BadRequestError: it is missing, not a string, or breaks the rule.
    """
    if name is None or name == "":
        raise BadRequestError(f"{target} is required: the experiment to run the pipeline in.", target=target)
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequestError(
            f"Experiment name {str(name)[:300]!r} is invalid: it must be 1-255 characters, start with a letter or a "
            "number, and contain only letters, numbers, underscores and dashes.",
            target=target,
        )
    return name


class ExperimentStore:
    """Experiments in Table storage."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)

    def ensure_experiment(self, name: str) -> Experiment:
        """The experiment ``name``, created if new (safe when two requests race to create it)."""
        check_experiment_name(name)
        entity = {"PartitionKey": name, "RowKey": ROW, "Id": str(uuid.uuid4()), "Name": name, "CreatedDate": utcnow()}
        try:
            self._table.client().create_entity(entity)
        except ResourceExistsError:
            return self.get_experiment(name)
        return _from_entity(entity)

    def get_experiment(self, name: str) -> Experiment:
        """The experiment ``name``.

        Raises:
            NotFoundError: there is none.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise NotFoundError(f"Experiment {name!r} does not exist.", target="name")
        try:
            return _from_entity(self._table.client().get_entity(name, ROW))
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Experiment {name!r} does not exist.", target="name") from exc

    def list_experiments(self) -> list[Experiment]:
        """Every experiment, by name."""
        return sorted((_from_entity(e) for e in self._table.client().list_entities()), key=lambda e: e.name)


def _from_entity(e: Any) -> Experiment:
    created = as_datetime(e["CreatedDate"])
    assert created is not None
    return Experiment(id=str(e["Id"]), name=str(e["Name"]), created_date=created)
