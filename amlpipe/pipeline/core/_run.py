"""``PipelineRun`` and ``StepRun`` (azureml.pipeline.core.run)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlpipe._client import api_path
from amlpipe.core.experiment import Experiment
from amlpipe.core.run import ActivityFailedException, ExperimentExecutionException, Run, status_of
from amlpipe.exceptions import ServiceException, UserErrorException

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core._published import PublishedPipeline

RUNNING_STATES = ("NotStarted", "Running", "Queued", "Unknown")
_STEP_STATUS_CODES = (
    "NotStarted",
    "Queued",
    "Running",
    "Failed",
    "Finished",
    "Canceled",
    "PartiallyExecuted",
    "Bypassed",
)
_KWARGS = ("enable_email_notification",)


class PipelineRun(Run):
    """A run of a pipeline.

    Args:
        experiment: the experiment the run belongs to.
        run_id: the run's id.
    """

    def __init__(self, experiment: Experiment, run_id: str, **kwargs: Any) -> None:
        super().__init__(experiment, run_id, **kwargs)

    @staticmethod
    def get(workspace: Workspace, run_id: str, _service_endpoint: str | None = None) -> PipelineRun:
        """The run ``run_id`` (its experiment is looked up for you)."""
        entity: dict[str, Any] = workspace._client.get(api_path("PipelineRuns", run_id))
        return PipelineRun(Experiment(workspace, entity["RunHistoryExperimentName"]), run_id, _entity=entity)

    @staticmethod
    def get_pipeline_runs(
        workspace: Workspace, pipeline_id: str, _service_endpoint: str | None = None, *, top: int | None = None
    ) -> list[PipelineRun]:
        """The runs of published pipeline ``pipeline_id``, newest first: the newest ``top`` (1-1000; an
        amlpipe extension), else the newest 100."""
        params: dict[str, Any] = {"pipelineId": pipeline_id}
        if top is not None:
            params["top"] = top
        found = workspace._client.get("PipelineRuns", params=params)["value"]
        return [PipelineRun(Experiment(workspace, e["RunHistoryExperimentName"]), e["Id"], _entity=e) for e in found]

    def wait_for_completion(
        self, show_output: bool = True, timeout_seconds: float = sys.maxsize, raise_on_error: bool = True
    ) -> str:
        """Poll every second until the run leaves NotStarted/Running; return its final status.

        When ``timeout_seconds`` pass first it says so and returns the current status (no exception).

        Raises:
            ActivityFailedException: the run failed and ``raise_on_error`` is set.
            ExperimentExecutionException: interrupted (Ctrl-C); the run keeps executing.
        """
        start = time.monotonic()
        if show_output:
            print(f"PipelineRunId: {self.id}")
            print(f"Link to the run: {self._experiment.workspace.endpoint}/api/PipelineRuns/{self.id}")
        try:
            status = self.get_status()
            last = None
            while status in RUNNING_STATES:
                if show_output and status != last:
                    print(f"PipelineRun Status: {status}")
                    last = status
                if time.monotonic() - start >= timeout_seconds:
                    if show_output:
                        print(f"Timed out after {timeout_seconds} seconds; the run is still {status}.")
                    return status
                time.sleep(1)
                status = self.get_status()
        except KeyboardInterrupt as exc:
            raise ExperimentExecutionException(
                "The output streaming for the run interrupted.\nBut the run is still executing on the compute target."
            ) from exc
        if show_output:
            print(f"PipelineRun Execution Summary\n==============================\nPipelineRun Status: {status}")
        details = self._details()
        if raise_on_error and status == "Failed":
            detail = (details.get("Status") or {}).get("StatusDetail") or "the pipeline run failed"
            raise ActivityFailedException(f"Activity Failed:\n{detail}")
        return status

    def get_steps(self) -> list[StepRun]:
        """The step runs that have started or finished (``get_children``)."""
        return [s for s in self._all_steps() if s.get_status() != "NotStarted"]

    get_children = get_steps

    def find_step_run(self, name: str) -> list[StepRun]:
        """The step runs (started or finished) named exactly ``name``."""
        return [s for s in self.get_steps() if s.name == name]

    def cancel(self) -> None:
        """Cancel the run (NotStarted runs end Canceled; running steps are stopped by the service)."""
        self._entity = self._experiment.workspace._client.post(api_path("PipelineRuns", self.id, "cancel"))

    def publish_pipeline(
        self, name: str, description: str, version: str, continue_on_step_failure: bool | None = None, **kwargs: Any
    ) -> PublishedPipeline:
        """Publish the graph this run used.

        Raises:
            ValueError: an unknown keyword argument.
        """
        from amlpipe.pipeline.core._published import PublishedPipeline

        for key in kwargs:
            if key not in _KWARGS:
                raise ValueError(f"parameter {key} is not recognized for PipelineRun.publish_pipeline ")
        body: dict[str, Any] = {
            "Name": name,
            "Description": description,
            "Version": version,
            "GraphId": self._details()["GraphId"],
        }
        if continue_on_step_failure is not None:
            body["ContinueRunOnStepFailure"] = bool(continue_on_step_failure)
        workspace = self._experiment.workspace
        return PublishedPipeline._from_entity(workspace, workspace._client.post("pipelines", body))

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """The pipeline run's metrics in azureml's shapes (``{"acc": 0.9, "loss": [0.5, 0.4]}``).

        The pipeline run's own metrics are what its steps logged with ``run.parent.log(...)``.
        With ``recursive`` the answer is ``{run id: metrics}`` for this run and each step run that
        has started (step run ids are ``<pipeline run id>:<step>:<attempt>``; a step reports its
        current attempt's metrics).

        Args:
            name: only this metric.
        """
        body = _metrics_call(self._experiment.workspace._client, api_path("PipelineRuns", self.id, "metrics"))
        own = _only(body["metrics"], name)
        if not recursive:
            return own
        found = {self.id: own}
        for step in body["steps"]:
            found[step["runId"]] = _only(step["metrics"], name)
        return found

    def _all_steps(self) -> list[StepRun]:
        entity = self._refresh()
        return [StepRun(self, s) for s in entity.get("StepRuns") or []]

    def __repr__(self) -> str:
        return f"Run(Experiment: {self._experiment.name},\nId: {self.id},\nType: azureml.PipelineRun)"


class StepRun:
    """One step of a pipeline run: its status and whether it was reused (and from which run).

    Reuse, as azureml shows it: ``is_reused``, ``reused_run_id`` (the reused execution,
    ``<pipeline run id>:<step>:<attempt>``) and ``reused_pipeline_run_id``; also in
    ``get_details()["properties"]`` as ``azureml.isreused``, ``azureml.reusedrunid``,
    ``azureml.reusednodeid`` and ``azureml.reusedpipelinerunid``. Beyond azureml, ``reuse_reason``
    (and ``get_details()["reuse"]``) says why the step was reused or, when it ran, why not — which
    part of its fingerprint changed since its last successful run.
    """

    def __init__(self, pipeline_run: PipelineRun, entity: dict[str, Any]) -> None:
        self._pipeline_run = pipeline_run
        self._entity = entity
        self._is_reused = bool(entity.get("IsReused"))
        self._reused_run_id: str | None = entity.get("ReusedRunId")
        self._reused_pipeline_run_id: str | None = entity.get("ReusedPipelineRunId")
        self._reused_node_id: str | None = entity.get("Name") if self._is_reused else None

    @property
    def name(self) -> str:
        return str(self._entity["Name"])

    @property
    def id(self) -> str | None:
        """The step's current execution, ``<pipeline run id>:<step>:<attempt>`` (None before it is queued).

        Its metrics, artifacts and the models its script registered name this id (``Model.list(run_id=)``).
        For a reused step, the reused execution is ``reused_run_id``.
        """
        value = self._entity.get("RunId")
        return str(value) if value else None

    @property
    def pipeline_run_id(self) -> str:
        return self._pipeline_run.id

    @property
    def attempt(self) -> int:
        """The step's current attempt: 1 for its first execution, more after retries; 0 before it is queued."""
        return int(self._entity.get("Attempt") or 0)

    @property
    def status_detail(self) -> str | None:
        """Why the step is in its status (e.g. why it failed), when the service says."""
        detail = (self._entity.get("Status") or {}).get("StatusDetail")
        return str(detail) if detail else None

    @property
    def is_reused(self) -> bool:
        """Whether the step reused an earlier run's outputs."""
        return self._is_reused

    @property
    def reused_run_id(self) -> str | None:
        return self._reused_run_id

    @property
    def reused_pipeline_run_id(self) -> str | None:
        return self._reused_pipeline_run_id

    @property
    def reuse_reason(self) -> str | None:
        """Why the step was reused, or why not (e.g. "Not reused: the arguments changed since run …")."""
        reason = self._entity.get("ReuseReason")
        return str(reason) if reason is not None else None

    def get_details(self) -> dict[str, Any]:
        """The step run's details: ``runId``, ``status``, times, reuse ``properties`` and ``reuse``.

        ``reuse`` holds ``isReused``, ``reusedRunId``, ``reusedPipelineRunId``, ``reason`` and
        ``fingerprint`` (the reuse key) with ``fingerprintParts`` (a digest per part: step,
        snapshot, script, arguments, params, compute_target, runconfig, io, input:<name>).
        """
        status = self._entity.get("Status") or {}
        properties = {"azureml.isreused": "true" if self._is_reused else "false"}
        if self._is_reused:
            properties["azureml.reusedrunid"] = self._reused_run_id or ""
            properties["azureml.reusednodeid"] = self._reused_node_id or ""
            properties["azureml.reusedpipelinerunid"] = self._reused_pipeline_run_id or ""
        return {
            "runId": self.id,
            "status": self.get_status(),
            "startTimeUtc": status.get("StartTime"),
            "endTimeUtc": status.get("EndTime"),
            "properties": properties,
            "reuse": {
                "isReused": self._is_reused,
                "reusedRunId": self._reused_run_id,
                "reusedPipelineRunId": self._reused_pipeline_run_id,
                "reason": self.reuse_reason,
                "fingerprint": self._entity.get("ReuseFingerprint"),
                "fingerprintParts": dict(self._entity.get("ReuseFingerprintParts") or {}),
            },
        }

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """What the step's script logged, in azureml's shapes: a value logged once is the value,
        logged more often (or with ``log_list``) a list; rows and tables are column → values.

        The step's current attempt is reported (the execution running now, or the one that ended
        the step). With ``recursive``: ``{step run id: metrics}``.
        """
        body = _metrics_call(self._client(), self._path("metrics"))
        found = _only(body["metrics"], name)
        return {body["runId"]: found} if recursive and body.get("runId") else found

    def get_file_names(self) -> list[str]:
        """The names of the step's artifacts (``outputs/model.pkl``, ...), of its current attempt."""
        return [a["name"] for a in self._artifacts()["value"]]

    def download_file(
        self, name: str, output_file_path: str | os.PathLike[str] | None = None, _validate_checksum: bool = False
    ) -> None:
        """Download artifact ``name`` to ``output_file_path`` (a file, or a folder to put it in;
        default: the artifact's file name in the current folder).

        Raises:
            UserErrorException: the step has no artifact ``name``.
        """
        target = Path(output_file_path) if output_file_path is not None else Path(name.rsplit("/", 1)[-1])
        if target.is_dir():
            target = target / name.rsplit("/", 1)[-1]
        (grant,) = self._grant([name])
        _download(grant["url"], target)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike[str] | None = None,
        output_paths: list[str] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        timeout_seconds: int | None = None,
    ) -> None:
        """Download the artifacts under ``prefix`` (all by default) into ``output_directory`` (default:
        the current folder), keeping their relative paths (without ``prefix`` unless ``append_prefix``).

        Raises:
            UserErrorException: an artifact name would land outside ``output_directory``.
        """
        from amlpipe.data._transfer import local_destination

        clean = (prefix or "").strip("/")
        names = [n for n in self.get_file_names() if not clean or n == clean or n.startswith(clean + "/")]
        root = Path(output_directory or ".")
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        size = max(1, min(batch_size, 1000))  # names per SAS request (the service takes up to 1000)
        for start in range(0, len(names), size):
            for grant in self._grant(names[start : start + size]):
                rel = grant["name"] if append_prefix or not clean else grant["name"][len(clean) :].lstrip("/")
                _download(grant["url"], local_destination(root, rel or grant["name"].rsplit("/", 1)[-1]))

    def get_job_log(self) -> str:
        """The step's log: what its current attempt printed, stdout and stderr interleaved as written.

        A reused step's log is that of the execution it reused. Empty before the step runs.
        """
        return self._whole_log()

    def get_stdout_log(self) -> str:
        """The step's log (stdout and stderr go to one log here; see ``get_job_log``)."""
        return self._whole_log()

    def read_log(self, offset: int = 0, *, attempt: int | None = None) -> StepLogChunk:
        """A chunk of the step's log from byte ``offset`` on (at most 1 MiB); an amlpipe extension.

        Read again from ``chunk.next_offset`` to follow a log while the step writes it: a chunk never
        ends inside a character.

        Args:
            offset: the byte to read from.
            attempt: an earlier attempt's log (default: the current attempt's).

        Raises:
            UserErrorException: the run, step or attempt does not exist, or ``offset`` is negative.
        """
        if offset < 0:
            raise UserErrorException(f"offset must be 0 or more, not {offset}.")
        params: dict[str, str] = {"offset": str(offset)}
        if attempt is not None:
            params["attempt"] = str(attempt)
        try:
            body: dict[str, Any] = self._client().get(self._path("logs"), params=params)
        except ServiceException as exc:
            if exc.status_code in (400, 404):
                raise UserErrorException(exc.message) from exc
            raise
        return StepLogChunk(
            text=str(body["content"]),
            offset=int(body["offset"]),
            next_offset=int(body["nextOffset"]),
            size=int(body["size"]),
            attempt=body.get("attempt"),
            run_id=body.get("runId"),
        )

    def _whole_log(self) -> str:
        parts: list[str] = []
        chunk = self.read_log(0)
        parts.append(chunk.text)
        # Later chunks come from the same execution: pinned by its attempt when it is this run's own;
        # a reused step's execution belongs to another run, whose attempt means nothing here.
        own = chunk.run_id is not None and chunk.run_id.startswith(f"{self._pipeline_run.id}:")
        while chunk.next_offset < chunk.size and chunk.next_offset > chunk.offset:
            chunk = self.read_log(chunk.next_offset, attempt=chunk.attempt if own else None)
            parts.append(chunk.text)
        return "".join(parts)

    def _client(self) -> Any:
        return self._pipeline_run.experiment.workspace._client

    def _path(self, *tail: str) -> str:
        return api_path("PipelineRuns", self._pipeline_run.id, "steps", self.name, *tail)

    def _artifacts(self) -> dict[str, Any]:
        body: dict[str, Any] = self._client().get(self._path("artifacts"))
        return body

    def _grant(self, names: list[str]) -> list[dict[str, Any]]:
        try:
            body = self._client().post(self._path("artifacts", "sas"), {"names": names})
        except ServiceException as exc:
            if exc.status_code in (400, 404):
                raise UserErrorException(exc.message) from exc
            raise
        return list(body["value"])

    def get_status(self) -> str:
        """The step's status (step codes map 0..7 to NotStarted..Bypassed)."""
        code = (self._entity.get("Status") or {}).get("StatusCode")
        if isinstance(code, int):
            return _STEP_STATUS_CODES[code] if 0 <= code < len(_STEP_STATUS_CODES) else str(code)
        return str(code or "NotStarted")

    def __repr__(self) -> str:
        return f"StepRun({self.name!r}, status={self.get_status()!r}, reused={self._is_reused})"


