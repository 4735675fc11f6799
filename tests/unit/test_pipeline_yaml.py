"""Pipelines defined in YAML (``amlpipe.pipeline.pipeline_from_yaml``): every step kind and reference
becomes the SDK objects the equivalent Python builds (compared through ``Pipeline.to_graph()``), every
mistake is reported at its YAML path and line, and object-building tags are refused.

No service is reached: the workspace is a real ``Workspace`` whose client answers from a dict.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import amlpipe.pipeline
from amlpipe._client import ServiceClient
from amlpipe.cli._common import CliError, ExitCode, classify
from amlpipe.cli._loader import LOADERS, pipeline_from_file
from amlpipe.core import Dataset
from amlpipe.core.authentication import ServicePrincipalAuthentication
from amlpipe.core.environment import CondaDependencies, Environment
from amlpipe.core.runconfig import RunConfiguration
from amlpipe.core.workspace import Workspace
from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.exceptions import ServiceException
from amlpipe.pipeline import PipelineYamlError, pipeline_from_yaml
from amlpipe.pipeline import _yaml_schema as schema
from amlpipe.pipeline._yaml import pipeline_from_text
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineParameter
from amlpipe.pipeline.steps import CommandStep, DataTransferStep, EstimatorStep, PythonScriptStep
from amlpipe.train.estimator import Estimator
from tests.conftest import ROOT

DP100 = ROOT / "examples" / "dp100"
ENDPOINT = "http://unit.invalid"


class FakeService(ServiceClient):
    """Answers GETs of datasets and datastores from dicts; records every request; never sends one."""

    def __init__(self, datasets: Mapping[str, int], *, failure: int | None = None) -> None:
        super().__init__(ENDPOINT, ServicePrincipalAuthentication("tenant", "sp", "password", endpoint=ENDPOINT))
        self.datasets = dict(datasets)
        self.failure = failure
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        url: str | None = None,
    ) -> Any:
        self.calls.append((method, path, dict(params or {})))
        if self.failure is not None:
            raise ServiceException("the service failed", status_code=self.failure, error_code="ServiceError")
        kind, _, name = path.partition("/")
        if method == "GET" and kind == "datastores":
            return {"name": name, "datastoreType": "AzureBlob", "isDefault": name == "workspaceblobstore"}
        if method == "GET" and kind == "datasets" and name in self.datasets:
            asked = (params or {}).get("version", "latest")
            version = self.datasets[name] if asked == "latest" else int(asked)
            if version > self.datasets[name]:
                raise ServiceException(f"no version {version}", status_code=404, error_code="NotFound")
            definition = {"kind": "Tabular", "paths": [{"datastore": "workspaceblobstore", "path": "**"}]}
            return {"name": name, "version": version, "id": f"{name}:{version}", "definition": definition}
        raise ServiceException(f"{path} does not exist", status_code=404, error_code="NotFound")


def _workspace(datasets: Mapping[str, int] | None = None, *, failure: int | None = None) -> Workspace:
    ws = Workspace(auth=ServicePrincipalAuthentication("tenant", "sp", "password", endpoint=ENDPOINT))
    ws._client = FakeService(datasets or {"raw_dataset": 3}, failure=failure)
    return ws


def _calls(ws: Workspace) -> list[tuple[str, str, dict[str, Any]]]:
    client = ws._client
    assert isinstance(client, FakeService)
    return client.calls


@pytest.fixture
def ws() -> Workspace:
    return _workspace()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a scripts/ folder; the tests run from elsewhere (paths are the file's)."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "requirements.txt").write_text("pandas>=2\nscikit-learn==1.5  # trains\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def _graph(pipeline: Pipeline) -> tuple[dict[str, Any], dict[str, str | None]]:
    graph, sources = pipeline.to_graph()
    return graph.to_wire(), sources


def _yaml(text: str, ws: Any, folder: Path) -> Pipeline:
    return pipeline_from_text(text, ws, folder=folder, source="p.yml")


def _problems(text: str, ws: Any = None, folder: Path = Path("/nowhere")) -> list[str]:
    with pytest.raises(PipelineYamlError) as caught:
        _yaml(text, ws, folder)
    return [p.render("p.yml") for p in caught.value.problems]


# -- the same graph as the Python ------------------------------------------------------------------


def test_the_dp100_yaml_example_builds_the_graph_of_the_python_example(ws: Workspace) -> None:
    spec = importlib.util.spec_from_file_location("dp100_pipeline", DP100 / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        from_python = module.build_pipeline(ws)
    finally:
        sys.modules.pop(spec.name, None)
    from_yaml = pipeline_from_yaml(DP100 / "pipeline.yml", ws)

    assert _graph(from_yaml) == _graph(from_python)
    graph, sources = from_yaml.to_graph()
    assert [s.name for s in graph.steps] == ["prepare data", "train model"]
    assert graph.step("prepare data").inputs[0].dataset_version == 3  # type: ignore[union-attr]
    assert set(sources.values()) == {str(DP100 / "scripts")}


def test_a_python_script_step_maps_every_key(ws: Workspace, folder: Path) -> None:
    text = """
