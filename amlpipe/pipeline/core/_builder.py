"""PipelineData and its input views (azureml.pipeline.core.builder)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amlpipe.data._names import check_port_name, name_of

if TYPE_CHECKING:
    from amlpipe.pipeline.core._step import PipelineStep

_OUTPUT_MODES = ("mount", "upload")
_INPUT_MODES = ("mount", "download")


class PipelineData:
    """Intermediate data: the output of one step and the input of others, which orders them.

    Args:
        name: the data's name: letters, digits and ``_``; unique in the pipeline.
        datastore: where it is written (a name or an object with ``.name``); the pipeline's or
            workspace's default datastore when None.
        output_name: the producer's output port name; defaults to ``name``.
        output_mode: ``"mount"`` (default; ``$AZUREML_DATAREFERENCE_<name>`` is a writable folder) or
            ``"upload"`` (the script writes ``output_path_on_compute``, uploaded when it ends).
        output_path_on_compute: where the script writes in upload mode.
        output_overwrite: whether an upload replaces existing data.
        data_type: accepted for compatibility; ``is_directory`` decides the shape.
        is_directory: whether the data is a folder (default False).
        pipeline_output_name: exposes the data as ``PipelineRun.get_pipeline_output(name)``; unique
            across the pipeline.
        training_output: accepted for compatibility; unused.

    Raises:
        ValueError: a name breaks the character rule or ``output_mode`` is not mount/upload.
    """

    def __init__(
        self,
        name: str,
        datastore: Any = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: str | None = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output: Any = None,
    ) -> None:
        self._name = check_port_name(name, "PipelineData name")
        if output_name is not None:
            check_port_name(output_name, "output_name")
        if pipeline_output_name is not None:
            check_port_name(pipeline_output_name, "pipeline_output_name")
        if output_mode not in _OUTPUT_MODES:
            raise ValueError(f"Invalid output mode [{output_mode}]. Valid modes are {list(_OUTPUT_MODES)}")
        self._datastore = datastore
        self._output_name = output_name or name
        self._output_mode = output_mode
        self._output_path_on_compute = output_path_on_compute
        self._output_overwrite = output_overwrite
        self._data_type = data_type
        self._is_directory = bool(is_directory)
        self._pipeline_output_name = pipeline_output_name
        self._training_output = training_output
        self._producer: PipelineStep | None = None

    @property
    def name(self) -> str:
        """The data's name."""
        return self._name

    @property
    def datastore(self) -> Any:
        """The datastore as given (None: the default datastore)."""
        return self._datastore

    @property
    def datastore_name(self) -> str | None:
        """The datastore's name, or None for the default."""
        return None if self._datastore is None else name_of(self._datastore, "datastore")

    @property
    def output_name(self) -> str:
        """The producer's output port name."""
        return self._output_name

    @property
    def output_mode(self) -> str:
        """``"mount"`` or ``"upload"``."""
        return self._output_mode

    @property
    def output_path_on_compute(self) -> str | None:
        """Where the script writes in upload mode."""
        return self._output_path_on_compute

    @property
    def output_overwrite(self) -> bool | None:
        """Whether an upload replaces existing data."""
        return self._output_overwrite

    @property
    def is_directory(self) -> bool:
        """Whether the data is a folder."""
        return self._is_directory

    @property
    def pipeline_output_name(self) -> str | None:
        """The pipeline-level output name, if exposed."""
        return self._pipeline_output_name

    def as_input(self, input_name: str) -> InputPortBinding:
        """This data as a consumer input named ``input_name`` (mounted)."""
        return InputPortBinding(input_name, self)

    def as_mount(self, input_name: str | None = None) -> InputPortBinding:
        """This data as a mounted input (named ``input_name``, default the data's name)."""
        return InputPortBinding(input_name or self._name, self, mode="mount")

    def as_download(
        self, input_name: str | None = None, path_on_compute: str | None = None, overwrite: bool | None = None
    ) -> InputPortBinding:
        """This data as an input downloaded before the consumer starts."""
        return InputPortBinding(
            input_name or self._name, self, mode="download", path_on_compute=path_on_compute, overwrite=overwrite
        )

    def get_env_variable_name(self) -> str:
        """``AZUREML_DATAREFERENCE_<name>``: the variable holding the data's path in a step."""
        return f"AZUREML_DATAREFERENCE_{self._name}"

    def __str__(self) -> str:
        return "$" + self.get_env_variable_name()

    def __repr__(self) -> str:
        return f"PipelineData(name={self._name!r}, datastore={self.datastore_name!r}, mode={self._output_mode!r})"


class InputPortBinding:
    """A PipelineData consumed by a step under an input name, mounted or downloaded.

    Args:
        name: the input name: letters, digits and ``_``.
        bind_object: the PipelineData read.
        mode: ``"mount"`` (default) or ``"download"``.
        path_on_compute: where downloaded data appears.
        overwrite: whether a download may overwrite existing files.
    """

    def __init__(
        self,
        name: str,
        bind_object: PipelineData,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> None:
        self.name = check_port_name(name, "input name")
        if not isinstance(bind_object, PipelineData):
            raise ValueError(f"bind_object must be a PipelineData, got {type(bind_object).__name__}")
        if mode not in _INPUT_MODES:
            raise ValueError(f"Invalid input mode [{mode}]. Valid modes are {list(_INPUT_MODES)}")
        self.bind_object = bind_object
        self.bind_mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"

    def __repr__(self) -> str:
        return f"InputPortBinding(name={self.name!r}, data={self.bind_object.name!r}, mode={self.bind_mode!r})"
