"""Estimator: a script, its folder and its environment, run by EstimatorStep (azureml.train.estimator).

Cloud-only settings (VM sizes and priorities, Docker images and registries, GPU, distributed backends,
shm size) are accepted and ignored: steps run in the compute pool's Python environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from amlpipe.core.environment import Environment
from amlpipe.core.runconfig import RunConfiguration

_IGNORED = frozenset(
    {
        "vm_size",
        "vm_priority",
        "process_count_per_node",
        "distributed_backend",
        "distributed_training",
        "use_gpu",
        "use_docker",
        "custom_docker_base_image",
        "custom_docker_image",
        "image_registry_details",
        "user_managed",
        "source_directory_data_store",
        "shm_size",
        "resume_from",
        "framework_version",
        "_disable_validation",
        "_show_lint_warnings",
        "_show_package_warnings",
    }
)

_INLINE_ENVIRONMENT = "amlpipe-estimator"


class Estimator:
    """An entry script in a source directory, with the packages it needs.

    Args:
        source_directory: the folder holding the entry script (snapshotted for the step).
        compute_target: the default compute target of steps using this estimator.
        entry_script: the script to run, relative to ``source_directory``.
        script_params: command-line arguments as a dict (not allowed with EstimatorStep).
        node_count: the number of nodes.
        conda_packages: conda packages for an inline environment.
        pip_packages: pip packages for an inline environment.
        conda_dependencies_file: a conda ``environment.yml`` relative to ``source_directory``.
        pip_requirements_file: a ``requirements.txt`` relative to ``source_directory``.
        environment_variables: variables for the script's process.
        environment_definition: an Environment to use instead of packages.
        inputs: data inputs (not allowed with EstimatorStep).
        max_run_duration_seconds: the run's time limit.
        **kwargs: azureml's cloud-only settings, accepted and ignored.

    Raises:
        ValueError: no entry script, packages given together with ``environment_definition``, or an
            unknown keyword argument.
    """

    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        *,
        compute_target: Any = None,
        entry_script: str | None = None,
        script_params: dict[str, Any] | None = None,
        node_count: int = 1,
        conda_packages: list[str] | None = None,
        pip_packages: list[str] | None = None,
        conda_dependencies_file_path: str | None = None,
        pip_requirements_file_path: str | None = None,
        conda_dependencies_file: str | None = None,
        pip_requirements_file: str | None = None,
        environment_variables: dict[str, str] | None = None,
        environment_definition: Environment | None = None,
        inputs: list[Any] | None = None,
        max_run_duration_seconds: int | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _IGNORED)
        if unknown:
            raise ValueError(f"parameter {unknown[0]} is not recognized for Estimator")
        if not isinstance(entry_script, str) or not entry_script:
            raise ValueError("entry_script is required and must be a str")
        conda_file = conda_dependencies_file or conda_dependencies_file_path
        pip_file = pip_requirements_file or pip_requirements_file_path
        if environment_definition is not None and (conda_packages or pip_packages or conda_file or pip_file):
            raise ValueError(
                "environment_definition cannot be combined with conda_packages, pip_packages or dependency files"
            )
        self.source_directory = str(source_directory)
        self.compute_target = compute_target
        self.entry_script = entry_script
        self.script_params = dict(script_params or {})
        self.inputs = list(inputs or [])
        self.run_config = RunConfiguration(framework="Python")
        self.run_config.node_count = node_count
        self.run_config.max_run_duration_seconds = max_run_duration_seconds
        self.run_config.environment_variables = dict(environment_variables or {})
        if compute_target is not None:
            self.run_config.target = compute_target
        self.run_config.environment = environment_definition or self._inline_environment(
            conda_packages, pip_packages, conda_file, pip_file
        )

    def _inline_environment(
        self,
        conda_packages: list[str] | None,
        pip_packages: list[str] | None,
        conda_file: str | None,
        pip_file: str | None,
    ) -> Environment:
        base = Path(self.source_directory)
        if conda_file is not None:
            env = Environment.from_conda_specification(_INLINE_ENVIRONMENT, base / conda_file)
        elif pip_file is not None:
            env = Environment.from_pip_requirements(_INLINE_ENVIRONMENT, base / pip_file)
        else:
            env = Environment(_INLINE_ENVIRONMENT)
        deps = env.python.conda_dependencies
        for package in conda_packages or []:
            deps.add_conda_package(package)
        for package in pip_packages or []:
            deps.add_pip_package(package)
        return env

    def __repr__(self) -> str:
        return f"Estimator(source_directory={self.source_directory!r}, entry_script={self.entry_script!r})"