pipeline:
  description: every key
  default_datastore: blob_store
parameters:
  rate: 0.5
  nodes: 2
data:
  out: {datastore: blob_store, output_mode: upload, output_path_on_compute: outputs/x, output_overwrite: true,
        is_directory: true, pipeline_output_name: final, output_name: result}
steps:
  - kind: python_script
    name: first
    script_name: first.py
    source_directory: scripts
    compute_target: cpu
    arguments: [--rate, {parameter: rate}, --out, {data: out}, 3, 1.5, true]
    outputs: [{data: out}]
    params: {fixed: text, tuned: {parameter: rate}}
    runconfig:
      framework: Python
      target: ignored-when-compute_target-is-set
      node_count: 2
      max_run_duration_seconds: 600
      environment_variables: {MODE: fast}
      environment:
        name: sklearn
        version: "3"
        environment_variables: {EXTRA: "1"}
        conda_dependencies:
          conda_packages: [scikit-learn=1.5]
          pip_packages: [pandas>=2]
          python_version: "3.11"
          channels: [conda-forge]
    runconfig_pipeline_params: {NodeCount: {parameter: nodes}}
    allow_reuse: false
    version: v2
    retry_settings: {max_retries: 2, backoff_seconds: 1.5}
  - kind: python_script
    script_name: second.py
    source_directory: scripts
    run_after: [first]
"""
    rate = PipelineParameter("rate", default_value=0.5)
    nodes = PipelineParameter("nodes", default_value=2)
    out = PipelineData(
        "out",
        datastore="blob_store",
        output_name="result",
        output_mode="upload",
        output_path_on_compute="outputs/x",
        output_overwrite=True,
        is_directory=True,
        pipeline_output_name="final",
    )
    env = Environment("sklearn")
    env.version = "3"
    env.environment_variables = {"EXTRA": "1"}
    env.python.conda_dependencies = CondaDependencies(["scikit-learn=1.5"], ["pandas>=2"], "3.11", ["conda-forge"])
    runconfig = RunConfiguration(framework="Python")
    runconfig.environment = env
    runconfig.target = "ignored-when-compute_target-is-set"
    runconfig.node_count = 2
    runconfig.max_run_duration_seconds = 600
    runconfig.environment_variables = {"MODE": "fast"}
    first = PythonScriptStep(
        "first.py",
        name="first",
        arguments=["--rate", rate, "--out", out, 3, 1.5, True],
        compute_target="cpu",
        runconfig=runconfig,
        runconfig_pipeline_params={"NodeCount": nodes},
        outputs=[out],
        params={"fixed": "text", "tuned": rate},
        source_directory=str(folder / "scripts"),
        allow_reuse=False,
        version="v2",
    )
    first.set_retry_settings(2, 1.5)
    second = PythonScriptStep("second.py", source_directory=str(folder / "scripts"))
    second.run_after(first)
    expected = Pipeline(ws, [first, second], description="every key", default_datastore="blob_store")

    built = _yaml(text, ws, folder)
    assert _graph(built) == _graph(expected)
    graph, _ = built.to_graph()
    assert graph.step("second.py").run_after == ("first",)
    assert graph.step("first").runconfig.environment is not None
    assert graph.step("first").retry_settings is not None


def test_a_command_step_as_a_string_and_as_a_list(ws: Workspace, folder: Path) -> None:
    text = """
parameters: {greeting: hello}
data: {words: {}}
steps:
  - {kind: command, command: "python make.py --n 3", source_directory: scripts, outputs: [{data: words}],
     params: {N: 3}}
  - kind: command
    name: shout
    command: [python, shout.py, {data: words}, {parameter: greeting}]
    source_directory: scripts
    runconfig: {environment_variables: {LOUD: "yes"}}
"""
    greeting = PipelineParameter("greeting", default_value="hello")
    words = PipelineData("words")
    make = CommandStep(
        "python make.py --n 3", source_directory=str(folder / "scripts"), outputs=[words], params={"N": 3}
    )
    runconfig = RunConfiguration()
    runconfig.environment_variables = {"LOUD": "yes"}
    shout = CommandStep(
        ["python", "shout.py", words, greeting],
        name="shout",
        runconfig=runconfig,
        source_directory=str(folder / "scripts"),
    )
    assert _graph(_yaml(text, ws, folder)) == _graph(Pipeline(ws, [make, shout]))
    assert [s.name for s in _yaml(text, ws, folder).steps] == ["python", "shout"]


def test_an_estimator_step_with_packages_and_one_with_an_environment_definition(ws: Workspace, folder: Path) -> None:
    text = """
steps:
  - kind: estimator
    name: with packages
    estimator:
      source_directory: scripts
      entry_script: train.py
      compute_target: cpu
      node_count: 2
      conda_packages: [numpy]
      pip_packages: [joblib]
      pip_requirements_file: requirements.txt
      environment_variables: {SEED: "7"}
      max_run_duration_seconds: 60
    estimator_entry_script_arguments: []
  - kind: estimator
    name: with environment
    estimator:
      source_directory: scripts
      entry_script: train.py
      environment_definition: {name: registered, version: "2"}
    estimator_entry_script_arguments: [--fast]
    compute_target: gpu
    allow_reuse: false
    version: "1"
