"""A step's process: the command it runs and the environment it runs with, from its definition.

``python <script_name> <arguments>`` for python_script and estimator steps; for a command step its
command: a string through ``/bin/sh -c`` (as azureml's CommandStep runs it), a list as argv, its
program checked first. Arguments resolve to their values: literals, pipeline parameters (the run's,
over the defaults), PipelineData and input folders. The environment is an allow-list of the host's
variables, then the runconfig's, then amlpipe's: ``AML_PARAMETER_<name>``,
``AZUREML_DATAREFERENCE_<name>``, ``AZUREML_RUN_ID`` and ``AZUREML_PIPELINE_RUN_ID`` (the worker adds
``AMLPIPE_RUN_CONTEXT``, see :mod:`shared.orchestration.run_context`).

A step's ``PYTHONPATH`` (:func:`step_pythonpath`) lets a script import what the app imports:
``amlpipe`` and the app's packages, which Azure's remote build installs into
``<app root>/.python_packages/lib/site-packages`` rather than the interpreter's site-packages.

A definition the worker cannot run raises :class:`StepFailed`, before anything is downloaded where
it can (:func:`check_runnable`): the step is recorded Failed, not retried.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import site
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

import amlpipe
from shared.errors import AmlPipeError
from shared.graph.model import (
    DataArgument,
    InputArgument,
    LiteralArgument,
    ParameterArgument,
    ParameterRef,
    PipelineGraph,
    Step,
)
from shared.graph.validate import parameter_env_name
from shared.orchestration.fingerprint import step_parameters
from shared.pipelines.runs import PipelineRun, StepRun, wire_string

__all__ = ["StepFailed", "check_runnable", "step_argv", "step_environment", "step_pythonpath"]

# The only variables of the host a script inherits: an allow-list, so app settings (storage
# connection strings, identity endpoints, client secrets) are not handed to it. This is not an
# isolation boundary: a script runs as the app's user and can read the host's environment through
# /proc. Steps are not a security boundary from the app (see docs/orchestration.md).
_INHERITED_ENV = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "TEMP", "TMP", "PYTHONUNBUFFERED"})
_INHERITED_ENV_PREFIXES = ("LC_",)
_INHERITED_ENV_WINDOWS = frozenset({"SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT"})
#: The folder holding the ``amlpipe`` package: on a step's PYTHONPATH, so ``from amlpipe.core import Run``
#: works where the app is deployed as files rather than pip-installed (Azure Functions).
_CLIENT_ROOT = str(Path(amlpipe.__file__).resolve().parent.parent)
#: The app's folder on Azure (``/home/site/wwwroot``), as the Functions host tells its worker.
SCRIPT_ROOT_ENV = "AzureWebJobsScriptRoot"
#: Where remote build (and ``func pack``) installs ``requirements.txt`` under the app's folder.
_APP_PACKAGES = Path(".python_packages", "lib")
#: A folder of the Functions Python worker itself (``.../workers/python/3.11/LINUX/X64``): its own
#: copies of grpc and protobuf would shadow the app's, so it is never passed on.
_WORKER_FOLDER = re.compile(r"[/\\]python[/\\]\d+\.\d+[/\\](?:WINDOWS|LINUX|OSX)(?:[/\\]|$)", re.IGNORECASE)
_WORKER_PACKAGES = ("azure_functions_worker", "proxy_worker")
#: The step kinds that run ``python <script_name> <arguments>``.
_SCRIPT_KINDS = frozenset({"python_script", "estimator"})
_SHELL = ("/bin/sh", "-c") if os.name == "posix" else (os.environ.get("COMSPEC", "cmd.exe"), "/c")


class StepFailed(AmlPipeError):
    """The step cannot run as defined (not retryable): its reason is recorded on the step."""


def _inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The host variables a step's script starts with (see ``_INHERITED_ENV``)."""
    windows = os.name == "nt"
    return {
        name: value
        for name, value in environ.items()
        if name in _INHERITED_ENV
        or name.startswith(_INHERITED_ENV_PREFIXES)
        or (windows and name.upper() in _INHERITED_ENV_WINDOWS)
    }


