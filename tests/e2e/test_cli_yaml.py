"""YAML pipeline files through the ``amlpipe`` CLI (a subprocess) against the real app on the local host:
a YAML pipeline is published and its run finishes; the DP-100 example in YAML publishes the graph its
Python publishes, and runs; a mistake in a YAML file is exit 2 with one line naming its YAML path."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from amlpipe.pipeline.core import PublishedPipeline
from tests.conftest import ROOT
from tests.e2e.conftest import RealApp, real_app
from tests.e2e.test_cli_runs import CONSUME, PRODUCE, Cli, _one_error_line

pytestmark = pytest.mark.integration

DP100 = ROOT / "examples" / "dp100"

# The two steps of test_cli_runs.py's Python pipeline, in YAML, the second as a command step.
HANDOVER = """\
parameters:
  greeting: hello
data:
  handover: {datastore: workspaceblobstore}
steps:
  - kind: python_script
    name: produce
    script_name: produce.py
    source_directory: steps
    outputs: [{data: handover}]
    arguments: [--out, {data: handover}]
    allow_reuse: false
  - kind: command
    name: consume
    command: [python, consume.py, --in, {data: handover}, --greeting, {parameter: greeting}]
    source_directory: steps
    allow_reuse: false
"""

MISTAKE = """\
data:
  handover: {}
steps:
  - kind: python_script
    script_name: produce.py
    outputs: [{data: handover}]
    arguments: [--out, {data: hand_over}]
"""


@pytest.fixture(scope="module")
def yaml_app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    with real_app(storage, tmp_path_factory.mktemp("cli-yaml-app"), "cli-yaml") as app:
        yield app


@pytest.fixture(scope="module")
def cli(yaml_app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI in a project folder holding the Owner's config and the YAML pipelines."""
    folder = tmp_path_factory.mktemp("cli-yaml")
    (folder / ".amlpipe").mkdir()
    (folder / ".amlpipe" / "config.json").write_text(yaml_app.config_path.read_text())
    (folder / "handover" / "steps").mkdir(parents=True)
    (folder / "handover" / "pipeline.yml").write_text(HANDOVER)
    (folder / "handover" / "steps" / "produce.py").write_text(PRODUCE)
    (folder / "handover" / "steps" / "consume.py").write_text(CONSUME)
    (folder / "mistake.yaml").write_text(MISTAKE)
    return Cli(yaml_app, folder)


def _dp100_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dp100_pipeline_e2e", DP100 / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_yaml_pipeline_is_published_and_its_run_finishes(cli: Cli) -> None:
    published = cli.json("pipeline", "publish", "handover/pipeline.yml", "--name", "yaml-handover", "--version", "1")
    assert published["name"] == "yaml-handover" and published["totalRunSteps"] == 2

    done = cli("run", "submit", published["id"], "-e", "yaml-e2e", "-p", "greeting=bonjour", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    run: dict[str, Any] = json.loads(done.stdout)
    assert run["status"] == "Finished" and run["parameters"] == {"greeting": "bonjour"}
    assert {s["name"]: s["status"] for s in run["steps"]} == {"produce": "Finished", "consume": "Finished"}
    logs = cli("run", "logs", run["id"], "--step", "consume")
    assert "read: payload" in logs.stdout and "greeting: bonjour" in logs.stdout


def test_the_dp100_yaml_publishes_the_graph_of_its_python_and_runs(cli: Cli, yaml_app: RealApp) -> None:
    ws = yaml_app.owner()
    example = _dp100_module()
    example.prerequisites(ws)
    # Published from another folder: the file's relative paths are its own.
    from_yaml = cli.json("pipeline", "publish", str(DP100 / "pipeline.yml"), "--name", "dp100-yaml")
    from_python = example.build_pipeline(ws).publish(name="dp100-python")
    assert PublishedPipeline.get(ws, from_yaml["id"]).get_graph() == from_python.get_graph()

    done = cli("run", "submit", from_yaml["id"], "-e", "dp100-yaml", "-p", "reg_rate=0.1", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "Finished"
    assert [s["status"] for s in run["steps"]] == ["Finished", "Finished"]


def test_a_mistake_in_a_yaml_file_is_exit_2_with_one_line_naming_its_yaml_path(cli: Cli) -> None:
    done = cli("pipeline", "publish", "mistake.yaml")
    assert done.returncode == 2
    line = _one_error_line(done)
    assert line.endswith(
        "mistake.yaml:7: steps[0].arguments[1]: unknown PipelineData 'hand_over'; defined: handover"
    ), line

    (cli.folder / "no-dataset.yml").write_text(
        "datasets:\n  raw:\n    name: not_registered\nsteps: [{kind: command, command: ls, inputs: [{dataset: raw}]}]\n"
    )
    done = cli("pipeline", "publish", "no-dataset.yml")
    assert done.returncode == 2
    assert "no-dataset.yml:3: datasets.raw.name: Cannot find dataset" in _one_error_line(done)