"""
    scripts = str(folder / "scripts")
    packaged = Estimator(
        scripts,
        compute_target="cpu",
        entry_script="train.py",
        node_count=2,
        conda_packages=["numpy"],
        pip_packages=["joblib"],
        pip_requirements_file="requirements.txt",
        environment_variables={"SEED": "7"},
        max_run_duration_seconds=60,
    )
    registered = Environment("registered")
    registered.version = "2"
    defined = Estimator(scripts, entry_script="train.py", environment_definition=registered)
    expected = Pipeline(
        ws,
        [
            EstimatorStep("with packages", packaged, estimator_entry_script_arguments=[]),
            EstimatorStep(
                "with environment",
                defined,
                estimator_entry_script_arguments=["--fast"],
                compute_target="gpu",
                allow_reuse=False,
                version="1",
            ),
        ],
    )
    built = _yaml(text, ws, folder)
    assert _graph(built) == _graph(expected)
    environment = built.to_graph()[0].step("with packages").runconfig.environment
    assert environment is not None and environment.pip_packages == ("pandas>=2", "scikit-learn==1.5", "joblib")


def test_data_transfer_steps_copy_between_data_references_and_pipeline_data(ws: Workspace, folder: Path) -> None:
    text = """
data_references:
  landing: {datastore: s3_store, path_on_datastore: incoming/}
  archive: {datastore: blob_store, path_on_datastore: archive/today}
data: {copied: {is_directory: true}}
steps:
  - kind: data_transfer
    name: fetch
    source_data_reference: {data_reference: landing}
    destination_data_reference: {data: copied}
    source_reference_type: directory
    destination_reference_type: directory
    compute_target: copier
    allow_reuse: false
  - kind: data_transfer
    name: keep
    source_data_reference: {data: copied, mode: download}
    destination_data_reference: {data_reference: archive}
"""
    landing = DataReference("s3_store", data_reference_name="landing", path_on_datastore="incoming/")
    archive = DataReference("blob_store", data_reference_name="archive", path_on_datastore="archive/today")
    copied = PipelineData("copied", is_directory=True)
    fetch = DataTransferStep(
        "fetch",
        source_data_reference=landing,
        destination_data_reference=copied,
        compute_target="copier",
        source_reference_type="directory",
        destination_reference_type="directory",
        allow_reuse=False,
    )
    keep = DataTransferStep("keep", source_data_reference=copied.as_download(), destination_data_reference=archive)
    built = _yaml(text, ws, folder)
    assert _graph(built) == _graph(Pipeline(ws, [fetch, keep]))
    assert built.to_graph()[1] == {"fetch": None, "keep": None}


def test_every_kind_of_reference_in_arguments_and_inputs(folder: Path) -> None:
    ws = _workspace({"titanic": 4, "diabetes": 2})
    text = """
parameters:
  train_path: {datastore: blob_store, path_on_datastore: titanic/train.csv}
data: {features: {}}
datasets:
  titanic: {name: titanic}
  diabetes_files: {name: diabetes, version: 1, mode: download, path_on_compute: data/diabetes}
  mounted: {name: diabetes, mode: mount}
data_references:
  raw: {datastore: blob_store, path_on_datastore: raw, mode: download, path_on_compute: raw, overwrite: true}
steps:
  - kind: python_script
    name: make
    script_name: make.py
    source_directory: scripts
    inputs: [{dataset: titanic}, {dataset: mounted}, {parameter: train_path}]
    arguments:
      - {dataset: diabetes_files}
      - {data_reference: raw}
      - {parameter: train_path, mode: download, path_on_compute: train.csv, overwrite: true}
      - {parameter: train_path}
      - {data: features}
    outputs: [{data: features}]
  - kind: python_script
    name: use
    script_name: use.py
    source_directory: scripts
    inputs: [{data: features, input_name: as_mounted}]
    arguments: [{data: features, mode: download, input_name: copy, path_on_compute: feats, overwrite: true}]
"""
    train_path = PipelineParameter("train_path", DataPath("blob_store", "titanic/train.csv"))
    features = PipelineData("features")
    titanic = Dataset.get_by_name(ws, "titanic").as_named_input("titanic")
    diabetes = Dataset.get_by_name(ws, "diabetes", 1).as_named_input("diabetes_files").as_download("data/diabetes")
    mounted = Dataset.get_by_name(ws, "diabetes").as_named_input("mounted").as_mount()
    raw = DataReference("blob_store", "raw", "raw", mode="download", path_on_compute="raw", overwrite=True)
    scripts = str(folder / "scripts")
    make = PythonScriptStep(
        "make.py",
        name="make",
        source_directory=scripts,
        inputs=[titanic, mounted, (train_path, DataPathComputeBinding())],
        arguments=[
            diabetes,
            raw,
            (train_path, DataPathComputeBinding("download", "train.csv", True)),
            train_path,
            features,
        ],
        outputs=[features],
    )
    use = PythonScriptStep(
        "use.py",
        name="use",
        source_directory=scripts,
        inputs=[features.as_mount("as_mounted")],
        arguments=[features.as_download("copy", "feats", True)],
    )
    built = _yaml(text, ws, folder)
    assert _graph(built) == _graph(Pipeline(ws, [make, use]))
    inputs = {i.name: i for i in built.to_graph()[0].step("make").inputs}
    assert inputs["titanic"].dataset_version == 4 and inputs["diabetes_files"].mode == "download"  # type: ignore[union-attr]


def test_one_object_per_declaration_orders_a_consumer_listed_first_after_its_producer(
    ws: Workspace, folder: Path
) -> None:
    text = """
