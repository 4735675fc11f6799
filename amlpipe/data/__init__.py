"""amlpipe.data: references to data on datastores and datasets consumed by steps (azureml.data)."""

from __future__ import annotations

from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.data.dataset_consumption_config import DatasetConsumptionConfig

__all__ = ["DataPath", "DataPathComputeBinding", "DataReference", "DatasetConsumptionConfig"]
