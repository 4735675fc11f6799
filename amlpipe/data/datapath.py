"""DataPath: a location on a datastore, usable as a PipelineParameter default (azureml.data.datapath)."""

from __future__ import annotations

from typing import Any

from amlpipe.data._names import name_of

_MODES = ("mount", "download")


class DataPath:
    """A path on a datastore.

    Args:
        datastore: the datastore (a name or an object with ``.name``).
        path_on_datastore: the path relative to the datastore's root.
        name: an optional display name.
    """

    def __init__(self, datastore: Any = None, path_on_datastore: str | None = None, name: str | None = None) -> None:
        if datastore is None:
            raise ValueError("datastore is required for a DataPath")
        self._datastore = datastore
        self.datastore_name = name_of(datastore, "datastore")
        self.path_on_datastore = path_on_datastore or ""
        self.name = name

    @property
    def datastore(self) -> Any:
        """The datastore as given."""
        return self._datastore

    def create_data_reference(
        self, data_reference_name: str | None = None, datapath_compute_binding: Any = None
    ) -> Any:
        """A DataReference to this path, bound as ``datapath_compute_binding`` says (mount by default)."""
        from amlpipe.data.data_reference import DataReference

        binding = datapath_compute_binding or DataPathComputeBinding()
        return DataReference(
            self._datastore,
            data_reference_name=data_reference_name,
            path_on_datastore=self.path_on_datastore,
            mode=binding.mode,
            path_on_compute=binding.path_on_compute,
            overwrite=binding.overwrite,
        )

    def __repr__(self) -> str:
        return f"DataPath(datastore={self.datastore_name!r}, path_on_datastore={self.path_on_datastore!r})"


class DataPathComputeBinding:
    """How a DataPath reaches the compute: ``mount`` or ``download``.

    Args:
        mode: ``"mount"`` (default) or ``"download"``.
        path_on_compute: where the data appears on the compute; chosen by the runner when None.
        overwrite: whether a download may overwrite existing files.
    """

    def __init__(self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False) -> None:
        if mode not in _MODES:
            raise ValueError(f"Invalid mode [{mode}]. Valid modes are {list(_MODES)}")
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def __repr__(self) -> str:
        return f"DataPathComputeBinding(mode={self.mode!r}, path_on_compute={self.path_on_compute!r})"