parameters: {rate: 0.1}
data: {d: {}}
steps:
  - {kind: python_script, name: use, script_name: b.py, inputs: [{data: d}], arguments: [{parameter: rate}]}
  - {kind: python_script, name: make, script_name: a.py, outputs: [{data: d}], arguments: [{parameter: rate}]}
"""
    built = _yaml(text, ws, folder)
    graph, _ = built.to_graph()
    assert [s.name for s in graph.steps] == ["make", "use"]
    assert graph.edges() == [("make", "use")]
    assert [p.name for p in graph.parameters] == ["rate"]


def test_relative_paths_are_the_files_and_the_default_source_directory_is_its_folder(
    ws: Workspace, folder: Path
) -> None:
    (folder / "pipeline.yml").write_text(
        """
steps:
  - {kind: python_script, script_name: a.py, source_directory: scripts}
  - kind: python_script
    script_name: b.py
    runconfig:
      environment: {name: from-file, pip_requirements_file: scripts/requirements.txt}
"""
    )
    pipeline = pipeline_from_yaml(folder / "pipeline.yml", ws)
    graph, sources = pipeline.to_graph()
    assert sources == {"a.py": str(folder / "scripts"), "b.py": str(folder)}
    environment = graph.step("b.py").runconfig.environment
    assert environment is not None and environment.pip_packages == ("pandas>=2", "scikit-learn==1.5")

    (folder / "other.yml").write_text(
        "pipeline: {default_source_directory: scripts}\nsteps: [{kind: python_script, script_name: c.py}]\n"
    )
    assert pipeline_from_yaml(folder / "other.yml", ws).to_graph()[1] == {"c.py": str(folder / "scripts")}


# -- errors name their YAML path ------------------------------------------------------------------

ERRORS = [
    pytest.param(
        "data: {prepped: {}}\nsteps:\n  - kind: python_script\n    script_name: a.py\n"
        "    arguments: [--in, {data: prep}]\n",
        "p.yml:5: steps[0].arguments[1]: unknown PipelineData 'prep'; defined: prepped",
        id="unknown-pipeline-data",
    ),
    pytest.param(
        "steps:\n  - {kind: python_script, script_name: a.py, arguments: [{parameter: rate}]}\n",
        "p.yml:2: steps[0].arguments[0]: unknown PipelineParameter 'rate'; "
        "defined: none (declare it under parameters:)",
        id="unknown-parameter",
    ),
    pytest.param(
        "steps:\n  - {kind: python_script, script_name: a.py, inputs: [{dataset: raw}]}\n",
        "p.yml:2: steps[0].inputs[0]: unknown dataset 'raw'; defined: none (declare it under datasets:)",
        id="unknown-dataset",
    ),
    pytest.param(
        "steps:\n  - kind: data_transfer\n    name: t\n    source_data_reference: {data_reference: src}\n"
        "    destination_data_reference: {data_reference: src}\n",
        "p.yml:4: steps[0].source_data_reference: unknown data reference 'src'; defined: none",
        id="unknown-data-reference",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_nme: a.py\n",
        "p.yml:3: steps[0].script_nme: unknown key 'script_nme' (did you mean 'script_name'?); expected one of: kind,",
        id="unknown-step-key",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_nme: a.py\n",
        "p.yml:2: steps[0].script_name: required key is missing",
        id="missing-key",
    ),
    pytest.param(
        "stepz: []\n",
        "p.yml:1: stepz: unknown key 'stepz' (did you mean 'steps'?); expected one of: pipeline, parameters, data, "
        "datasets, data_references, steps",
        id="unknown-section",
    ),
    pytest.param("pipeline: {}\n", "p.yml:1: steps: required key is missing", id="no-steps"),
    pytest.param("steps: []\n", "p.yml:1: steps: must not be empty", id="empty-steps"),
    pytest.param(
        "steps:\n  - {kind: python, script_name: a.py}\n",
        "p.yml:2: steps[0].kind: unknown step kind 'python'; expected one of: python_script, command, estimator, "
        "data_transfer",
        id="unknown-kind",
    ),
    pytest.param(
        "steps:\n  - {script_name: a.py}\n",
        "p.yml:2: steps[0].kind: required key is missing; one of: python_script, command, estimator, data_transfer",
        id="missing-kind",
    ),
    pytest.param("steps: [5]\n", "p.yml:1: steps[0]: a step is a mapping with a kind", id="step-not-a-mapping"),
    pytest.param(
        "steps:\n  - {kind: python_script, script_name: a.py, version: 1.0}\n",
        "p.yml:2: steps[0].version: expected a string, got 1.0 (quote it to make it a string)",
        id="number-for-a-string",
    ),
    pytest.param(
        "steps:\n  - {kind: python_script, script_name: a.py, allow_reuse: maybe}\n",
        "p.yml:2: steps[0].allow_reuse: expected true or false, got 'maybe'",
        id="bad-bool",
    ),
    pytest.param(
        "data:\n  d:\n    output_mode: copy\nsteps: [{kind: command, command: ls, outputs: [{data: d}]}]\n",
        "p.yml:3: data.d.output_mode: expected 'mount' or 'upload', got 'copy'",
        id="bad-enum",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_name: a.py\n    runconfig:\n      environment:\n"
        "        name: e\n        conda_dependencies: {pip_pkgs: [x]}\n",
        "p.yml:7: steps[0].runconfig.environment.conda_dependencies.pip_pkgs: unknown key 'pip_pkgs' "
        "(did you mean 'pip_packages'?); expected one of: conda_packages, pip_packages, python_version, channels",
        id="nested-unknown-key",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_name: a.py\n    runconfig:\n      environment:\n"
        "        name: e\n        conda_dependencies: {}\n        pip_requirements_file: r.txt\n",
        "p.yml:5: steps[0].runconfig.environment: give one of conda_dependencies, pip_requirements_file and "
        "conda_specification_file; got conda_dependencies and pip_requirements_file",
        id="two-package-sources",
    ),
    pytest.param(
        'parameters:\n  text: "two\\nlines"\nsteps: [{kind: command, command: ls}]\n',
        "p.yml:2: parameters.text: Default value of PipelineParameter 'text' is a multi-line string",
        id="sdk-refuses-a-parameter",
    ),
    pytest.param(
        "data:\n  bad-name: {}\nsteps: [{kind: command, command: ls}]\n",
        "p.yml:2: data.bad-name: PipelineData name [bad-name] is not a valid name",
        id="sdk-refuses-a-data-name",
    ),
    pytest.param(
        "parameters: {rate: 0.1}\nsteps:\n  - {kind: command, command: ls, inputs: [{parameter: rate}]}\n",
        "p.yml:3: steps[0].inputs[0]: parameter 'rate' is of type float; only a datapath parameter",
        id="scalar-parameter-as-input",
    ),
    pytest.param(
        "parameters: {rate: 0.1}\nsteps:\n"
        "  - {kind: command, command: ls, params: {r: {parameter: rate, mode: mount}}}\n",
        "p.yml:3: steps[0].params.r: mode, path_on_compute and overwrite are for a datapath parameter read as an input",
        id="binding-on-a-params-value",
    ),
    pytest.param(
        "data: {d: {}}\nsteps:\n  - {kind: command, command: ls, outputs: [{data: d, mode: download}]}\n",
        "p.yml:3: steps[0].outputs[0]: mode, input_name, path_on_compute and overwrite are for data read as an input",
        id="view-of-an-output",
    ),
    pytest.param(
        "data: {d: {}}\nsteps:\n  - {kind: command, command: ls, inputs: [{data: d, path_on_compute: x}]}\n",
        "p.yml:3: steps[0].inputs[0]: path_on_compute and overwrite need mode: download",
        id="path-on-a-mount",
    ),
    pytest.param(
        "datasets: {raw: {name: raw_dataset}}\nsteps:\n  - {kind: command, command: ls, outputs: [{dataset: raw}]}\n",
        "p.yml:3: steps[0].outputs[0]: an output cannot be {dataset: NAME}; it is one of: {data: NAME}",
        id="dataset-as-output",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls, inputs: [{data: a, dataset: b}]}\n",
        "p.yml:2: steps[0].inputs[0]: a reference names one thing, with one of: {data: NAME}, {parameter: NAME}, "
        "{dataset: NAME}, {data_reference: NAME}; got the keys 'data', 'dataset'",
        id="two-references",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls, inputs: [{pipeline_data: a}]}\n",
        "p.yml:2: steps[0].inputs[0]: a reference names one thing, with one of:",
        id="no-reference-key",
    ),
    pytest.param(
        "data: {d: {}}\nsteps:\n  - {kind: command, command: ls, inputs: [{data: d, mdoe: download}]}\n",
        "p.yml:3: steps[0].inputs[0].mdoe: unknown key 'mdoe' (did you mean 'mode'?); expected one of: data, mode, "
        "input_name, path_on_compute, overwrite",
        id="unknown-reference-key",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_name: a.py\n    arguments: [--x, null]\n",
        "p.yml:4: steps[0].arguments[1]: an argument is one of: a string, number or true/false, {data: NAME}, "
        "{parameter: NAME}, {dataset: NAME}, {data_reference: NAME}; not null",
        id="null-argument",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls, runconfig_pipeline_params: {NodeCount: 3}}\n",
        "p.yml:2: steps[0].runconfig_pipeline_params.NodeCount: a runconfig_pipeline_params value is one of: "
        "{parameter: NAME}; not 3",
        id="literal-runconfig-param",
    ),
    pytest.param(
        "parameters: {n: 2}\nsteps:\n"
        "  - {kind: command, command: ls, runconfig_pipeline_params: {Nodes: {parameter: n}}}\n",
        "p.yml:3: steps[0]: runconfig_pipeline_params key 'Nodes' is not supported",
        id="sdk-refuses-a-runconfig-param",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ''}\n",
        "p.yml:2: steps[0]: command is required",
        id="sdk-refuses-an-empty-command",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: 5}\n",
        "p.yml:2: steps[0].command: command is a command line (a string) or a list of arguments and references",
        id="command-of-a-wrong-type",
    ),
    pytest.param(
        "steps:\n  - kind: estimator\n    estimator: {source_directory: s, entry_script: t.py}\n",
        "p.yml:2: steps[0].estimator_entry_script_arguments: required key is missing",
        id="estimator-without-arguments",
    ),
    pytest.param(
        "steps:\n  - kind: estimator\n    estimator: {source_directory: s, entry_script: t.py, script_params: {a: 1}}\n"
        "    estimator_entry_script_arguments: []\n",
        "p.yml:3: steps[0].estimator.script_params: unknown key 'script_params'",
        id="estimator-script-params",
    ),
    pytest.param(
        "steps:\n  - {kind: data_transfer, source_data_reference: {data: a}, destination_data_reference: {data: b}}\n",
        "p.yml:2: steps[0].name: required key is missing",
        id="data-transfer-without-name",
    ),
    pytest.param(
        "datasets: {raw: {name: raw_dataset}}\nsteps:\n  - kind: data_transfer\n    name: t\n"
        "    source_data_reference: {dataset: raw}\n    destination_data_reference: {data: b}\n",
        "p.yml:5: steps[0].source_data_reference: source_data_reference cannot be {dataset: NAME}",
        id="dataset-as-transfer-source",
    ),
    pytest.param(
        "datasets: {raw: {name: raw_dataset, version: 0}}\nsteps: [{kind: command, command: ls}]\n",
        "p.yml:1: datasets.raw.version: version is a whole number from 1, or 'latest'; not 0",
        id="bad-dataset-version",
    ),
    pytest.param(
        "datasets: {raw: {name: raw_dataset, path_on_compute: x}}\nsteps: [{kind: command, command: ls}]\n",
        "p.yml:1: datasets.raw: path_on_compute needs mode: mount or mode: download",
        id="direct-dataset-with-a-path",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls}\n  - {kind: command, command: ls -l}\n",
        "p.yml:3: steps[1].name: step name 'ls' is also the name of steps[0]; step names are unique",
        id="duplicate-step-name",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls, name: a}\n  - {kind: command, command: ls, run_after: [b]}\n",
        "p.yml:3: steps[1].run_after[0]: unknown step 'b'; steps: 'a', 'ls'",
        id="unknown-run-after",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls, retry_settings: {max_retries: 11}}\n",
        "p.yml:2: steps[0].retry_settings: max_retries must be a whole number from 0 to 10, not 11",
        id="sdk-refuses-retry-settings",
    ),
    pytest.param(
        "steps:\n  - kind: python_script\n    script_name: a.py\n    runconfig:\n      environment:\n"
        "        name: e\n        pip_requirements_file: missing.txt\n",
        "p.yml:7: steps[0].runconfig.environment.pip_requirements_file: /nowhere/missing.txt: No such file",
        id="missing-requirements-file",
    ),
    pytest.param(
        "steps:\n  - {kind: command, command: ls}\nsteps:\n  - {kind: command, command: pwd}\n",
        "p.yml:3: steps: duplicate key 'steps' (first on line 1)",
        id="duplicate-key",
    ),
    pytest.param("steps:\n  - kind: [\n", "p.yml:3: not valid YAML:", id="syntax"),
    pytest.param("", "p.yml: the file is empty; it needs at least steps:", id="empty-file"),
    pytest.param("- a\n", "p.yml:1: expected a mapping, got a list", id="not-a-mapping"),
    pytest.param("? {a: 1}\n: x\nsteps: []\n", "p.yml:1: not valid YAML: while constructing a mapping", id="map-key"),
    pytest.param("steps: " + "[" * 3000 + "]" * 3000 + "\n", "p.yml: the values are nested too deeply", id="deep"),
    pytest.param(
        "---\nsteps: []\n---\nsteps: []\n", "p.yml:3: not valid YAML: expected a single document", id="two-docs"
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_each_mistake_is_reported_at_its_yaml_path_and_line(text: str, expected: str) -> None:
    problems = _problems(text, _workspace())
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = """
steps:
  - {kind: python_script, script_name: a.py, arguments: [{data: nope}]}
  - {kind: python_script, script_name: b.py, arguments: [{parameter: nope}]}
