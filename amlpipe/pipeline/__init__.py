"""amlpipe.pipeline: build pipelines (``amlpipe.pipeline.core``) from steps (``amlpipe.pipeline.steps``), or
from a YAML file (``pipeline_from_yaml``, amlpipe's addition to azureml's names).

The YAML names are loaded on first use (PEP 562): every step process and every CLI command imports
``amlpipe.pipeline``, and only publishing a YAML file needs the schema models behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlpipe.pipeline._yaml import pipeline_from_yaml
    from amlpipe.pipeline._yaml_read import PipelineYamlError, YamlProblem

__all__ = ["PipelineYamlError", "YamlProblem", "pipeline_from_yaml"]


def __getattr__(name: str) -> Any:
    if name == "pipeline_from_yaml":
        from amlpipe.pipeline._yaml import pipeline_from_yaml

        return pipeline_from_yaml
    if name in ("PipelineYamlError", "YamlProblem"):
        from amlpipe.pipeline import _yaml_read

        return getattr(_yaml_read, name)
    raise AttributeError(f"module 'amlpipe.pipeline' has no attribute {name!r}")
