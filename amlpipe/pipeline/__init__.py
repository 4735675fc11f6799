"""amlpipe.pipeline: build pipelines (``amlpipe.pipeline.core``) from steps (``amlpipe.pipeline.steps``)."""

from __future__ import annotations

__all__: list[str] = []