data:
  bad-name: {}
"""
    with pytest.raises(PipelineYamlError) as caught:
        _yaml(text, _workspace(), Path("/nowhere"))
    assert [(p.path, p.line) for p in caught.value.problems] == [
        ("steps[0].arguments[0]", 3),
        ("steps[1].arguments[0]", 4),
        ("data.bad-name", 6),
    ]
    assert str(caught.value).count("p.yml:") == 3 and "\n" not in str(caught.value)
    assert str(caught.value).startswith("p.yml:3: steps[0].arguments[0]: unknown PipelineData 'nope'")


def test_a_refused_declaration_is_reported_once_not_again_where_it_is_used() -> None:
    text = """
data:
  bad-name: {}
steps:
  - kind: data_transfer
    name: copy
    source_data_reference: {data: bad-name}
    destination_data_reference: {data: bad-name}
  - {kind: command, command: ls, inputs: [{data: bad-name}]}
"""
    assert _problems(text, _workspace()) == [
        "p.yml:3: data.bad-name: PipelineData name [bad-name] is not a valid name; "
        "use only letters, digits and underscores"
    ]


def test_a_schema_error_stops_before_any_dataset_is_looked_up() -> None:
    ws = _workspace()
    text = "datasets: {raw: {name: raw_dataset}}\nsteps:\n  - {kind: python_script, scrpt: a.py}\n"
    _problems(text, ws)
    assert _calls(ws) == []


def test_a_missing_dataset_is_a_problem_at_its_name_and_a_failing_service_is_not(folder: Path) -> None:
    text = (
        "datasets:\n  raw:\n    name: nothing_here\nsteps: [{kind: command, command: ls, inputs: [{dataset: raw}]}]\n"
    )
    assert _problems(text, _workspace(), folder) == [
        'p.yml:3: datasets.raw.name: Cannot find dataset registered with name "nothing_here" (version: latest) '
        "in the workspace."
    ]
    with pytest.raises(ServiceException) as caught:
        _yaml(text, _workspace(failure=503), folder)
    assert caught.value.status_code == 503


def test_a_pipeline_without_a_workspace_builds_unless_it_needs_a_dataset(folder: Path) -> None:
    built = _yaml("steps: [{kind: command, command: ls}]\n", None, folder)
    assert built.steps[0].name == "ls"
    problems = _problems("datasets: {raw: {name: r}}\nsteps: [{kind: command, command: ls}]\n", None, folder)
    assert problems == [
        "p.yml:1: datasets.raw.name: This needs a Workspace connected to the amlpipe service (Workspace.from_config())."
    ]


# -- safe loading ----------------------------------------------------------------------------------

TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/object:pathlib.Path {{}}",
    "!custom {{}}",
]


@pytest.mark.parametrize("tag", TAGS)
def test_an_object_building_tag_is_refused_and_nothing_runs(tag: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text = f"steps:\n  - kind: command\n    command: {tag.format(marker=marker)}\n"
    problems = _problems(text)
    assert len(problems) == 1 and problems[0].startswith("p.yml:3: steps[0].command: the tag !")
    assert "is not allowed: a pipeline file holds plain values" in problems[0]
    assert not marker.exists()


def test_a_refused_tag_in_a_key_is_refused_too(tmp_path: Path) -> None:
    problems = _problems("? !!python/object/apply:os.getcwd []\n: 1\nsteps: []\n")
    assert problems and "the tag !!python/object/apply:os.getcwd is not allowed" in problems[0]


def test_alias_bombs_and_recursive_aliases_are_refused() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 6):
        previous, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    bomb = "\n".join(levels) + "\nsteps: [*f]\n"
    assert _problems(bomb) == ["p.yml: the file holds more than 100000 values (aliases counted each time)"]
    assert _problems("steps: &s [*s]\n") == ["p.yml:1: steps[0]: an alias refers to a value that contains it"]


def test_anchors_and_merge_keys_share_settings_between_steps(ws: Workspace, folder: Path) -> None:
    text = """
