"""A step's script imports the app's packages where Azure installs them, in a real step process.

On Azure, remote build installs ``requirements.txt`` into ``<app root>/.python_packages/lib/site-packages``,
not into the interpreter's site-packages; only the Functions worker puts that folder on its ``sys.path``.
These tests lay out such an app root in a tmp folder (no pip: a module written there, or the repository
``.venv``'s packages linked there) and run a step exactly as the worker does: ``step_environment``,
``step_argv`` and ``run_process``. Each also runs the same step with the ``PYTHONPATH`` steps had before
(amlpipe's folder alone) to show it fails there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

import pytest

import amlpipe
from shared.graph.model import parse_graph
from shared.orchestration.process import run_process
from shared.orchestration.step_process import SCRIPT_ROOT_ENV, step_argv, step_environment
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun

#: The folder holding ``amlpipe``: alone on a step's PYTHONPATH before the app's packages were added.
CLIENT_ROOT = str(Path(amlpipe.__file__).resolve().parent.parent)
SCRIPT = """\
import stepdep_probe
from amlpipe.core import Run
import jwt, requests
print("PROBE", stepdep_probe.VALUE, Run.__name__, jwt.__name__, requests.__name__)
"""


def app_root(tmp_path: Path) -> tuple[Path, Path]:
    """``<tmp>/wwwroot`` with ``stepdep_probe`` in its ``.python_packages``: (the root, its package folder)."""
    root = tmp_path / "wwwroot"
    packages = root / ".python_packages" / "lib" / "site-packages"
    packages.mkdir(parents=True)
    (packages / "stepdep_probe.py").write_text('VALUE = "from-app-packages"\n')
    return root, packages


def launch(src: Path, *, pythonpath: str | None = None) -> tuple[list[str], dict[str, str], int | None, str]:
    """Run ``probe.py`` in ``src`` as the worker runs a python_script step: (argv, env, exit code, output).

    ``pythonpath`` replaces the step's PYTHONPATH (the control run)."""
    graph = parse_graph({"steps": [{"name": "probe", "kind": "python_script", "script_name": "probe.py"}]})
    (definition,) = graph.steps
    run = PipelineRun(
        id="run-packages",
        experiment_name="packages",
        graph_id="g",
        status=RunStatus.RUNNING,
        creation_time=datetime.now(UTC),
        parameters={},
        data_paths={},
        total_run_steps=1,
        continue_on_step_failure=False,
    )
    env = step_environment(run, StepRun(run.id, "probe", attempt=1), graph, definition, {}, {})
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    argv = step_argv(run, graph, definition, {}, {}, src=src, env=env)
    output = bytearray()
    result = run_process(argv, cwd=src, env=env, timeout=60, sink=output.extend)
    return argv, env, result.returncode, output.decode(errors="replace")


def importable(python: str, module: str) -> bool:
    """Whether ``python`` alone (no PYTHONPATH) finds ``module``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    found = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True, timeout=60)
    return found.returncode == 0


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "work" / "src"
    folder.mkdir(parents=True)
    (folder / "probe.py").write_text(SCRIPT)
    return folder


def test_a_step_imports_a_module_of_the_app_roots_python_packages(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, packages = app_root(tmp_path)
    monkeypatch.setenv(SCRIPT_ROOT_ENV, str(root))
    assert not importable(sys.executable, "stepdep_probe")

    argv, env, code, output = launch(src)
    assert argv[0] == sys.executable
    assert env["PYTHONPATH"].split(os.pathsep) == [CLIENT_ROOT, str(packages)]
    assert code == 0, output
    assert "PROBE from-app-packages Run jwt requests" in output

    _, _, code, output = launch(src, pythonpath=CLIENT_ROOT)  # what a step got before
    assert code != 0 and "No module named 'stepdep_probe'" in output


@pytest.mark.timeout(300)
def test_with_a_bare_python_the_client_imports_from_the_app_packages_alone(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Azure: the interpreter has none of the app's packages (not jwt, not requests); remote build
    put them all in ``.python_packages`` (here: links to the ``.venv``'s, minus its ``.pth`` files)."""
    root, packages = app_root(tmp_path)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.suffix != ".pth" and entry.name not in ("__pycache__", "_distutils_hack", "stepdep_probe.py"):
            (packages / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    python = str(bare / "bin" / "python")
    assert not importable(python, "jwt") and not importable(python, "requests")
    monkeypatch.setattr(sys, "executable", python)  # the interpreter steps run with
    monkeypatch.setenv(SCRIPT_ROOT_ENV, str(root))

    argv, env, code, output = launch(src)
    assert argv[0] == python and env["PATH"].split(os.pathsep)[0] == str(bare / "bin")
    assert env["PYTHONPATH"].split(os.pathsep) == [CLIENT_ROOT, str(packages)]
    assert code == 0, output
    assert "PROBE from-app-packages Run jwt requests" in output

    (src / "probe.py").write_text("from amlpipe.core import Run\n")
    _, _, code, output = launch(src, pythonpath=CLIENT_ROOT)  # what a step got before
    assert code != 0 and "ModuleNotFoundError" in output
