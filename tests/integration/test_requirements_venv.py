"""``requirements.txt`` is all the Function App needs: a clean venv built from it alone imports
``function_app``, indexes the same functions with the same bindings as the repository's ``.venv``, and
imports every engine module and every third-party module they import, lazily or not.

Azure installs ``requirements.txt`` (remote build) and nothing else, and step scripts run in the app's
Python, so ``amlpipe.core`` and ``amlpipe.data`` (``Run.get_context()``, datasets) must import there too.
The venv has no system site packages and never sees the repository's ``.venv``. It is built with the
interpreter running the tests (``sys.executable``, the ``.venv``'s Python, so the same Python version as
the ``.venv``; ``venv`` bases it on that interpreter's own installation) and removed at the end (about
300 MB; pytest keeps the last three base temporary folders).

pip needs the package index: it is given one retry and a 15 s timeout, so without network the test fails
within a minute or so, saying so, instead of stalling the suite on pip's default retries.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

#: What the app's Python imports: the app, the engine, and the client modules step scripts use.
APP_SOURCES = ("function_app.py", "functions", "shared", "amlpipe/core", "amlpipe/data", "amlpipe/exceptions.py")
FIRST_PARTY = {"function_app", "functions", "shared", "amlpipe"}

#: Runs in a venv's Python with the repository root as its working directory.
INDEX_SCRIPT = r"""
import importlib, json, os, sys, traceback

root, modules = sys.argv[1], json.loads(sys.argv[2])
os.chdir(root)
sys.path.insert(0, root)
failures = {}
for name in modules:
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=3)
functions = []
if "function_app" not in failures:
    for function in sys.modules["function_app"].app.get_functions():
        functions.append(
            {
                "name": function.get_function_name(),
                "trigger": function.get_trigger().get_binding_name(),
                "bindings": len(function.get_bindings()),
                "json": json.loads(function.get_function_json()),
            }
        )
leaks = sorted(
    name for name, module in list(sys.modules.items())
    if os.path.abspath(getattr(module, "__file__", None) or "/").startswith(os.path.join(root, ".venv") + os.sep)
)
print(json.dumps({"failures": failures, "functions": functions, "leaks": leaks}))
"""


def app_modules() -> list[str]:
    """Every module of ``APP_SOURCES``, then every third-party module they import anywhere (function
    bodies too: boto3, pandas), except under ``if TYPE_CHECKING:``."""
    own: list[str] = []
    third_party: set[str] = set()
    for source in APP_SOURCES:
        path = ROOT / source
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            parts = list(file.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            own.append(".".join(parts))
            third_party |= {name for name in _imports(file) if name.split(".")[0] not in FIRST_PARTY}
    return own + sorted(third_party)


def _imports(file: Path) -> set[str]:
    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
                for statement in node.orelse:
                    self.visit(statement)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level == 0 and node.module:
                found.add(node.module)

    Imports().visit(ast.parse(file.read_text(encoding="utf-8")))
    return {name for name in found if name.split(".")[0] not in sys.stdlib_module_names}


def app_environment() -> dict[str, str]:
    """The environment the Functions host gives the app: local.settings.json's values, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    values = json.loads((ROOT / "local.settings.json").read_text(encoding="utf-8"))["Values"]
    return env | {str(k): str(v) for k, v in values.items()}


def index_app(python: Path | str, modules: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), "-c", INDEX_SCRIPT, str(ROOT), json.dumps(modules)],
        cwd=ROOT,
        env=app_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


#: pip's words when it cannot reach the package index (connection, DNS, proxy, TLS, timeout).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|ConnectTimeoutError|Read timed out|ProxyError|"
    r"SSLError|No route to host|Connection refused|ConnectionResetError"
)
#: Bounded retries and timeout, so an unreachable index fails fast (pip's defaults: 5 retries, 15 s).
PIP_OPTIONS = ("--disable-pip-version-check", "--retries", "1", "--timeout", "15")


def build_venv(folder: Path, requirements: Path) -> tuple[Path, float]:
    """A venv in ``folder`` with ``requirements`` installed, and the seconds it took.

    Built with ``sys.executable``: the Python version of the repository's ``.venv``, which runs the tests.
    """
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *PIP_OPTIONS, "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = install.stdout + install.stderr
    if install.returncode != 0 and _UNREACHABLE.search(output):
        pytest.fail(
            "pip could not reach the package index to install requirements.txt (no network, a proxy or DNS"
            " problem?); this test needs PyPI (or PIP_INDEX_URL). pip said:\n" + output[-3000:],
            pytrace=False,
        )
    assert install.returncode == 0, output
    return python, time.monotonic() - started


def check_requirements(requirements: Path, venv: Path) -> float:
    """Build a clean venv from ``requirements`` and assert the app runs there as in ``.venv``; the build time.

    The venv is deleted at the end, whatever the outcome."""
    modules = app_modules()
    expected = index_app(sys.executable, modules)
    assert expected["failures"] == {}, "the repository's .venv cannot import the app's modules"
    try:
        python, seconds = build_venv(venv, requirements)
        found = index_app(python, modules)
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    assert found["leaks"] == []
    assert found["failures"] == {}, "requirements.txt misses what these need:\n" + "\n".join(found["failures"].values())
    names = [f["name"] for f in found["functions"]]
    assert names and sorted(names) == sorted(f["name"] for f in expected["functions"])
    assert all(f["bindings"] >= 1 and f["trigger"] for f in found["functions"])
    by_name = {f["name"]: f["json"] for f in expected["functions"]}
    for function in found["functions"]:
        assert function["json"] == by_name[function["name"]], function["name"]
    return seconds


@pytest.mark.timeout(1200)
def test_a_clean_venv_from_requirements_txt_alone_runs_the_app(tmp_path: Path) -> None:
    seconds = check_requirements(ROOT / "requirements.txt", tmp_path / "venv")
    print(f"clean venv from requirements.txt: {seconds:.1f} s")  # shown with -s / -rP


def test_the_module_scan_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    modules = app_modules()
    assert {"function_app", "shared.storage", "amlpipe.core.run", "functions.health"} <= set(modules)
    assert {"boto3.session", "pandas", "azure.identity"} <= set(modules)  # imported inside functions only
    assert not any(name.startswith("mypy_boto3") for name in modules)  # types, under TYPE_CHECKING
