"""DataReference: a fixed location on a datastore used as a step input (azureml.data.data_reference)."""

from __future__ import annotations

from typing import Any

from amlpipe.data._names import check_port_name, name_of

_MODES = ("mount", "download")


class DataReference:
    """A reference to a path on a datastore.

    Args:
        datastore: the datastore (a name or an object with ``.name``).
        data_reference_name: the input name in the step; defaults to the datastore's name.
        path_on_datastore: the path relative to the datastore's root; None means the root.
        mode: ``"mount"`` (default) or ``"download"``.
        path_on_compute: where the data appears on the compute; chosen by the runner when None.
        overwrite: whether a download may overwrite existing files.
    """

    def __init__(
        self,
        datastore: Any,
        data_reference_name: str | None = None,
        path_on_datastore: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if datastore is None:
            raise ValueError("datastore is required for a DataReference")
        if mode not in _MODES:
            raise ValueError(f"Invalid mode [{mode}]. Valid modes are {list(_MODES)}")
        self.datastore = datastore
        self.datastore_name = name_of(datastore, "datastore")
        self.data_reference_name = check_port_name(
            data_reference_name if data_reference_name is not None else self.datastore_name, "data_reference_name"
        )
        self.path_on_datastore = path_on_datastore
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def _copy(self, **changes: Any) -> DataReference:
        values: dict[str, Any] = {
            "datastore": self.datastore,
            "data_reference_name": self.data_reference_name,
            "path_on_datastore": self.path_on_datastore,
            "mode": self.mode,
            "path_on_compute": self.path_on_compute,
            "overwrite": self.overwrite,
        }
        values.update(changes)
        return DataReference(**values)

    def as_mount(self) -> DataReference:
        """This reference, mounted."""
        return self._copy(mode="mount")

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        """This reference, downloaded to ``path_on_compute`` before the step starts."""
        return self._copy(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A reference to ``path`` under this one's path on the same datastore."""
        base = (self.path_on_datastore or "").rstrip("/")
        joined = f"{base}/{path}" if base and path else (path or base or None)
        return self._copy(path_on_datastore=joined, data_reference_name=data_reference_name or self.data_reference_name)

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    def __repr__(self) -> str:
        return (
            f"DataReference(datastore={self.datastore_name!r}, data_reference_name={self.data_reference_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r}, mode={self.mode!r})"
        )