def check_runnable(definition: Step) -> None:
    """Refuse, before anything is downloaded, a step this worker cannot run."""
    if definition.kind in _SCRIPT_KINDS:
        if not definition.script_name:
            raise StepFailed(f"A {definition.kind} step needs script_name, the script to run.")
    elif definition.kind == "command":
        if not definition.command:
            raise StepFailed("A command step needs command, the command to run.")
    elif definition.kind == "data_transfer":
        spec = definition.data_transfer
        destinations = len(definition.outputs) + (1 if spec is not None and spec.destination is not None else 0)
        if len(definition.inputs) != 1 or destinations != 1:
            raise StepFailed(
                "A data_transfer step needs one input (its source) and one destination: data_transfer.destination"
                " or one output."
            )
    else:
        raise StepFailed(
            f"Steps of kind {definition.kind!r} cannot run yet; python_script, command, estimator and"
            " data_transfer steps can."
        )


def _command_argv(argv: list[str], src: Path, search_path: str | None) -> list[str]:
    """A command list, run without a shell, once its program is known to exist (a typo is then a
    clear, non-retried failure, not an error of the worker): a path with ``/`` in the snapshot, a
    bare name on the step's PATH."""
    program = argv[0] if argv else ""
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else src / program
        if not path.is_file() or not os.access(path, os.X_OK):
            raise StepFailed(
                f"The command's program {program!r} is not an executable file in the step's source folder;"
                " run it through its interpreter, e.g. ['sh', 'run.sh'] or ['python', 'train.py']."
            )
    elif not program or shutil.which(program, path=search_path) is None:
        raise StepFailed(f"The command's program {program!r} was not found on the step's PATH.")
    return argv


def step_environment(
    run: PipelineRun,
    step: StepRun,
    graph: PipelineGraph,
    definition: Step,
    data: Mapping[str, Path],
    inputs: Mapping[str, Path],
) -> dict[str, str]:
    """The step process's environment: allow-listed host variables, the runconfig's, then amlpipe's."""
    env = _inherited_env(os.environ)
    # ``python`` in a command is the interpreter scripts run with, as in an azureml environment.
    env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), env.get("PATH")) if p)
    env.update(definition.runconfig.environment_variables)
    # The runconfig's PYTHONPATH first; the host's own is never passed on (only what the app needs).
    pythonpath = [env.get("PYTHONPATH", ""), *step_pythonpath(os.environ, sys.path)]
    env["PYTHONPATH"] = os.pathsep.join(p for p in pythonpath if p)
    values = _parameters(run, graph)
    used = step_parameters(definition)  # only what the step's fingerprint covers (None: a command line)
    for name, value in values.items():
        if used is None or name in used:
            env[parameter_env_name(name)] = value
    for name, param in definition.params.items():  # a step's params: literals or pipeline parameters
        if isinstance(param, ParameterRef) and param.name not in values:
            raise StepFailed(f"params {name!r} names parameter {param.name!r}, which the pipeline does not declare.")
        env[parameter_env_name(name)] = values[param.name] if isinstance(param, ParameterRef) else wire_string(param)
    for name, path in [*data.items(), *inputs.items()]:
        env[f"AZUREML_DATAREFERENCE_{name}"] = str(path)
    env["AZUREML_RUN_ID"] = f"{run.id}:{step.name}:{step.attempt}"
    env["AZUREML_PIPELINE_RUN_ID"] = run.id
    return env