@dataclass(frozen=True)
class StepLogChunk:
    """Part of a step's log (``StepRun.read_log``).

    Attributes:
        text: the bytes ``offset`` to ``next_offset`` as text.
        offset: where the chunk starts, in bytes.
        next_offset: where to read from next.
        size: the log's size when it was read (it grows while the step runs).
        attempt: the execution whose log this is (None: the step has not run).
        run_id: that execution's id, ``<pipeline run id>:<step>:<attempt>``.
    """

    text: str
    offset: int
    next_offset: int
    size: int
    attempt: int | None
    run_id: str | None


def _metrics_call(client: Any, path: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = client.get(path)
    except ServiceException as exc:
        if exc.status_code in (400, 404):
            raise UserErrorException(exc.message) from exc
        raise
    return body


def _only(metrics: dict[str, Any], name: str | None) -> dict[str, Any]:
    return dict(metrics) if name is None else {k: v for k, v in metrics.items() if k == name}


def _download(url: str, target: Path) -> None:
    """Download a SAS URL to ``target``, atomically (a reader never sees half a file)."""
    from azure.storage.blob import BlobClient

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".amlpipe-partial")
    with BlobClient.from_blob_url(url) as blob, open(partial, "wb") as out:
        blob.download_blob().readinto(out)
    os.replace(partial, target)


__all__ = ["PipelineRun", "StepLogChunk", "StepRun", "status_of"]
