"""amlpipe.train: the Estimator that EstimatorStep runs (azureml.train)."""

from __future__ import annotations

__all__: list[str] = []
