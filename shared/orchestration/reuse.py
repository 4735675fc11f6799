"""Step reuse: the index of reusable executions, and the reuse decision for a step about to be queued.

The orchestrator (``runner.py``) asks :meth:`Reuser.decide` before it queues a ready step. When the
step allows reuse, the run does not regenerate outputs, and an earlier successful execution has the
same fingerprint (:mod:`shared.orchestration.fingerprint`) with its outputs still intact, the runner
records the step Finished and reused — NotStarted → Finished, one ETag-guarded write, no message, no
compute — writes a redirect marker for each output (:mod:`shared.orchestration.files`), and decides
again in the same pass, so a chain of reusable steps resolves within one run message. Otherwise the
step is queued, with the reason it was not reused and its fingerprint on its row; when that
execution is recorded Finished, the runner adds it to the index (:meth:`Reuser.record`).

Table ``amlpipereuse`` (plus ``AMLPIPE_TABLE_PREFIX``):

    PartitionKey  <fingerprint key, 64 hex>     one row per successful execution with that key:
    RowKey        <inverted end time>_<run id>    RunId, StepName, Attempt, EndTime, ExperimentName
    PartitionKey  lineage:<step name>           the last indexed execution of a step, per experiment:
    RowKey        <experiment name>               RunId, Attempt, Key, Parts (JSON), EndTime

Index rows are created, never replaced (a duplicate report creates nothing new); lineage rows are
replaced ETag-guarded and only by a later execution. Candidates are tried newest first; one whose
outputs are gone or were modified, or are not on the datastore the step's PipelineData names now
(outputs were written to the default datastore before they could live elsewhere), is removed from
the index. An output on a registered datastore is checked there (its files' ETags). Only Finished
executions are indexed: a Failed or Canceled one never is, a reused step is not (the execution it
reused already is).

Inputs count by content. A PipelineData input's identity is its completion marker's (files and
their sha256). A dataset, data reference or datapath input's identity comes from an
:class:`InputIdentity`: :class:`DatastoreInputIdentity` hashes the input's listing (every blob
with its ETag, :mod:`shared.orchestration.inputs`). When an input's content cannot be identified
the step is never reused, and says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError
from shared.graph.model import (
    DataPathParameterInput,
    DataReferenceInput,
    DatasetInput,
    PipelineDataInput,
    PipelineGraph,
    Step,
)
from shared.orchestration.files import OutputMarker, OutputUncheckable, PipelineDataStore, output_datastore
from shared.orchestration.fingerprint import Fingerprint, explain_miss, fingerprint, parameter_values
from shared.orchestration.inputs import DataAccess, datapath_values, list_input
from shared.orchestration.state import execution_key
from shared.pipelines._storage import LazyTable, as_datetime, inverted_key, key, utcnow
from shared.pipelines.runs import PipelineRun, StepRun, StepStatus
from shared.redaction import redact, redacted_traceback
from shared.registry import WorkspaceRegistry
from shared.storage import StorageClients, replace_if_unchanged

__all__ = [
    "TABLE",
    "Candidate",
    "DatastoreInput",
    "DatastoreInputIdentity",
    "InputIdentity",
    "Lineage",
    "ReuseDecision",
    "ReuseIndex",
    "Reuser",
    "unknown_input_identity",
]

log = logging.getLogger("amlpipe.reuse")

TABLE = "amlpipereuse"
LINEAGE_PREFIX = "lineage:"
#: Candidates tried per lookup, newest first.
MAX_CANDIDATES = 5

DatastoreInput = DatasetInput | DataReferenceInput | DataPathParameterInput


class InputIdentity(Protocol):
    """The content identity of a dataset, data reference or datapath input in a run.

    Returns a string that changes whenever the data the step would read changes — e.g. the sha256
    of the sorted ``(blob name, ETag or Content-MD5)`` pairs of every blob the input resolves to in
    ``run`` (datapath assignments are on ``run.data_paths``) — or None when it cannot tell (the
    step is then not reused). It may do I/O; it must not raise for a missing path (return an
    identity of "nothing there" instead) and may raise ``AzureError`` for a storage failure.
    """

    def __call__(self, run: PipelineRun, graph: PipelineGraph, step: Step, item: DatastoreInput) -> str | None: ...


def unknown_input_identity(run: PipelineRun, graph: PipelineGraph, step: Step, item: DatastoreInput) -> str | None:
    """An :class:`InputIdentity` that knows nothing: a step with such an input is never reused."""
    return None


class DatastoreInputIdentity:
    """The :class:`InputIdentity` of dataset, data reference and datapath inputs, from what they list.

    The identity is the sha256 of the input's listing (:func:`shared.orchestration.inputs.list_input`,
    the same listing the worker downloads from): every blob's datastore, container, name, ETag,
    size and local path, plus the input's type, dataset version and tabular options. A blob written
    again gets a new ETag, so changed data is never reused (the same bytes written again are not
    reused either: the ETag cannot tell). An input that cannot be listed as defined, or a storage
    failure, gives None: the step is not reused, and runs (and fails, if the input is wrong).

    Args:
        blobs: the app's blob service (the default datastore).
        registry: datasets and datastores (default: ``default_registry()``, opened on first use).
    """

    def __init__(self, blobs: BlobServiceClient, registry: WorkspaceRegistry | None = None) -> None:
        self._blobs = blobs
        self._registry = registry

    def __call__(self, run: PipelineRun, graph: PipelineGraph, step: Step, item: DatastoreInput) -> str | None:
        if self._registry is None:
            from shared.registry import default_registry

            self._registry = default_registry()
        try:
            with DataAccess(self._registry, self._blobs) as access:
                listing = list_input(
                    item, access=access, run_id=run.id, datapaths=datapath_values(graph, run.data_paths)
                )
        except (AmlPipeError, AzureError) as exc:
            # Redacted: a storage error may quote the URL it failed on, with its SAS.
            log.info(
                "Input %r of step %r of run %s cannot be identified: %s", item.name, step.name, run.id, redact(str(exc))
            )
            return None
        except Exception as exc:  # noqa: BLE001 - an identity we cannot take only means "not reused"; the
            # worker then meets the same input and fails the step with a reason, never the orchestrator.
            log.error(
                "Input %r of step %r of run %s cannot be identified.\n%s",
                item.name,
                step.name,
                run.id,
                redacted_traceback(exc),
            )
            return None

        return listing.identity()


@dataclass(frozen=True)
class Candidate:
    """An indexed successful execution: ``step`` of ``run_id`` at ``attempt``."""

    key: str
    row_key: str
    run_id: str
    step: str
    attempt: int
    end_time: datetime | None = None

    @property
    def execution(self) -> str:
        """``<run id>:<step>:<attempt>``: the reused step run's id."""
        return execution_key(self.run_id, self.step, self.attempt)


