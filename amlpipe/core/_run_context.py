"""The run a step's script gets from ``Run.get_context()``, and the offline run it gets elsewhere.

Inside a step the worker sets ``AMLPIPE_RUN_CONTEXT`` to ``<work>/.amlpipe/context.json``::

    {"schema": 1, "id": "<run>:<step>:<attempt>", "pipeline_run_id", "step", "attempt", "experiment",
     "journal": "<file>", "artifacts_dir": "<folder>", "inputs": {"<name>": {"type", "path",
     "dataset_name", "dataset_version", "tabular": null | {"files": [...], "options": {...}}}}}

What the script records (metrics, uploads, model registrations, tags) is appended to the journal,
one JSON line per call (format: :mod:`shared.run_history`); the worker reads it while the script
runs and commits uploads and registrations when the script exits 0. Nothing here talks to the
service: a step needs no credentials to log.

Outside a step ``Run.get_context()`` returns an offline run (``OfflineRun_<uuid>``) that prints
what is logged and keeps it for ``get_metrics()``, so the same script runs on a laptop.

    _run_context.py   get_context(), the context file, the step's run and its ``parent``
    _run_base.py      RunContext (the API both runs offer) and the ``log*`` calls
    _offline_run.py   the offline run
    _tabular_input.py a Tabular dataset input and its ``to_pandas_dataframe()``
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from amlpipe.core._offline_run import OfflineRun
from amlpipe.core._run_base import CONTEXT_ENV, Logging, PendingModel, RunContext, StepExperiment, now
from amlpipe.core._tabular_input import StepTabularDataset
from amlpipe.core.run import Run, RunEnvironmentException
from amlpipe.exceptions import UserErrorException
from shared.run_history import (
    ArtifactRecord,
    MetricRecord,
    ModelRegistration,
    Record,
    RecordError,
    TagsRecord,
    aggregate,
    artifact_name_problem,
    encode,
    parse_line,
)

__all__ = ["CONTEXT_ENV", "PendingModel", "RunContext", "get_context"]

CONTEXT_SCHEMA = 1
#: The folder of the script's working directory uploaded as artifacts ``outputs/...`` (azureml's).
OUTPUTS = "outputs"


@dataclass(frozen=True)
class StepContext:
    """The parsed ``context.json`` of one step execution."""

    id: str
    pipeline_run_id: str
    step: str
    attempt: int
    experiment: str
    journal: Path
    artifacts_dir: Path
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> StepContext:
        """Read the context file ``path``.

        Raises:
            RunEnvironmentException: it is missing, not JSON, or lacks a field (the message says which).
        """
        try:
            body = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunEnvironmentException(
                f"{CONTEXT_ENV} names {path!r}, which is not a readable run context: {exc}"
            ) from exc
        if not isinstance(body, dict) or body.get("schema") != CONTEXT_SCHEMA:
            raise RunEnvironmentException(f"The run context {path!r} is not schema {CONTEXT_SCHEMA}.")
        fields = {"id": str, "pipeline_run_id": str, "step": str, "attempt": int, "experiment": str, "journal": str,
                  "artifacts_dir": str}  # fmt: skip
        for name, kind in fields.items():
            if not isinstance(body.get(name), kind):
                raise RunEnvironmentException(f"The run context {path!r} lacks {name!r} ({kind.__name__}).")
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
            raise RunEnvironmentException(f"The run context {path!r} has malformed 'inputs'.")
        return cls(
            id=body["id"],
            pipeline_run_id=body["pipeline_run_id"],
            step=body["step"],
            attempt=body["attempt"],
            experiment=body["experiment"],
            journal=Path(body["journal"]),
            artifacts_dir=Path(body["artifacts_dir"]),
            inputs=inputs,
        )


_contexts: dict[str, RunContext] = {}
_contexts_lock = threading.Lock()


def get_context(allow_offline: bool = True) -> RunContext:
    """The run of the current step (``Run.get_context``); one object per process and context."""
    path = os.environ.get(CONTEXT_ENV)
    if not path and not allow_offline:
        raise RunEnvironmentException(
            "Run.get_context(allow_offline=False): this is not a step of a pipeline run "
            f"({CONTEXT_ENV} is not set). Run the script as a pipeline step, or allow an offline run."
        )
    with _contexts_lock:
        cached = _contexts.get(path or "")
        if cached is None:
            cached = _contexts[path or ""] = _SubmittedRun(StepContext.load(path)) if path else OfflineRun()
        return cached


class _SubmittedRun(RunContext):
    """The run of a step execution (azureml's ``_SubmittedRun``), driven by its context file."""

    def __init__(self, context: StepContext) -> None:
        super().__init__(StepExperiment(context.experiment, where="inside a step"), context.id)
        self._context = context
        # The script starts in the snapshot folder; ./outputs there is what the worker uploads.
        self._cwd = Path.cwd()
        self._lock = threading.Lock()
        self._parent = _ParentRun(self)

    # -- identity

    @property
    def parent(self) -> Run:
        """The pipeline run (``.id`` is the pipeline run id); ``parent.log(...)`` logs to the pipeline run."""
        return self._parent

    @property
    def name(self) -> str:
        """The step's name."""
        return self._context.step

    display_name = name

    @property
    def properties(self) -> dict[str, str]:
        return {"azureml.pipelinerunid": self._context.pipeline_run_id, "attempt": str(self._context.attempt)}

    @property
    def tags(self) -> dict[str, str]:
        """The tags set in this step so far (``tag``, ``set_tags``)."""
        found: dict[str, str] = {}
        for record in self._journal():
            if isinstance(record, TagsRecord):
                found.update(record.tags)
        return found

    def get_tags(self) -> dict[str, str]:
        return self.tags

    def get_status(self) -> str:
        """``Running``: the script runs (the step's final status comes from its exit code)."""
        return "Running"

    def get_details(self) -> dict[str, Any]:
        return {
            "runId": self.id,
            "target": None,
            "status": "Running",
            "properties": self.properties,
            "tags": self.tags,
            "inputDatasets": [{"name": n, "type": i.get("type")} for n, i in self._context.inputs.items()],
            "outputDatasets": [],
            "experimentName": self._context.experiment,
        }

    def _refresh(self) -> dict[str, Any]:
        raise UserErrorException(f"Step run {self.id} is not read from the service inside its step.")

    # -- inputs

    @property
    def input_datasets(self) -> dict[str, Any]:
        """Each named input: its local path (File, PipelineData, DataReference, DataPath) or, for a
        Tabular dataset, a ``TabularDataset`` whose ``to_pandas_dataframe()`` reads the downloaded files."""
        found: dict[str, Any] = {}
        for name, entry in self._context.inputs.items():
            if entry.get("type") == "Tabular":
                found[name] = StepTabularDataset(name, entry)
            else:
                found[name] = str(entry.get("path"))
        return found

    # -- recording

    def _record(self, record: Record) -> None:
        line = encode(record)
        with self._lock:
            try:
                fd = os.open(self._context.journal, os.O_WRONLY | os.O_APPEND)
            except OSError as exc:
                raise RunEnvironmentException(
                    f"The step's run journal {self._context.journal} cannot be opened: {exc}"
                ) from exc
            try:
                view = memoryview(line)
                while view:  # one write in practice: O_APPEND keeps a line whole between processes
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)

    def _journal(self) -> list[Record]:
        """Every valid record in the journal so far (this process's and any other's)."""
        try:
            data = self._context.journal.read_bytes()
        except OSError as exc:
            raise RunEnvironmentException(
                f"The step's run journal {self._context.journal} cannot be read: {exc}"
            ) from exc
        found: list[Record] = []
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is not complete yet
            try:
                found.append(parse_line(line))
            except RecordError:
                continue  # the worker warns about it; here it is just not a metric
        return found

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """What this step logged so far, in azureml's shapes (``{"acc": 0.9, "loss": [0.5, 0.4]}``).

        Read from the journal, so values any process of the step logged are included.
        """
        metrics = [
            (r.type, r.name, r.value)
            for r in self._journal()
            if isinstance(r, MetricRecord) and r.target == "run" and (name is None or r.name == name)
        ]
        found = aggregate(metrics)
        return {self.id: found} if recursive else found

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Log an image (a file, or a matplotlib ``plot``) under ``name``; it is kept as artifact ``images/<name>.png``.

        Raises:
            UserErrorException: neither or both of ``path`` and ``plot``, or an invalid name.
        """
        if (path is None) == (plot is None):
            raise UserErrorException("log_image needs exactly one of path= or plot=.")
        suffix = Path(path).suffix if path is not None else ".png"
        artifact = f"images/{name}{suffix or '.png'}"
        if path is not None:
            self.upload_file(artifact, os.fspath(path))
        else:
            buffer = io.BytesIO()
            plot.savefig(buffer, format="png")
            buffer.seek(0)
            self.upload_file(artifact, buffer)
        self._metric("image", name, artifact, description)

    def tag(self, key: str, value: str | None = None) -> None:
        """Tag the step run (``value`` None means a tag without a value: ``""``)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, str | None]) -> None:
        """Add or change several tags of the step run."""
        if not isinstance(tags, Mapping) or not all(isinstance(k, str) and k for k in tags):
            raise UserErrorException("Tags must be a dict of non-empty string keys.")
        self._record(TagsRecord({k: "" if v is None else str(v) for k, v in tags.items()}, now()))

    # -- artifacts

    def _artifact_target(self, name: str) -> Path:
        problem = artifact_name_problem(name)
        if problem:
            raise UserErrorException(problem)
        target = self._context.artifacts_dir / name
        if target.exists():
            raise UserErrorException(f"Resource Conflict: artifact {name!r} was already uploaded by this step run.")
        return target

    def upload_file(
        self, name: str, path_or_stream: str | os.PathLike[str] | IO[Any], datastore_name: str | None = None
    ) -> None:
        """Upload a file (a path, or a readable stream) as artifact ``name`` (e.g. ``outputs/plot.png``).

        The file is copied now and uploaded with the step's other artifacts when the script ends
        with exit code 0. Each name may be uploaded once.

        Raises:
            UserErrorException: an invalid or already used name, or a path that is not a file.
        """
        target = self._artifact_target(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(path_or_stream, str | os.PathLike):
            source = Path(path_or_stream)
            if not source.is_file():
                raise UserErrorException(f"upload_file({name!r}): {os.fspath(source)!r} is not a file.")
            shutil.copyfile(source, target)
        else:
            data = path_or_stream.read()
            target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        self._record(ArtifactRecord(name, now()))

    def upload_files(
        self,
        names: list[str],
        paths: list[str],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> None:
        """``upload_file`` for each ``(names[i], paths[i])``."""
        if len(names) != len(paths):
            raise UserErrorException("upload_files needs as many names as paths.")
        for name, path in zip(names, paths, strict=True):
            self.upload_file(name, path)

    def upload_folder(self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None) -> None:
        """Upload every regular file under folder ``path`` as ``<name>/<relative path>`` (symlinks are skipped)."""
        root = Path(path)
        if not root.is_dir():
            raise UserErrorException(f"upload_folder({name!r}): {os.fspath(root)!r} is not a folder.")
        prefix = name.strip("/")
        for top, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(top, d)))
            for file in sorted(files):
                local = Path(top) / file
                if local.is_file() and not local.is_symlink():
                    rel = local.relative_to(root).as_posix()
                    self.upload_file(f"{prefix}/{rel}" if prefix else rel, local)

    def get_file_names(self) -> list[str]:
        """The step's artifacts so far: uploaded files, and what ``./outputs`` holds now (``outputs/...``)."""
        names: set[str] = set()
        for folder, prefix in ((self._context.artifacts_dir, ""), (self._cwd / OUTPUTS, f"{OUTPUTS}/")):
            if folder.is_dir() and not folder.is_symlink():
                for top, dirs, files in os.walk(folder, followlinks=False):
                    dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
                    for file in files:
                        local = Path(top) / file
                        if local.is_file() and not local.is_symlink():
                            names.add(prefix + local.relative_to(folder).as_posix())
        return sorted(names)

    # -- models

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
        """Register the step's artifact ``model_path`` (a file or a folder, e.g. ``outputs/model.pkl``) as a model.

        The model is registered when the step finishes successfully, atomically with its outputs:
        after the script exits 0, from the uploaded artifacts, with this run's id recorded. A failed
        step registers nothing. So this returns a :class:`PendingModel` (no version yet), not a
        ``Model``. ``model_path`` defaults to ``model_name``, as in azureml.

        Raises:
            UserErrorException: an invalid name, tags or properties, an unsupported option, or a
                ``model_path`` that names no artifact of the step (upload it, or save it under
                ``./outputs``, first).
        """
        from shared.errors import BadRequestError
        from shared.registry.model_spec import ModelMetadata, check_metadata, name_problem

        given = [k for k, v in {"datasets": datasets, "sample_input_dataset": sample_input_dataset,
                                "sample_output_dataset": sample_output_dataset,
                                "resource_configuration": resource_configuration, **kwargs}.items() if v]  # fmt: skip
        if given:
            raise UserErrorException(f"register_model: {', '.join(given)} is not supported by amlpipe yet.")
        problem = name_problem(model_name)
        if problem:
            raise UserErrorException(problem)
        path = (model_path if model_path is not None else model_name).rstrip("/")
        for mapping, what in ((tags, "tags"), (properties, "properties")):
            if mapping is not None and (
                not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values())
            ):
                raise UserErrorException(f"register_model: {what} must be a dict of strings.")
        try:
            check_metadata(ModelMetadata(description, dict(tags or {}), dict(properties or {}), None,
                                         model_framework, model_framework_version))  # fmt: skip
        except BadRequestError as exc:
            raise UserErrorException(f"register_model: {exc.message}") from exc
        names = self.get_file_names()
        if path not in names and not any(n.startswith(path + "/") for n in names):
            shown = ", ".join(names[:20]) or "none yet"
            raise UserErrorException(
                f"Could not locate the provided model_path {path!r} in the set of files uploaded to the run: {shown}."
                " Save the model under ./outputs or upload it with run.upload_file first."
            )
        record = ModelRegistration(
            model_name, path, dict(tags or {}), dict(properties or {}), description, model_framework,
            model_framework_version, now(),
        )  # fmt: skip
        try:
            encode(record)
        except RecordError as exc:
            raise UserErrorException(f"register_model: {exc}") from exc
        self._record(record)
        return PendingModel(
            model_name, path, self.id, dict(tags or {}), dict(properties or {}), description, model_framework,
            model_framework_version,
        )  # fmt: skip

    # -- status

    def complete(self, _set_status: bool = True) -> None:
        """Does nothing: the step's status comes from the script's exit code (0 is Finished)."""

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Does not fail the step: the status comes from the exit code. Exit non-zero to fail it."""
        print(
            "amlpipe: Run.fail() does not change the step's status; exit with a non-zero code"
            " (e.g. raise SystemExit(1)) to fail the step.",
            file=sys.stderr,
        )

    def __repr__(self) -> str:
        return f"Run(Experiment: {self._context.experiment}, Id: {self.id}, Type: azureml.StepRun, Status: Running)"


class _ParentRun(Logging, Run):
    """``run.parent`` inside a step: the pipeline run. Its ``log*`` calls log to the pipeline run;
    reading it (status, metrics) calls the service, which needs a workspace (see ``_StepExperiment``)."""

    _target = "parent"

    def __init__(self, child: _SubmittedRun) -> None:
        super().__init__(child.experiment, child._context.pipeline_run_id)
        self._child = child

    def _record(self, record: Record) -> None:
        self._child._record(record)

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """The pipeline run's metrics, from the service (needs a workspace; see ``experiment.workspace``)."""
        from amlpipe.pipeline.core._run import PipelineRun

        return PipelineRun(self.experiment, self.id).get_metrics(name, recursive, run_type, populate)

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: str | None = None) -> None:
        raise UserErrorException("Upload artifacts to the step's own run (run.upload_file), not to run.parent.")

    def register_model(self, model_name: str, *args: Any, **kwargs: Any) -> None:
        raise UserErrorException("Register models from the step's own run (run.register_model), not from run.parent.")