def _interpreter_paths() -> tuple[str, ...]:
    """The folders the interpreter steps run with (``sys.executable``) searches by itself: its standard
    library and site-packages (a venv's, locally)."""
    paths = sysconfig.get_paths()
    found = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    found.update(site.getsitepackages())
    return tuple(sorted(found))


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _within(path: str, folder: str) -> bool:
    """Whether real path ``path`` is real path ``folder`` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _is_worker_folder(entry: str) -> bool:
    return bool(_WORKER_FOLDER.search(entry)) or any(os.path.isdir(os.path.join(entry, p)) for p in _WORKER_PACKAGES)


def step_pythonpath(
    environ: Mapping[str, str],
    path: Sequence[str],
    *,
    client_root: str = _CLIENT_ROOT,
    interpreter: Sequence[str] | None = None,
    version: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
) -> list[str]:
    """The folders a step's ``PYTHONPATH`` holds (after the runconfig's), so its script imports what the app does.

    First ``client_root``, the folder holding ``amlpipe`` (``from amlpipe.core import Run``). Then the
    app's packages. On Azure, remote build installs ``requirements.txt`` into
    ``<app root>/.python_packages/lib/site-packages``, not into the interpreter's site-packages: the
    Python worker adds that folder to its own ``sys.path``, and a step process, started with the same
    interpreter, would not see it. So these follow, each once:

    - ``<app root>/.python_packages/lib/site-packages`` and ``.../lib/python<X.Y>/site-packages``
      (``version``: the interpreter's; another version's compiled packages would not load) when they
      exist. The app root is ``environ``'s ``AzureWebJobsScriptRoot`` (set by the Functions host), else
      ``client_root``;
    - the entries of ``path`` (the worker's ``sys.path``) that lie under the app root, in their order,
      so whatever the worker added for the app is kept;

    but from ``path`` never a folder of the Functions worker itself (its grpc and protobuf could shadow
    the app's), nor one of the interpreter's own folders (``interpreter``, default: its standard
    library and site-packages, which the step's interpreter searches anyway; locally a ``.venv``
    inside the repository), nor a relative or missing entry, nor anything outside the app root.

    A pure function of its arguments and the filesystem (the default ``interpreter`` is read from
    :mod:`sysconfig`): tests pass their own.
    """
    root = environ.get(SCRIPT_ROOT_ENV, "").strip() or client_root
    real_root = _real(root)
    own = [_real(p) for p in (_interpreter_paths() if interpreter is None else interpreter)]
    lib = Path(root) / _APP_PACKAGES
    app_packages = [str(lib / "site-packages"), str(lib / f"python{version[0]}.{version[1]}" / "site-packages")]
    found = [client_root]
    seen = {_real(client_root)}
    for entry in [*app_packages, *path]:
        if not entry or not os.path.isabs(entry) or not os.path.exists(entry):
            continue
        real = _real(entry)
        if real in seen or not _within(real, real_root):
            continue
        if entry not in app_packages and (_is_worker_folder(entry) or any(_within(real, f) for f in own)):
            continue
        seen.add(real)
        found.append(entry)
    return found


def step_argv(
    run: PipelineRun,
    graph: PipelineGraph,
    definition: Step,
    data: Mapping[str, Path],
    inputs: Mapping[str, Path],
    *,
    src: Path,
    env: Mapping[str, str],
) -> list[str]:
    """The step process's argv, run in ``src`` with ``env`` (whose ``PATH`` finds a command's program)."""
    args = [_argument(arg, run, graph, data, inputs) for arg in definition.arguments]
    if isinstance(definition.command, tuple):
        command = [_argument(arg, run, graph, data, inputs) for arg in definition.command]
        return _command_argv([*command, *args], src, env.get("PATH"))
    if definition.kind == "command":
        # A command line goes through the shell, as azureml's CommandStep runs it: $VARIABLES,
        # pipes and && work. Arguments (a hand-written graph may have some) are appended quoted.
        line = " ".join([str(definition.command), *(shlex.quote(a) for a in args)])
        return [*_SHELL, line]
    return [sys.executable, str(definition.script_name), *args]


def _parameters(run: PipelineRun, graph: PipelineGraph) -> dict[str, str]:
    values = {p.name: p.default_value for p in graph.parameters}
    values.update(run.parameters)
    return {name: wire_string(value) for name, value in values.items()}


def _argument(
    arg: LiteralArgument | DataArgument | ParameterArgument | InputArgument,
    run: PipelineRun,
    graph: PipelineGraph,
    data: Mapping[str, Path],
    inputs: Mapping[str, Path],
) -> str:
    if isinstance(arg, LiteralArgument):
        return arg.value
    if isinstance(arg, ParameterArgument):
        values = _parameters(run, graph)
        if arg.name not in values:
            raise StepFailed(f"The argument names parameter {arg.name!r}, which the pipeline does not declare.")
        return values[arg.name]
    if isinstance(arg, DataArgument):
        if arg.name not in data:
            raise StepFailed(f"The argument names PipelineData {arg.name!r}, which this step neither reads nor writes.")
        return str(data[arg.name])
    if arg.name not in inputs:
        raise StepFailed(f"The argument names input {arg.name!r}, which this step does not have.")
    return str(inputs[arg.name])
