"""The pipeline engine: published pipelines, endpoints, experiments, runs, snapshots and submission.

One noun per module: ``published``, ``endpoints``, ``experiments``, ``runs``, ``graphs``,
``snapshots``; ``assignments`` checks submit bodies (pure); ``publish`` and ``submit`` are the flows
the HTTP functions call; ``stores`` bundles the storage.
"""

from __future__ import annotations

from shared.pipelines.runs import RunStatus, StepStatus
from shared.pipelines.stores import RUN_QUEUE, Stores, default_registry, default_stores

__all__ = ["RUN_QUEUE", "RunStatus", "StepStatus", "Stores", "default_registry", "default_stores"]