@dataclass(frozen=True)
class Lineage:
    """The last indexed execution of a step (per experiment): what a miss is explained against."""

    run_id: str
    attempt: int
    key: str
    parts: Mapping[str, str]
    end_time: datetime | None


class ReuseIndex:
    """The ``amlpipereuse`` table (see the module docstring)."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)

    def candidates(self, fingerprint_key: str, *, top: int = MAX_CANDIDATES) -> list[Candidate]:
        """The newest ``top`` indexed executions with ``fingerprint_key``."""
        rows = self._table.client().query_entities(
            "PartitionKey eq @pk", parameters={"pk": fingerprint_key}, results_per_page=top
        )
        return [
            Candidate(
                key=fingerprint_key,
                row_key=str(e["RowKey"]),
                run_id=str(e["RunId"]),
                step=str(e["StepName"]),
                attempt=int(e.get("Attempt") or 0),
                end_time=as_datetime(e.get("EndTime")),
            )
            for e in islice(rows, top)
        ]

    def add(self, candidate: Candidate, *, experiment: str) -> None:
        """Index ``candidate`` (created once; a repeat is a no-op)."""
        try:
            self._table.client().create_entity(
                {
                    "PartitionKey": candidate.key,
                    "RowKey": candidate.row_key,
                    "RunId": candidate.run_id,
                    "StepName": candidate.step,
                    "Attempt": candidate.attempt,
                    "EndTime": candidate.end_time,
                    "ExperimentName": experiment,
                }
            )
        except ResourceExistsError:
            pass

    def discard(self, candidate: Candidate) -> None:
        """Remove ``candidate`` from the index (idempotent)."""
        try:
            self._table.client().delete_entity(candidate.key, candidate.row_key)
        except ResourceNotFoundError:
            pass

    def lineage(self, step: str, experiment: str) -> Lineage | None:
        """The last indexed execution of ``step`` in ``experiment``, else in any experiment."""
        table = self._table.client()
        partition = LINEAGE_PREFIX + key(step)
        try:
            return _lineage_from(table.get_entity(partition, key(experiment)))
        except ResourceNotFoundError:
            pass
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, results_per_page=100)
        found = [_lineage_from(e) for e in islice(rows, 100)]
        dated = [f for f in found if f is not None]
        return max(dated, key=lambda f: f.end_time or datetime.min.replace(tzinfo=UTC), default=None)

    def record_lineage(self, step: str, experiment: str, lineage: Lineage) -> None:
        """Make ``lineage`` the last execution of ``step`` in ``experiment`` unless a later one is."""
        table = self._table.client()
        entity: dict[str, Any] = {
            "PartitionKey": LINEAGE_PREFIX + key(step),
            "RowKey": key(experiment),
            "RunId": lineage.run_id,
            "Attempt": lineage.attempt,
            "Key": lineage.key,
            "Parts": json.dumps(dict(lineage.parts), sort_keys=True),
            "EndTime": lineage.end_time,
        }
        for _ in range(5):
            try:
                current = table.get_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError:
                try:
                    table.create_entity(entity)
                    return
                except ResourceExistsError:
                    continue
            known = as_datetime(current.get("EndTime"))
            if known is not None and lineage.end_time is not None and known >= lineage.end_time:
                return  # a later (or this) execution is recorded already
            if replace_if_unchanged(table, entity, str(current.metadata.get("etag"))) is not None:
                return
        log.info("Lineage of step %r in %r kept changing; left as it is.", step, experiment)


def _same_datastore(first: str | None, second: str | None) -> bool:
    """Whether two datastore names (None: the default) name one datastore (names are case-insensitive)."""
    return (first or "").lower() == (second or "").lower()


def _storage_fault(exc: Exception) -> bool:
    """Whether ``exc`` is a storage fault (Azure's, or botocore's for an S3 datastore): retryable."""
    from botocore.exceptions import BotoCoreError, ClientError  # imported when needed: cold starts

    return isinstance(exc, AzureError | BotoCoreError | ClientError)


def _lineage_from(e: Any) -> Lineage | None:
    try:
        parts = json.loads(e.get("Parts") or "")
    except ValueError:
        return None
    if not isinstance(parts, dict):
        return None
    return Lineage(
        run_id=str(e["RunId"]),
        attempt=int(e.get("Attempt") or 0),
        key=str(e.get("Key") or ""),
        parts={str(k): str(v) for k, v in parts.items()},
        end_time=as_datetime(e.get("EndTime")),
    )


@dataclass(frozen=True)
class ReuseDecision:
    """What :meth:`Reuser.decide` found for a step about to be queued.

    Attributes:
        reason: a sentence for the step row: why it is reused, or why not.
        fingerprint: the step's fingerprint; None when it has none (allow_reuse=False, or an
            input of unknown content): such an execution is never indexed.
        reused: the execution to reuse; None to queue the step.
        sources: for a reuse, each output's name → the reused execution's completion marker.
    """

    reason: str
    fingerprint: Fingerprint | None = None
    reused: Candidate | None = None
    sources: Mapping[str, OutputMarker] = field(default_factory=dict)


class Reuser:
    """The orchestrator's reuse I/O: decide, redirect outputs, repair redirects, index executions.

    Args:
        index: the reuse index.
        data: the PipelineData store (markers, redirects).
        input_identity: the identity of dataset / data reference / datapath inputs (default: none
            known, so steps with such inputs are never reused).
    """

    def __init__(
        self, index: ReuseIndex, data: PipelineDataStore, *, input_identity: InputIdentity = unknown_input_identity
    ) -> None:
        self._index = index
        self._data = data
        self._input_identity = input_identity

    @classmethod
    def of(
        cls,
        clients: StorageClients,
        *,
        input_identity: InputIdentity | None = None,
        registry: WorkspaceRegistry | None = None,
    ) -> Reuser:
        """A reuser on ``clients``' tables and blobs; inputs identified by :class:`DatastoreInputIdentity`
        (on ``registry``, default the app's) unless ``input_identity`` is given; outputs on registered
        datastores checked through ``registry``'s datastores (default the app's)."""
        identity = input_identity or DatastoreInputIdentity(clients.blobs, registry)
        datastores = None if registry is None else (lambda: registry.datastores)
        data = PipelineDataStore(clients.blobs, datastores=datastores)
        return cls(ReuseIndex(clients.tables), data, input_identity=identity)

    def decide(self, run: PipelineRun, graph: PipelineGraph, step: Step, rows: Mapping[str, StepRun]) -> ReuseDecision:
        """Whether ``step`` of ``run`` (ready: its upstream steps Finished) can reuse an earlier execution.

        Also makes sure the outputs of reused upstream steps carry their redirect markers (see
        :meth:`repair`), which the step's worker needs whether or not this step is reused.

        Raises:
            AzureError: storage failed while reading the step's inputs (the message is retried).
        """
        markers = self._upstream_markers(run.id, graph, step, rows)
        if not step.allow_reuse:
            return ReuseDecision("Not reused: the step has allow_reuse=False.")
        identities: dict[str, str] = {}
        for item in step.inputs:
            if isinstance(item, PipelineDataInput):
                marker = markers.get(item.pipeline_data)
                identity = marker.identity if marker is not None else None
                what = f"PipelineData {item.pipeline_data!r}"
            else:
                identity = self._input_identity(run, graph, step, item)
                what = {"dataset": "a dataset", "data_reference": "a data reference"}.get(item.source, "a datapath")
            if identity is None:
                return ReuseDecision(
                    f"Not reused: the content of input {item.name!r} ({what}) cannot be identified, and a step "
                    "is never reused on unknown content."
                )
            identities[item.name] = identity
        found = fingerprint(graph, step, parameter_values(graph, run.parameters, run.data_paths), identities)
        if run.regenerate_outputs:
            return ReuseDecision(
                "Not reused: the run was submitted with regenerate_outputs=True (later runs may reuse this one).",
                found,
            )
        try:
            return self._lookup(run, step, found)
        except AzureError as exc:
            log.warning("Reuse lookup for step %r of run %s failed: %s", step.name, run.id, exc)
            return ReuseDecision(f"Not reused: the reuse index could not be read ({type(exc).__name__}).", found)

    def _lookup(self, run: PipelineRun, step: Step, found: Fingerprint) -> ReuseDecision:
        gone: Candidate | None = None
        for candidate in self._index.candidates(found.key):
            if candidate.run_id == run.id:
                continue
            try:
                sources = self._intact_outputs(candidate, step)
            except Exception as exc:
                if not (_storage_fault(exc) or isinstance(exc, OutputUncheckable)):
                    raise
                # Unknown, not gone: the candidate stays indexed, and this step runs.
                log.warning("Checking the outputs of %s failed: %s", candidate.execution, redact(str(exc)))
                return ReuseDecision(
                    f"Not reused: the outputs of run {candidate.run_id} could not be checked ({type(exc).__name__}).",
                    found,
                )
            if sources is None:
                log.info("Dropping %s from the reuse index: its outputs are gone or changed.", candidate.execution)
                self._index.discard(candidate)
                gone = gone or candidate
                continue
            return ReuseDecision(
                f"Reused step {candidate.step!r} of run {candidate.run_id} (attempt {candidate.attempt}): "
                "its fingerprint is the same.",
                found,
                candidate,
                sources,
            )
        if gone is not None:
            return ReuseDecision(f"Not reused: the outputs of run {gone.run_id} are no longer available.", found)
        last = self._index.lineage(step.name, run.experiment_name)
        if last is None:
            return ReuseDecision(explain_miss(step.name, found.parts, None, None), found)
        return ReuseDecision(explain_miss(step.name, found.stored_parts(), last.parts, last.run_id), found)

    def _intact_outputs(self, candidate: Candidate, step: Step) -> dict[str, OutputMarker] | None:
        """The candidate's output markers if every output is intact on the datastore ``step`` names for
        it; None otherwise (the candidate can never be reused)."""
        sources: dict[str, OutputMarker] = {}
        for output in step.outputs:
            try:
                marker = self._data.read_marker(candidate.run_id, output.name)
            except BadRequestError:
                return None
            if marker is None or not _same_datastore(marker.datastore, output_datastore(output.datastore)):
                return None
            if not self._data.intact(candidate.run_id, output.name, marker):
                return None
            sources[output.name] = marker
        return sources

    def redirect(self, run_id: str, decision: ReuseDecision) -> None:
        """Write the redirect markers of a reused step's outputs (after its row says reused)."""
        if decision.reused is None:
            return
        for name, marker in decision.sources.items():
            self._data.write_redirect(run_id, name, decision.reused.run_id, marker)

    def repair(self, run_id: str, step: Step, row: StepRun) -> dict[str, OutputMarker]:
        """Make sure a reused step's outputs carry their redirect markers; its outputs' markers.

        The row is written before the markers, so a crash in between leaves a reused step without
        them; the redirect is a pure function of the row, so whoever finds it missing writes it.
        """
        found: dict[str, OutputMarker] = {}
        if not row.is_reused or row.reused_pipeline_run_id is None:
            return found
        for output in step.outputs:
            marker = self._data.read_marker(run_id, output.name)
            if marker is None:
                source = self._data.read_marker(row.reused_pipeline_run_id, output.name)
                if source is None or source.source is not None:
                    log.warning("Step %r of run %s reused outputs that are gone.", step.name, run_id)
                    continue
                self._data.write_redirect(run_id, output.name, row.reused_pipeline_run_id, source)
                marker = self._data.read_marker(run_id, output.name)
            if marker is not None:
                found[output.name] = marker
        return found

    def _upstream_markers(
        self, run_id: str, graph: PipelineGraph, step: Step, rows: Mapping[str, StepRun]
    ) -> dict[str, OutputMarker]:
        """The completion markers (in this run) of the PipelineData ``step`` reads, repaired if reused."""
        producers = graph.producers()
        markers: dict[str, OutputMarker] = {}
        for item in step.inputs:
            if not isinstance(item, PipelineDataInput) or item.pipeline_data in markers:
                continue
            producer = producers.get(item.pipeline_data)
            row = rows.get(producer) if producer is not None else None
            if row is not None and row.is_reused and producer is not None:
                markers.update(self.repair(run_id, graph.step(producer), row))
            elif step.allow_reuse:
                try:
                    marker = self._data.read_marker(run_id, item.pipeline_data)
                except BadRequestError:
                    marker = None
                if marker is not None:
                    markers[item.pipeline_data] = marker
        return markers

    def record(self, run: PipelineRun, step: Step, row: StepRun) -> bool:
        """Index ``row``'s execution if it Finished with a fingerprint; whether it was indexed.

        Idempotent: the index row is created once, the lineage only moves forward.
        """
        if (
            row.status is not StepStatus.FINISHED
            or row.is_reused
            or row.reuse_key is None
            or row.reuse_parts is None
            or not step.allow_reuse
        ):
            return False
        ended = row.end_time or utcnow()
        candidate = Candidate(
            key=row.reuse_key,
            row_key=inverted_key(ended, run.id),
            run_id=run.id,
            step=row.name,
            attempt=row.attempt,
            end_time=ended,
        )
        self._index.add(candidate, experiment=run.experiment_name)
        self._index.record_lineage(
            row.name,
            run.experiment_name,
            Lineage(run_id=run.id, attempt=row.attempt, key=row.reuse_key, parts=row.reuse_parts, end_time=ended),
        )
        return True