steps:
  - kind: python_script
    script_name: a.py
    runconfig: &rc {environment_variables: {SHARED: "1"}, node_count: 3}
  - kind: python_script
    script_name: b.py
    runconfig: {<<: *rc, node_count: 2}
"""
    graph, _ = _yaml(text, ws, folder).to_graph()
    assert graph.step("a.py").runconfig.environment_variables == {"SHARED": "1"}
    assert graph.step("b.py").runconfig.environment_variables == {"SHARED": "1"}
    assert (graph.step("a.py").runconfig.node_count, graph.step("b.py").runconfig.node_count) == (3, 2)


def test_a_file_that_is_not_utf8_is_a_yaml_problem(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_bytes(b"steps: [\xff]\n")
    with pytest.raises(PipelineYamlError, match="not UTF-8 text"):
        pipeline_from_yaml(tmp_path / "p.yml", None)


# -- the CLI's loader and the public surface ------------------------------------------------------


def test_the_cli_loads_yml_and_yaml_files_and_a_bad_one_is_a_usage_error(ws: Workspace, folder: Path) -> None:
    assert LOADERS[".yml"] is LOADERS[".yaml"]
    (folder / "good.yaml").write_text("steps: [{kind: python_script, script_name: a.py, source_directory: scripts}]\n")
    with pipeline_from_file(folder / "good.yaml", ws) as pipeline:
        assert Path.cwd() == folder  # publishing reads the snapshots from here, as for .py files
        assert pipeline.to_graph()[1] == {"a.py": str(folder / "scripts")}

    (folder / "bad.yml").write_text("steps:\n  - {kind: python_script, script_name: a.py, inputs: [{data: x}]}\n")
    with pytest.raises(CliError) as caught, pipeline_from_file(folder / "bad.yml", ws):
        pass
    code, message = classify(caught.value)
    assert code == ExitCode.USAGE
    where = f"{folder / 'bad.yml'}:2: steps[0].inputs[0]"
    assert message == f"{where}: unknown PipelineData 'x'; defined: none (declare it under data:)"


def test_the_public_surface() -> None:
    assert amlpipe.pipeline.__all__ == ["PipelineYamlError", "YamlProblem", "pipeline_from_yaml"]


def _spec_models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(schema).values()
        if isinstance(value, type) and issubclass(value, schema.Spec) and value is not schema.Spec
    ]


def test_the_documentation_describes_every_key_of_the_schema() -> None:
    docs = (ROOT / "docs" / "pipeline-yaml.md").read_text()
    missing = sorted(
        f"{model.__name__}.{key}"
        for model in _spec_models()
        for key in model.model_fields
        if not re.search(rf"`{re.escape(key)}`|\{{{re.escape(key)}: ", docs)  # `key`, or {key: NAME}
    )
    assert missing == []
    for kind in schema.STEP_KINDS:
        assert f"`{kind}`" in docs


# -- review fixes: YAML 1.2 scalars, explicit tags, paths that stay in the file's folder, size ----------


def test_plain_values_follow_yaml_1_2_so_no_argument_is_silently_retyped(ws: Workspace, folder: Path) -> None:
    text = (
        "parameters: {a: 1e-3, b: 010, c: on, d: 1:30, e: 2024-01-01, f: 0x1f, g: true, h: 12}\n"
        "steps:\n  - {kind: command, command: [echo, 12:30, on, no, '7', 010, 0x1f, 1_000, 2023-02-29, 1.5]}\n"
        "  - kind: command\n    name: params\n    command: [echo"
        + "".join(f", {{parameter: {name}}}" for name in "abcdefgh")
        + "]\n"
    )
    pipeline = _yaml(text, ws, folder)
    graph, _ = _graph(pipeline)
    defaults = {p["name"]: p["default_value"] for p in graph["parameters"]}
    assert defaults == {
        "a": 0.001,
        "b": "010",
        "c": "on",
        "d": "1:30",
        "e": "2024-01-01",
        "f": "0x1f",
        "g": True,
        "h": 12,
    }
    step = graph["steps"][0]
    assert [part["value"] for part in step["command"]] == [
        "echo", "12:30", "on", "no", "7", "010", "0x1f", "1_000", "2023-02-29", "1.5",
    ]  # fmt: skip


@pytest.mark.parametrize("value", ["!!bool maybe", "!!int abc", "!!float abc", "!!timestamp nope", "!!str 3"])
def test_an_explicit_scalar_tag_is_refused_at_its_place_instead_of_crashing(value: str) -> None:
    problems = _problems(f"steps:\n  - kind: command\n    command: [ls, {value}]\n")
    assert len(problems) == 1 and problems[0].startswith("p.yml:3: steps[0].command[1]: the tag !!")
    assert "write the value plainly" in problems[0]


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("source_directory", "/", "steps[0].source_directory"),
        ("source_directory", "../..", "steps[0].source_directory"),
        ("source_directory", "escape", "steps[0].source_directory"),  # a symlink out of the folder
    ],
)
def test_a_path_that_leads_outside_the_files_folder_is_refused_unless_allowed(
    ws: Workspace, folder: Path, key: str, value: str, where: str
) -> None:
    (folder / "escape").symlink_to(folder.parent)
    text = f"steps:\n  - {{kind: command, command: ls, {key}: '{value}'}}\n"
    problems = _problems(text, ws, folder)
    assert len(problems) == 1 and problems[0].startswith(f"p.yml:2: {where}: ")
    assert "leads outside the YAML file's folder" in problems[0] and "--allow-paths-outside" in problems[0]
    allowed = pipeline_from_text(text, ws, folder=folder, source="p.yml", allow_paths_outside=True)
    assert allowed is not None


def test_an_environment_file_outside_the_folder_is_never_read_into_the_graph(ws: Workspace, folder: Path) -> None:
    text = (
        "steps:\n  - kind: command\n    command: ls\n    runconfig:\n      environment:\n"
        "        name: env\n        pip_requirements_file: /etc/passwd\n"
    )
    (problem,) = _problems(text, ws, folder)
    assert problem.startswith("p.yml:7: steps[0].runconfig.environment.pip_requirements_file: '/etc/passwd' leads")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    from amlpipe.pipeline._yaml_read import MAX_CHARACTERS

    problems = _problems("steps: []\n# " + "x" * MAX_CHARACTERS)
    assert problems == [f"p.yml: the file is over {MAX_CHARACTERS} characters"]
