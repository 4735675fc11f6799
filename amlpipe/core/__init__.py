"""amlpipe.core: workspace, experiments, runs, datastores, datasets, models, environments and compute (azureml.core)."""

from __future__ import annotations

from amlpipe.core.compute import ComputeTarget
from amlpipe.core.dataset import Dataset
from amlpipe.core.datastore import Datastore
from amlpipe.core.environment import Environment
from amlpipe.core.experiment import Experiment
from amlpipe.core.model import Model
from amlpipe.core.run import Run
from amlpipe.core.workspace import Workspace

__all__ = ["ComputeTarget", "Dataset", "Datastore", "Environment", "Experiment", "Model", "Run", "Workspace"]
