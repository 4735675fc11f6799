"""Pydantic models of the pipeline API's JSON bodies, for the OpenAPI document.

The engine shapes answers with ``to_json`` methods and reads bodies with its own checks (which give
azureml-style messages); ``tests/unit/test_pipeline_submission.py``
(``test_published_pipelines_and_endpoints_match_their_wire_models``) keeps these models and those shapes
the same.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataPathAssignment(_Body):
    DataStoreName: str
    RelativePath: str = ""


class SubmitBody(_Body):
    """azureml's PipelineSubmissionInfo: the body of every submit route."""

    ExperimentName: str = Field(description="The experiment to run in; created if new.")
    Description: str | None = None
    RunSource: str | None = Field(default=None, description='"SDK", "API", ...')
    RunType: str | None = None
    ParameterAssignments: dict[str, str | int | float | bool] | None = Field(
        default=None, description="Declared parameter name → value; an undeclared name is a 400."
    )
    DataPathAssignments: dict[str, DataPathAssignment] | None = None
    DataSetDefinitionValueAssignments: dict[str, Any] | None = Field(default=None, description="Not supported yet.")
    ContinueRunOnStepFailure: bool | None = None
    EnableNotification: bool | None = None
    tags: dict[str, str] | None = None
    Properties: dict[str, str] | None = None
    ParentRunId: str | None = None
    RegenerateOutputs: bool | None = None


class AdHocSubmitBody(SubmitBody):
    """An unpublished graph to run: the submit keys plus ``Graph``."""

    Graph: dict[str, Any] = Field(description="A PipelineGraph document.")


class RunStatusInfo(_Body):
    StatusCode: str = Field(description="NotStarted, Running, Failed, Finished or Canceled.")
    StatusDetail: str | None = None
    CreationTime: str | None = None
    EndTime: str | None = None


class StepStatusInfo(_Body):
    StatusCode: str = Field(description="Adds Queued, PartiallyExecuted and Bypassed to the run statuses.")
    StatusDetail: str | None = Field(
        default=None, description="Why the step ended as it did (a failure's reason, a cancel's, a bypass's)."
    )
    StartTime: str | None = None
    EndTime: str | None = None


class StepRunEntity(_Body):
    Name: str
    PipelineRunId: str
    RunId: str | None = Field(
        default=None,
        description="The step's current execution, <pipeline run id>:<step>:<attempt> (what its metrics, artifacts"
        " and registered models name); null until it is first queued.",
    )
    Attempt: int = Field(default=0, description="The current attempt, from 1 (0: never queued, or reused).")
    Status: StepStatusInfo
    IsReused: bool
    ReusedRunId: str | None = Field(description="The reused execution, <pipeline run id>:<step>:<attempt>.")
    ReusedPipelineRunId: str | None = Field(description="The pipeline run whose outputs the step reused.")
    ReuseReason: str | None = Field(
        default=None, description="Why the step was reused, or why not (which part of its fingerprint changed)."
    )
    ReuseFingerprint: str | None = Field(default=None, description="The step's reuse key (sha256 hex).")
    ReuseFingerprintParts: dict[str, str] | None = Field(
        default=None, description="A digest per fingerprint part: step, snapshot, script, arguments, params, ..."
    )


class PipelineRunEntity(_Body):
    """azureml's PipelineRunEntity."""

    Id: str
    Status: RunStatusInfo
    GraphId: str
    IsSubmitted: bool
    HasErrors: bool
    HasWarnings: bool
    UploadState: str
    ParameterAssignments: dict[str, str]
    DataPathAssignments: dict[str, DataPathAssignment]
    DataSetDefinitionValueAssignments: dict[str, Any]
    RunHistoryExperimentName: str
    PipelineId: str | None
    PipelineEndpointId: str | None
    ParentRunId: str | None
    Description: str | None
    RunSource: str
    RunType: str
    TotalRunSteps: int
    ScheduleId: str | None
    ContinueRunOnStepFailure: bool
    RegenerateOutputs: bool
    CancelRequested: bool
    tags: dict[str, str]
    Properties: dict[str, str]
    EntityStatus: str
    Etag: str | None
    CreatedDate: str | None
    LastModifiedDate: str | None
    StepRuns: list[StepRunEntity] | None = Field(default=None, description="Only when getting one run.")


class PublishBody(_Body):
    Name: str
    Description: str | None = None
    Version: str | None = None
    ContinueRunOnStepFailure: bool | None = None
    EnableNotification: bool | None = None
    Graph: dict[str, Any] | None = Field(default=None, description="A PipelineGraph document (or GraphId).")
    GraphId: str | None = Field(default=None, description="The id of a stored graph, e.g. a run's GraphId.")


class PublishedPipelineEntity(_Body):
    Id: str
    Name: str
    Description: str | None
    Version: str | None
    Status: str = Field(description="Active, Disabled or Deprecated.")
    EntityStatus: str
    GraphId: str
    Url: str = Field(description="The full submit URL (PublishedPipeline.endpoint).")
    ContinueRunOnStepFailure: bool
    TotalRunSteps: int
    CreatedDate: str | None
    LastModifiedDate: str | None
    Etag: str | None


class EndpointVersionEntity(_Body):
    Version: str
    PipelineId: str


class PipelineEndpointEntity(_Body):
    Id: str
    Name: str
    Description: str | None
    Status: str
    DefaultVersion: str
    PipelineVersionList: list[EndpointVersionEntity]
    Url: str
    CreatedDate: str | None
    LastModifiedDate: str | None
    Etag: str | None


class CreateEndpointBody(_Body):
    Name: str
    Description: str | None = None
    PipelineId: str


class AddVersionBody(_Body):
    PipelineId: str
    SetDefault: bool = False


class SetDefaultBody(_Body):
    PipelineId: str | None = Field(default=None, description="set_default: a pipeline already on the endpoint.")
    Version: str | None = Field(default=None, description="set_default_version: a version of the endpoint.")


class EndpointNameBody(_Body):
    """``set_name(name)`` (PATCH) and ``reactivate(name)``: the endpoint's new, unique name."""

    Name: str


class SnapshotTicket(_Body):
    exists: bool
    upload_url: str | None = Field(
        default=None, description="Write-only SAS URL of a staging blob (15 min); PUT the zip (BlockBlob), then commit."
    )
    staging_id: str | None = Field(default=None, description="Give it to POST /api/snapshots/{sha256}/commit.")


class CommitSnapshotBody(_Body):
    StagingId: str = Field(description="The staging_id of the upload ticket.")


class SnapshotRefEntity(_Body):
    sha256: str
    size_bytes: int


class ExperimentEntity(_Body):
    Id: str
    Name: str
    CreatedDate: str | None


class ErrorDetailBody(_Body):
    Code: str
    Message: str
    Target: str | None = None


class ErrorInfo(_Body):
    Code: str
    Message: str
    Target: str | None = None
    Details: list[ErrorDetailBody] = []


class ErrorResponse(_Body):
    """azureml's error body."""

    Error: ErrorInfo


class PublishedPipelineList(_Body):
    value: list[PublishedPipelineEntity]


class PipelineEndpointList(_Body):
    value: list[PipelineEndpointEntity]


class PipelineRunList(_Body):
    value: list[PipelineRunEntity]


class ExperimentList(_Body):
    value: list[ExperimentEntity]
