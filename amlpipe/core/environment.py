"""Environment and CondaDependencies: the software a step runs with (azureml.core.environment).

Only what a pipeline graph needs: a name and version (a registered environment) or inline conda and
pip packages. Registering and fetching environments goes through the workspace (later work).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_PIP_REQUIREMENT = re.compile(r"^\s*([^#\s][^#]*?)\s*(#.*)?$")


class CondaDependencies:
    """Conda and pip packages of an environment.

    Args:
        conda_packages: conda package specs, e.g. ``"scikit-learn=1.5"``.
        pip_packages: pip requirement strings, e.g. ``"pandas>=2"``.
        python_version: the Python version, e.g. ``"3.11"``.
        channels: extra conda channels.
    """

    def __init__(
        self,
        conda_packages: list[str] | None = None,
        pip_packages: list[str] | None = None,
        python_version: str | None = None,
        channels: list[str] | None = None,
    ) -> None:
        self._conda_packages = list(conda_packages or [])
        self._pip_packages = list(pip_packages or [])
        self._channels = list(channels or [])
        self.python_version = python_version

    @staticmethod
    def create(
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A CondaDependencies with these packages (``pin_sdk_version`` is accepted and ignored)."""
        return CondaDependencies(conda_packages, pip_packages, python_version)

    @property
    def conda_packages(self) -> list[str]:
        """The conda packages, in the order added."""
        return list(self._conda_packages)

    @property
    def pip_packages(self) -> list[str]:
        """The pip packages, in the order added."""
        return list(self._pip_packages)

    @property
    def conda_channels(self) -> list[str]:
        """The extra conda channels."""
        return list(self._channels)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package (a duplicate is ignored)."""
        if conda_package not in self._conda_packages:
            self._conda_packages.append(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip package (a duplicate is ignored)."""
        if pip_package not in self._pip_packages:
            self._pip_packages.append(pip_package)

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (a duplicate is ignored)."""
        if channel not in self._channels:
            self._channels.append(channel)

    def set_python_version(self, version: str) -> None:
        """Set the Python version."""
        self.python_version = version


class PythonSection:
    """The Python part of an environment: its dependencies."""

    def __init__(self) -> None:
        self.conda_dependencies = CondaDependencies()
        self.user_managed_dependencies = False
        self.interpreter_path = "python"


class Environment:
    """A named, optionally versioned, software environment.

    Args:
        name: the environment's name.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("Environment name must be a non-empty string")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.environment_variables: dict[str, str] = {}

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str | os.PathLike[str], pip_version: str | None = None
    ) -> Environment:
        """An environment whose pip packages are the requirements in ``file_path``."""
        env = Environment(name)
        for line in Path(file_path).read_text(encoding="utf-8").splitlines():
            match = _PIP_REQUIREMENT.match(line)
            if match and not match.group(1).startswith("-"):
                env.python.conda_dependencies.add_pip_package(match.group(1))
        if pip_version is not None:
            env.python.conda_dependencies.add_conda_package(f"pip={pip_version}")
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike[str]) -> Environment:
        """An environment from a conda ``environment.yml`` (dependencies, pip list and channels).

        Only the common subset of the format is read: ``channels``, ``dependencies`` entries and
        their ``pip:`` list. ``python=X`` sets the Python version.
        """
        env = Environment(name)
        deps = env.python.conda_dependencies
        section = ""
        in_pip = False
        for raw in Path(file_path).read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if not raw.startswith((" ", "\t", "-")):
                section = line.split(":", 1)[0].strip()
                in_pip = False
                continue
            item = line.strip()
            if not item.startswith("-"):
                continue
            value = item[1:].strip().strip("'\"")
            indent = len(raw) - len(raw.lstrip())
            if section == "channels":
                deps.add_channel(value)
            elif section == "dependencies":
                if value == "pip:":
                    in_pip = True
                    pip_indent = indent
                elif in_pip and indent > pip_indent:
                    deps.add_pip_package(value)
                else:
                    in_pip = False
                    if value.startswith("python=") or value.startswith("python=="):
                        deps.set_python_version(value.split("=")[-1])
                    else:
                        deps.add_conda_package(value)
        return env

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, version={self.version!r})"
