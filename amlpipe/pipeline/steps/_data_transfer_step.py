"""DataTransferStep: copy data between datastores (azureml.pipeline.steps.data_transfer_step)."""

from __future__ import annotations

from typing import Any

from amlpipe.data.data_reference import DataReference
from amlpipe.pipeline.core import _wire
from amlpipe.pipeline.core._builder import InputPortBinding, PipelineData
from amlpipe.pipeline.core._step import PipelineStep
from shared.graph import model as m

_REFERENCE_TYPES = ("file", "directory")


class DataTransferStep(PipelineStep):
    """Copy a file or folder from a source to a destination.

    Args:
        name: the step's name.
        source_data_reference: a DataReference, PipelineData or InputPortBinding to copy from.
        destination_data_reference: a DataReference or PipelineData to copy to.
        compute_target: the compute target (a name, object or tuple); the workspace default when None.
        source_reference_type: ``"file"`` or ``"directory"``; inferred by the runner when None.
        destination_reference_type: ``"file"`` or ``"directory"``; inferred by the runner when None.
        allow_reuse: whether an identical earlier copy may be reused (default True).

    Raises:
        ValueError: a missing source or destination, an unsupported type, or a bad reference type.
    """

    _kind = "data_transfer"

    def __init__(
        self,
        name: str,
        source_data_reference: Any = None,
        destination_data_reference: Any = None,
        compute_target: Any = None,
        source_reference_type: str | None = None,
        destination_reference_type: str | None = None,
        allow_reuse: bool = True,
    ) -> None:
        for label, value in (
            ("source_reference_type", source_reference_type),
            ("destination_reference_type", destination_reference_type),
        ):
            if value is not None and value not in _REFERENCE_TYPES:
                raise ValueError(f"{label} must be one of {list(_REFERENCE_TYPES)}, got {value!r}")
        if not isinstance(source_data_reference, DataReference | PipelineData | InputPortBinding):
            raise ValueError("source_data_reference is required: a DataReference, PipelineData or InputPortBinding")
        if not isinstance(destination_data_reference, DataReference | PipelineData):
            raise ValueError("destination_data_reference is required: a DataReference or PipelineData")
        outputs = [destination_data_reference] if isinstance(destination_data_reference, PipelineData) else []
        super().__init__(name, [source_data_reference], outputs)
        self._destination = destination_data_reference
        self._source_reference_type = source_reference_type
        self._destination_reference_type = destination_reference_type
        self._compute_target = compute_target
        self._allow_reuse = allow_reuse

    def get_output(self) -> PipelineData:
        """The PipelineData written, to feed later steps.

        Raises:
            ValueError: the destination is a DataReference, not a PipelineData.
        """
        if not isinstance(self._destination, PipelineData):
            raise ValueError("the destination of this step is a DataReference; only a PipelineData can be an output")
        return self._destination

    def _extra_wire(self, params: _wire.ParameterTable) -> dict[str, Any]:
        destination = None
        if isinstance(self._destination, DataReference):
            destination = m.DataReferenceTarget(
                datastore=self._destination.datastore_name, path_on_datastore=self._destination.path_on_datastore
            )
        return {
            "data_transfer": m.DataTransferSpec(
                source_reference_type=self._source_reference_type,  # type: ignore[arg-type]
                destination_reference_type=self._destination_reference_type,  # type: ignore[arg-type]
                destination=destination,
            )
        }
