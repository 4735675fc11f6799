"""Run artifacts: the files a step execution uploaded (``run.upload_file``, and its ``./outputs`` folder).

Blob layout (container ``amlpipe-artifacts``):

    amlpipe-artifacts/<run id>/<step key>/<attempt>/<artifact name>

An artifact name is a relative POSIX path (``outputs/model.pkl``), checked by
``shared.run_history.artifact_name_problem``. The worker uploads an execution's artifacts after its
script exited 0 and before the step is recorded Finished (``shared.orchestration.journal``); a
redelivered execution uploads them again over the same names. Readers get a one-hour read-only SAS
URL per file, so the bytes go straight from Blob storage to the client.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, ContentSettings

from shared.errors import BadRequestError, NotFoundError
from shared.pipelines._storage import LazyContainer, iso, key
from shared.pipelines.metrics import execution_json, step_execution
from shared.pipelines.runs import RunStore
from shared.run_history import artifact_name_problem
from shared.sas import signer_for

__all__ = [
    "CONTAINER",
    "MAX_NAMES",
    "ArtifactAccess",
    "ArtifactInfo",
    "ArtifactStore",
    "artifact_prefix",
    "artifact_urls",
    "parse_names",
    "step_artifacts",
]

CONTAINER = "amlpipe-artifacts"
SAS_LIFETIME = timedelta(hours=1)
#: Most names one SAS request may ask for.
MAX_NAMES = 1000


def artifact_prefix(run_id: str, step: str, attempt: int) -> str:
    """The blob prefix of one execution's artifacts (ends with '/')."""
    return f"{run_id}/{key(step)}/{attempt}/"


@dataclass(frozen=True)
class ArtifactInfo:
    """One stored artifact."""

    name: str
    size: int
    last_modified: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "lastModified": iso(self.last_modified)}


@dataclass(frozen=True)
class ArtifactAccess:
    """One artifact and a one-hour read-only SAS URL for it."""

    name: str
    url: str = field(repr=False)
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "size": self.size}


class ArtifactStore:
    """Upload, list and grant read access to the artifacts of step executions.

    Args:
        blobs: the app's blob service client (the caller owns it).
    """

    def __init__(self, blobs: BlobServiceClient) -> None:
        self._blobs = blobs
        self._container = LazyContainer(blobs, CONTAINER)

    def upload_artifacts(self, run_id: str, step: str, attempt: int, files: Mapping[str, Path]) -> list[str]:
        """Upload ``files`` (artifact name → local file) as the execution's artifacts; the names, sorted.

        Each blob is overwritten: a redelivered execution's upload replaces the lost one's.

        Raises:
            BadRequestError: a name is not a valid artifact name.
        """
        for name in files:
            problem = artifact_name_problem(name)
            if problem:
                raise BadRequestError(problem, target="name")
        container = self._container.client()
        prefix = artifact_prefix(run_id, step, attempt)
        for name in sorted(files):
            kind, _ = mimetypes.guess_type(name)
            settings = ContentSettings(content_type=kind or "application/octet-stream")
            with open(files[name], "rb") as data:
                container.upload_blob(prefix + name, data, overwrite=True, content_settings=settings)
        return sorted(files)

    def list_artifacts(self, run_id: str, step: str, attempt: int) -> list[ArtifactInfo]:
        """The artifacts of one execution, by name."""
        prefix = artifact_prefix(run_id, step, attempt)
        found = [
            ArtifactInfo(blob.name[len(prefix) :], int(blob.size), blob.last_modified)
            for blob in self._container.client().list_blobs(name_starts_with=prefix)
        ]
        return sorted(found, key=lambda a: a.name)

    def read_access(self, run_id: str, step: str, attempt: int, names: Sequence[str]) -> list[ArtifactAccess]:
        """A one-hour read-only SAS URL for each of ``names``.

        Raises:
            NotFoundError: a name is not an artifact of the execution (the target says which).
        """
        have = {a.name: a for a in self.list_artifacts(run_id, step, attempt)}
        prefix = artifact_prefix(run_id, step, attempt)
        out = []
        for i, name in enumerate(names):
            info = have.get(name)
            if info is None:
                raise NotFoundError(
                    f"Step {step!r} (attempt {attempt}) of run {run_id} has no artifact {name!r}.",
                    target=f"names[{i}]",
                )
            blob = self._container.client().get_blob_client(prefix + name)
            out.append(ArtifactAccess(name, f"{blob.url}?{self._sas_token(prefix + name)}", info.size))
        return out

    def _sas_token(self, blob_name: str) -> str:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        # An account key signs it, or (a managed identity on Azure has none) a user delegation key.
        return signer_for(self._blobs).blob_sas(
            CONTAINER, blob_name, BlobSasPermissions(read=True), start=start, expiry=start + SAS_LIFETIME
        )


def parse_names(body: Mapping[str, Any]) -> list[str]:
    """The ``names`` of a SAS request body: 1-1000 artifact names.

    Raises:
        BadRequestError: the message names the bad entry (``names[2]``).
    """
    unknown = sorted(set(body) - {"names"})
    if unknown:
        raise BadRequestError(f'Unknown field(s): {", ".join(unknown)}; the body is {{"names": [...]}}.', unknown[0])
    names = body.get("names")
    if not isinstance(names, list) or not 0 < len(names) <= MAX_NAMES:
        raise BadRequestError(f"'names' must be a list of 1-{MAX_NAMES} artifact names.", target="names")
    for i, name in enumerate(names):
        problem = artifact_name_problem(name)
        if problem:
            raise BadRequestError(problem, target=f"names[{i}]")
    return list(names)


def step_artifacts(
    runs: RunStore, artifacts: ArtifactStore, run_id: str, step: str, raw_attempt: str | None
) -> dict[str, Any]:
    """``GET PipelineRuns/{run_id}/steps/{step}/artifacts``: one execution's artifacts (a reused step:
    the reused execution's)."""
    found, execution = step_execution(runs, run_id, step, raw_attempt)
    listed = artifacts.list_artifacts(execution.run_id, execution.step, execution.attempt) if execution else []
    return {**execution_json(found, execution), "value": [a.to_json() for a in listed]}


def artifact_urls(
    runs: RunStore,
    artifacts: ArtifactStore,
    run_id: str,
    step: str,
    raw_attempt: str | None,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """``POST PipelineRuns/{run_id}/steps/{step}/artifacts/sas``: read URLs for the named artifacts."""
    names = parse_names(body)
    _, execution = step_execution(runs, run_id, step, raw_attempt)
    if execution is None:
        raise NotFoundError(f"Step {step!r} of run {run_id} has not run yet: it has no artifacts.", target="names[0]")
    granted = artifacts.read_access(execution.run_id, execution.step, execution.attempt, names)
    return {"runId": execution.id, "attempt": execution.attempt, "value": [a.to_json() for a in granted]}
