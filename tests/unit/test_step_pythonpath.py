"""A step's PYTHONPATH without a process: amlpipe's folder, then the app's packages (Azure's remote build
puts them in ``<app root>/.python_packages``), never the Functions worker's folder nor the host's path.

Each test lays out an app root in a tmp folder as Azure does::

    /home/site/wwwroot                                    the app (AzureWebJobsScriptRoot)
    /home/site/wwwroot/.python_packages/lib/site-packages requirements.txt, installed by remote build
    /azure-functions-host/workers/python/3.11/LINUX/X64   the Python worker, its grpc and protobuf
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shared.orchestration import step_process
from shared.orchestration.step_process import SCRIPT_ROOT_ENV, step_pythonpath

VERSION = (3, 11)


def folder(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@pytest.fixture
def azure(tmp_path: Path) -> dict[str, str]:
    """An Azure-like layout: the app root, its package folders, the worker's folder, the interpreter's."""
    root = tmp_path / "home" / "site" / "wwwroot"
    worker = tmp_path / "azure-functions-host" / "workers" / "python" / "3.11" / "LINUX" / "X64"
    folder(worker / "azure_functions_worker")
    folder(worker / "grpc")
    return {
        "root": folder(root),
        "packages": folder(root / ".python_packages" / "lib" / "site-packages"),
        "versioned": folder(root / ".python_packages" / "lib" / "python3.11" / "site-packages"),
        "worker": str(worker),
        "stdlib": folder(tmp_path / "usr" / "local" / "lib" / "python3.11"),
        "site": folder(tmp_path / "usr" / "local" / "lib" / "python3.11" / "site-packages"),
        "placeholder": folder(tmp_path / "tmp" / "functions" / "standby" / "wwwroot"),
    }


def pythonpath(environ: dict[str, str], path: list[str], client_root: str, *own: str) -> list[str]:
    return step_pythonpath(environ, path, client_root=client_root, interpreter=own, version=VERSION)


def test_on_azure_the_app_packages_follow_amlpipe_and_the_worker_folder_is_left_out(azure: dict[str, str]) -> None:
    # The worker's sys.path on Linux Consumption (the placeholder folder first), then the interpreter's.
    worker_path = [azure["placeholder"], azure["packages"], azure["worker"], azure["root"]]
    worker_path += [azure["stdlib"], azure["site"]]
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, worker_path, azure["root"], azure["stdlib"], azure["site"])
    assert found == [azure["root"], azure["packages"], azure["versioned"]]


def test_the_package_folders_count_even_when_the_worker_did_not_add_them(azure: dict[str, str]) -> None:
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, [], azure["root"])
    assert found == [azure["root"], azure["packages"], azure["versioned"]]


def test_only_the_interpreters_python_version_folder_is_used(azure: dict[str, str]) -> None:
    other = folder(Path(azure["root"]) / ".python_packages" / "lib" / "python3.10" / "site-packages")
    found = step_pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, [], client_root=azure["root"], version=(3, 12))
    assert found == [azure["root"], azure["packages"]]
    assert other not in found


def test_without_packages_or_app_entries_it_is_amlpipes_folder_alone(tmp_path: Path) -> None:
    root = folder(tmp_path / "repo")
    elsewhere = folder(tmp_path / "elsewhere")
    assert pythonpath({}, ["", elsewhere, root], root) == [root]


def test_without_the_setting_the_app_root_is_the_folder_holding_amlpipe(azure: dict[str, str]) -> None:
    assert pythonpath({}, [], azure["root"]) == [azure["root"], azure["packages"], azure["versioned"]]
    assert pythonpath({SCRIPT_ROOT_ENV: "  "}, [], azure["root"]) == [
        azure["root"],
        azure["packages"],
        azure["versioned"],
    ]


def test_the_setting_names_the_app_root_where_amlpipe_lives_elsewhere(azure: dict[str, str], tmp_path: Path) -> None:
    client = folder(tmp_path / "client")
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, [azure["root"]], client)
    assert found == [client, azure["packages"], azure["versioned"], azure["root"]]


def test_entries_under_the_app_root_are_kept_in_order_and_the_hosts_others_are_not(
    azure: dict[str, str], tmp_path: Path
) -> None:
    root = Path(azure["root"])
    vendor, lib = folder(root / "vendor"), folder(root / "src" / "lib")
    host_only = folder(tmp_path / "host-only")  # the host's PYTHONPATH, outside the app
    path = [host_only, lib, "", "relative/dir", str(root / "missing"), vendor, lib, azure["worker"]]
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, path, azure["root"])
    assert found == [azure["root"], azure["packages"], azure["versioned"], lib, vendor]


def test_a_worker_folder_inside_the_app_root_is_still_left_out(azure: dict[str, str]) -> None:
    root = Path(azure["root"])
    by_layout = folder(root / "workers" / "python" / "3.11" / "LINUX" / "X64")  # the host's own layout
    by_content = folder(root / "bundled-worker")
    folder(Path(by_content) / "azure_functions_worker")
    proxy = folder(root / "proxy")
    folder(Path(proxy) / "proxy_worker")  # the 3.13+ worker
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, [by_layout, by_content, proxy], azure["root"])
    assert found == [azure["root"], azure["packages"], azure["versioned"]]


def test_the_apps_package_folder_is_kept_even_if_it_holds_the_worker_package(azure: dict[str, str]) -> None:
    folder(Path(azure["packages"]) / "azure_functions_worker")  # an old requirements.txt that lists it
    found = pythonpath({SCRIPT_ROOT_ENV: azure["root"]}, [azure["packages"]], azure["root"])
    assert found == [azure["root"], azure["packages"], azure["versioned"]]


def test_the_interpreters_own_folders_inside_the_app_root_are_left_out(tmp_path: Path) -> None:
    # Locally: the repository's .venv is under the repository root, and the step's Python is that venv's.
    root = Path(folder(tmp_path / "repo"))
    venv_lib = folder(root / ".venv" / "lib" / "python3.11")
    venv_site = folder(root / ".venv" / "lib" / "python3.11" / "site-packages")
    found = pythonpath({}, [str(root), venv_site, venv_lib], str(root), venv_lib, venv_site)
    assert found == [str(root)]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_entries_are_compared_by_their_real_paths(tmp_path: Path) -> None:
    real = Path(folder(tmp_path / "real" / "wwwroot"))
    packages = folder(real / ".python_packages" / "lib" / "site-packages")
    vendor = folder(real / "vendor")
    link = tmp_path / "link"
    link.symlink_to(real)
    # The setting names the link; the worker's sys.path has the real folders (or the other way round).
    found = pythonpath({SCRIPT_ROOT_ENV: str(link)}, [packages, vendor, str(link / "vendor")], str(real))
    assert found == [str(real), str(link / ".python_packages" / "lib" / "site-packages"), vendor]


def test_by_default_this_pythons_own_folders_are_left_out(tmp_path: Path) -> None:
    own = [os.path.realpath(p) for p in step_process._interpreter_paths()]
    stdlib = os.path.realpath(Path(os.__file__).parent)
    assert stdlib in own
    # With the whole filesystem as the app root, every sys.path entry is a candidate: the
    # interpreter's standard library and site-packages are still left out.
    found = step_pythonpath({SCRIPT_ROOT_ENV: "/"}, sys.path, client_root=folder(tmp_path / "repo"))
    assert not [f for f in found if any(os.path.realpath(f).startswith(o) for o in own)]
