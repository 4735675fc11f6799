"""amlpipe.pipeline: build pipelines (``amlpipe.pipeline.core``) from steps (``amlpipe.pipeline.steps``), or
from a YAML file (``pipeline_from_yaml``, amlpipe's addition to azureml's names)."""

from __future__ import annotations

from amlpipe.pipeline._yaml import pipeline_from_yaml
from amlpipe.pipeline._yaml_read import PipelineYamlError, YamlProblem

__all__ = ["PipelineYamlError", "YamlProblem", "pipeline_from_yaml"]
