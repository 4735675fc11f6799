"""azureml.pipeline.core.graph's public names that amlpipe provides."""

from __future__ import annotations

from amlpipe.pipeline.core._parameter import PipelineParameter

__all__ = ["PipelineParameter"]
