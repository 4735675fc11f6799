"""DatasetConsumptionConfig: how a step consumes a dataset (azureml.data.dataset_consumption_config).

``dataset`` may be any object with ``name`` (str) and ``version`` (int or None) attributes, such as
``amlpipe.core.Dataset`` (``Dataset.as_named_input(name)`` returns one of these), or a
``PipelineParameter`` whose default is such an object.
"""

from __future__ import annotations

from typing import Any

from amlpipe.data._names import check_port_name

_MODES = ("direct", "mount", "download")


class DatasetConsumptionConfig:
    """A named dataset input of a step.

    Args:
        name: the input name in the run (``Run.input_datasets[name]``); letters, digits and ``_``.
        dataset: the dataset, an object with ``.name`` and ``.version``.
        mode: ``"direct"`` (default), ``"mount"`` or ``"download"``.
        path_on_compute: where mounted or downloaded data appears; chosen by the runner when None.
    """

    def __init__(self, name: str, dataset: Any, mode: str = "direct", path_on_compute: str | None = None) -> None:
        self.name = check_port_name(name, "name")
        if dataset is None:
            raise ValueError("dataset is required for a DatasetConsumptionConfig")
        if mode not in _MODES:
            raise ValueError(f"Invalid mode [{mode}]. Valid modes are {list(_MODES)}")
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This input, mounted on the compute."""
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This input, downloaded to the compute before the step starts."""
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r})"
