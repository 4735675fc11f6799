"""amlpipe.pipeline.core: pipelines, intermediate data, parameters and schedules (azureml.pipeline.core)."""

from __future__ import annotations

from amlpipe.pipeline.core._builder import InputPortBinding, PipelineData
from amlpipe.pipeline.core._endpoint import PipelineEndpoint, PipelineIdVersion
from amlpipe.pipeline.core._parameter import PipelineParameter
from amlpipe.pipeline.core._pipeline import Pipeline
from amlpipe.pipeline.core._published import PublishedPipeline
from amlpipe.pipeline.core._run import PipelineRun, StepRun
from amlpipe.pipeline.core._schedule import Schedule
from amlpipe.pipeline.core._schedule_recurrence import ScheduleRecurrence, TimeZone
from amlpipe.pipeline.core._step import PipelineStep

__all__ = [
    "InputPortBinding",
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineIdVersion",
    "PipelineParameter",
    "PipelineRun",
    "PipelineStep",
    "PublishedPipeline",
    "Schedule",
    "ScheduleRecurrence",
    "StepRun",
    "TimeZone",
]
