"""Loading a pipeline definition from a file, for ``amlpipe pipeline publish FILE``.

A ``.py`` file defines ``build(ws)``, which returns the ``Pipeline`` to publish::

    def build(ws: Workspace) -> Pipeline:
        step = PythonScriptStep("train.py", name="train", source_directory="scripts")
        return Pipeline(workspace=ws, steps=[step])

The file is imported with its own folder as the working folder and first on ``sys.path``, so relative
``source_directory`` paths and sibling imports resolve next to the file wherever the CLI runs. The
workspace passed in is the CLI's (``--config``, else the nearest config).

A ``.yml``/``.yaml`` file describes the pipeline in YAML (docs/pipeline-yaml.md); it is turned into the
same SDK objects by ``amlpipe.pipeline.pipeline_from_yaml``, its relative paths resolved against its
folder. Loaders are chosen by the file's suffix (``LOADERS``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from amlpipe.cli._common import CliError, ExitCode
from amlpipe.exceptions import AzureMLException

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core import Pipeline

BUILD = "build"


@contextmanager
def _beside(path: Path) -> Iterator[None]:
    """Work in ``path``'s folder, with it first on ``sys.path``; restore both afterwards."""
    folder = str(path.parent)
    sys.path.insert(0, folder)
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
        if folder in sys.path:
            sys.path.remove(folder)


def _python_pipeline(path: Path, ws: Workspace, *, shown: str, allow_paths_outside: bool) -> Pipeline:
    from amlpipe.pipeline.core import Pipeline

    name = f"_amlpipe_pipeline_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(ExitCode.USAGE, f"{path} cannot be imported as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up
    # What the file prints goes to stderr: stdout carries the command's own output (--json).
    try:
        with redirect_stdout(sys.stderr):
            try:
                spec.loader.exec_module(module)
            except AzureMLException:
                raise
            except SystemExit as exc:
                raise CliError(ExitCode.USAGE, f"{path} called sys.exit({exc.code!r}) while it was imported.") from exc
            except Exception as exc:
                raise CliError(ExitCode.USAGE, f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
            build = getattr(module, BUILD, None)
            if not callable(build):
                raise CliError(ExitCode.USAGE, f"{path} must define {BUILD}(ws) returning the Pipeline to publish.")
            try:
                pipeline = build(ws)
            except AzureMLException:
                raise
            except SystemExit as exc:
                raise CliError(ExitCode.USAGE, f"{path}: {BUILD}(ws) called sys.exit({exc.code!r}).") from exc
            except Exception as exc:
                raise CliError(ExitCode.USAGE, f"{path}: {BUILD}(ws) raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(name, None)
    if not isinstance(pipeline, Pipeline):
        raise CliError(ExitCode.USAGE, f"{path}: {BUILD}(ws) returned {type(pipeline).__name__}, not a Pipeline.")
    return pipeline


def _yaml_pipeline(path: Path, ws: Workspace, *, shown: str, allow_paths_outside: bool) -> Pipeline:
    from amlpipe.pipeline import PipelineYamlError
    from amlpipe.pipeline._yaml import pipeline_from_text

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(ExitCode.USAGE, f"{shown}: not UTF-8 text ({exc.reason}).") from exc
    try:  # messages name the file as the user typed it
        return pipeline_from_text(text, ws, folder=path.parent, source=shown, allow_paths_outside=allow_paths_outside)
    except PipelineYamlError as exc:
        # A bad file is a usage error (2) even when a problem came from the service (a dataset it
        # does not have): the message names the YAML path, which a 404's exit code would hide.
        raise CliError(ExitCode.USAGE, exc.message) from exc


class Loader(Protocol):
    """Builds the Pipeline of a file (``path`` resolved; ``shown`` as the user named it)."""

    def __call__(self, path: Path, ws: Workspace, *, shown: str, allow_paths_outside: bool) -> Pipeline: ...


#: The loader of each file suffix.
LOADERS: dict[str, Loader] = {
    ".py": _python_pipeline,
    ".yml": _yaml_pipeline,
    ".yaml": _yaml_pipeline,
}


def check_pipeline_file(path: Path) -> Loader:
    """The loader for ``path`` (checked before anything else is done).

    Raises:
        CliError: (USAGE) the file is missing or of an unknown kind.
    """
    if not path.is_file():
        raise CliError(ExitCode.USAGE, f"{path} is not a file.")
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        kinds = ", ".join(sorted(LOADERS))
        raise CliError(ExitCode.USAGE, f"{path}: unknown kind of pipeline file (expected one of {kinds}).")
    return loader


@contextmanager
def pipeline_from_file(path: Path, ws: Workspace, *, allow_paths_outside: bool = False) -> Iterator[Pipeline]:
    """The pipeline ``path`` defines, with the working folder at the file's folder until the block ends
    (publishing reads the steps' relative ``source_directory`` folders).

    ``allow_paths_outside`` lets a YAML file's paths lead outside its folder (a Python file is code:
    it may name any path).

    Raises:
        CliError: (USAGE) the file is missing, of an unknown kind, fails to load, or builds no Pipeline.
    """
    loader = check_pipeline_file(path)
    resolved = path.resolve()
    with _beside(resolved):
        yield loader(resolved, ws, shown=str(path), allow_paths_outside=allow_paths_outside)
