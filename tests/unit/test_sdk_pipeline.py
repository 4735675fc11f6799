"""The SDK classes users build pipelines with, and the wire graph they produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import amlpipe.data
import amlpipe.pipeline.core
import amlpipe.pipeline.steps
from amlpipe.core.compute import AmlCompute
from amlpipe.core.environment import Environment
from amlpipe.core.runconfig import RunConfiguration
from amlpipe.data.data_reference import DataReference
from amlpipe.data.datapath import DataPath, DataPathComputeBinding
from amlpipe.data.dataset_consumption_config import DatasetConsumptionConfig
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineParameter
from amlpipe.pipeline.core import graph as core_graph
from amlpipe.pipeline.steps import CommandStep, DataTransferStep, EstimatorStep, PythonScriptStep
from amlpipe.train.estimator import Estimator
from shared.errors import GraphValidationError
from shared.graph import model as m
from shared.graph import parse_graph


class FakeDataset:
    """Stands in for amlpipe.core.Dataset: anything with name and version."""

    def __init__(self, name: str, version: int | None = 1) -> None:
        self.name = name
        self.version = version

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(name, self)


class FakeWorkspace:
    def __init__(self, computes: set[str]) -> None:
        self.computes = computes

    def _graph_registry(self) -> Any:
        computes = self.computes

        class Registry:
            def has_compute_target(self, name: str) -> bool:
                return name in computes

            def has_dataset(self, name: str, version: int | None) -> bool:
                return True

            def has_datastore(self, name: str) -> bool:
                return True

        return Registry()


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "data_prep.py").write_text("print('prep')\n")
    (folder / "train.py").write_text("print('train')\n")
    monkeypatch.chdir(tmp_path)
    return folder


def _seed_pipeline(workspace: Any = None) -> Pipeline:
    """The DP-100 module 6 code with ``azureml`` replaced by ``amlpipe``."""
    raw_ds = FakeDataset("raw_dataset")
    data_store = "workspaceblobstore"
    run_config = RunConfiguration()
    prepped_data = PipelineData("prepped", datastore=data_store)
    step1 = PythonScriptStep(
        name="prepare data",
        source_directory="scripts",
        script_name="data_prep.py",
        compute_target="aml-cluster",
        runconfig=run_config,
        inputs=[raw_ds.as_named_input("raw_data")],
        outputs=[prepped_data],
        arguments=["--folder", prepped_data],
        allow_reuse=False,
    )
    sk_estimator = Estimator(
        source_directory="scripts", entry_script="train.py", compute_target="aml-cluster", pip_packages=["scikit-learn"]
    )
    reg_param = PipelineParameter(name="reg_rate", default_value=0.01)
    step2 = EstimatorStep(
        name="train model",
        estimator=sk_estimator,
        compute_target="aml-cluster",
        inputs=[prepped_data],
        estimator_entry_script_arguments=["--folder", prepped_data, "--reg", reg_param],
    )
    return Pipeline(workspace=workspace, steps=[step1, step2])


def test_the_seed_module_builds_a_valid_graph(scripts: Path) -> None:
    pipeline = _seed_pipeline()
    assert pipeline.validate() == []
    graph, sources = pipeline.to_graph()
    assert graph.topological_order() == ["prepare data", "train model"]
    assert graph.parameters == (m.ParameterDef(name="reg_rate", type="float", default_value=0.01),)
    prep, train = graph.steps
    assert prep.inputs == (m.DatasetInput(name="raw_data", dataset_name="raw_dataset", dataset_version=1),)
    assert prep.outputs[0].name == "prepped" and prep.outputs[0].datastore == "workspaceblobstore"
    assert prep.arguments == (m.LiteralArgument(value="--folder"), m.DataArgument(name="prepped"))
    assert prep.allow_reuse is False and prep.compute_target == "aml-cluster"
    assert train.kind == "estimator" and train.script_name == "train.py"
    assert train.arguments[-1] == m.ParameterArgument(name="reg_rate")
    assert train.runconfig.environment is not None
    assert train.runconfig.environment.pip_packages == ("scikit-learn",)
    assert sources == {"prepare data": str(scripts.resolve()), "train model": str(scripts.resolve())}
    assert parse_graph(json.loads(graph.to_json())) == graph


def test_only_the_last_step_pulls_in_its_dependencies(scripts: Path) -> None:
    seed = _seed_pipeline()
    last = seed.steps[-1]
    assert [s.name for s in Pipeline(None, [last]).steps] == ["prepare data", "train model"]
    assert [s.name for s in Pipeline(None, [last], resolve_closure=False).steps] == ["train model"]


def test_run_after_chains_are_resolved_and_on_the_wire(scripts: Path) -> None:
    s1 = PythonScriptStep("data_prep.py", name="s1", source_directory="scripts")
    s2 = PythonScriptStep("data_prep.py", name="s2", source_directory="scripts")
    s3 = PythonScriptStep("train.py", name="s3", source_directory="scripts")
    s2.run_after(s1)
    s3.run_after(s2)
    s3.run_after(s2)
    pipeline = Pipeline(None, steps=[s3])
    graph, _ = pipeline.to_graph()
    assert graph.topological_order() == ["s1", "s2", "s3"]
    assert graph.step("s3").run_after == ("s2",)
    assert pipeline.validate() == []


def test_validate_uses_the_workspace_registry(scripts: Path) -> None:
    problems = _seed_pipeline(FakeWorkspace(computes=set())).validate()
    assert len(problems) == 2 and all("aml-cluster" in p for p in problems)
    assert _seed_pipeline(FakeWorkspace(computes={"aml-cluster"})).validate() == []


def test_validate_reports_a_script_missing_from_its_folder(scripts: Path) -> None:
    step = PythonScriptStep("nope.py", source_directory="scripts")
    (problem,) = Pipeline(None, [step]).validate()
    assert "nope.py" in problem and "snapshot" in problem


def test_validate_reports_an_unconnected_input(scripts: Path) -> None:
    orphan = PipelineData("orphan")
    step = PythonScriptStep("train.py", source_directory="scripts", inputs=[orphan])
    (problem,) = Pipeline(None, [step]).validate()
    assert "no step produces" in problem


def test_pipeline_rejects_unknown_kwargs() -> None:
    step = PythonScriptStep("train.py")
    Pipeline(None, [step], enable_email_notification=True)
    with pytest.raises(ValueError) as info:
        Pipeline(None, [step], colour="blue")
    assert str(info.value) == "parameter colour is not recognized for Pipeline "


def test_step_name_defaults_to_script_name_and_script_must_be_a_string() -> None:
    assert PythonScriptStep("train.py").name == "train.py"
    with pytest.raises(ValueError, match="script_name"):
        PythonScriptStep(42)  # type: ignore[arg-type]


def test_pipeline_data_rules() -> None:
    with pytest.raises(ValueError, match="not a valid name"):
        PipelineData("bad-name")
    with pytest.raises(ValueError, match="not a valid name"):
        PipelineData("")
    with pytest.raises(ValueError, match=r"Invalid output mode \[copy\]"):
        PipelineData("ok", output_mode="copy")
    data = PipelineData("prepped")
    assert data.get_env_variable_name() == "AZUREML_DATAREFERENCE_prepped"
    assert str(data) == "$AZUREML_DATAREFERENCE_prepped"
    assert data.as_download("p_in").bind_mode == "download"
    assert data.as_mount().name == "prepped"


def test_pipeline_parameter_rules() -> None:
    assert core_graph.PipelineParameter is PipelineParameter
    with pytest.raises(ValueError, match="Default value is of unsupported type: list"):
        PipelineParameter("p", [1])
    with pytest.raises(ValueError, match="multi-line"):
        PipelineParameter("p", "a\nb")
    assert PipelineParameter("p", True).type == "bool"
    assert str(PipelineParameter("reg-rate", 1)) == "$AML_PARAMETER_reg_rate"


def test_params_become_wire_params_and_duplicates_are_refused() -> None:
    count = PipelineParameter("nodes", 2)
    step = PythonScriptStep(
        "train.py",
        params={"alpha": 0.5, "who": PipelineParameter("who", "me")},
        runconfig_pipeline_params={"NodeCount": count},
    )
    graph, _ = Pipeline(None, [step]).to_graph()
    assert graph.steps[0].params == {"alpha": 0.5, "who": m.ParameterRef(name="who")}
    assert graph.steps[0].runconfig_pipeline_params == {"NodeCount": m.ParameterRef(name="nodes")}
    assert [p.name for p in graph.parameters] == ["nodes", "who"]
    with pytest.raises(ValueError, match="Duplicate parameter"):
        PythonScriptStep("t.py", params={"NodeCount": 1}, runconfig_pipeline_params={"NodeCount": count})


def test_one_parameter_name_with_two_defaults_is_refused() -> None:
    step = PythonScriptStep("t.py", arguments=[PipelineParameter("p", 1), PipelineParameter("p", 2)])
    with pytest.raises(ValueError, match="two different default values"):
        Pipeline(None, [step]).to_graph()
    assert "two different default values" in Pipeline(None, [step]).validate()[0]


def test_compute_target_forms() -> None:
    runconfig = RunConfiguration()
    runconfig.target = "from-runconfig"
    pool = AmlCompute(None, "pool")
    steps = [
        PythonScriptStep("a.py", name="a", compute_target=("cpu", "AmlCompute")),
        PythonScriptStep("b.py", name="b", compute_target=pool),
        PythonScriptStep("c.py", name="c", runconfig=runconfig),
        PythonScriptStep("d.py", name="d"),
    ]
    graph, _ = Pipeline(None, steps).to_graph()
    assert [s.compute_target for s in graph.steps] == ["cpu", "pool", "from-runconfig", None]


def test_datapath_parameter_tuple_goes_in_arguments_and_inputs() -> None:
    path = PipelineParameter("input_path", DataPath(datastore="blobs", path_on_datastore="titanic/train.csv"))
    pair = (path, DataPathComputeBinding(mode="download"))
    step = PythonScriptStep("train.py", arguments=["--data", pair], inputs=[pair])
    graph, _ = Pipeline(None, [step]).to_graph()
    assert graph.parameters[0].default_value == m.DataPathValue(
        datastore="blobs", path_on_datastore="titanic/train.csv"
    )
    assert graph.steps[0].inputs == (
        m.DataPathParameterInput(name="input_path", parameter="input_path", mode="download"),
    )
    assert graph.steps[0].arguments[1] == m.InputArgument(name="input_path")


def test_pipeline_data_in_arguments_only_becomes_an_input() -> None:
    data = PipelineData("features")
    producer = PythonScriptStep("a.py", name="make", outputs=[data], arguments=[data])
    consumer = PythonScriptStep("b.py", name="use", arguments=["--in", data.as_download("feats")])
    graph, _ = Pipeline(None, [consumer]).to_graph()
    assert [s.name for s in graph.steps] == ["make", "use"]
    assert graph.step("make").inputs == ()
    assert graph.step("use").inputs[0] == m.PipelineDataInput(name="feats", pipeline_data="features", mode="download")
    assert producer in Pipeline(None, [consumer]).steps


def test_command_step_with_a_mixed_list() -> None:
    out = PipelineData("out")
    step = CommandStep(command=["python", "run.py", "--out", out, "--n", PipelineParameter("n", 3)], outputs=[out])
    assert step.name == "python"
    graph, _ = Pipeline(None, [step]).to_graph()
    assert graph.steps[0].kind == "command"
    assert graph.steps[0].command == (
        m.LiteralArgument(value="python"),
        m.LiteralArgument(value="run.py"),
        m.LiteralArgument(value="--out"),
        m.DataArgument(name="out"),
        m.LiteralArgument(value="--n"),
        m.ParameterArgument(name="n"),
    )
    with pytest.raises(ValueError, match="command is required"):
        CommandStep()


def test_data_transfer_step(scripts: Path) -> None:
    source = DataReference("blobs", data_reference_name="src", path_on_datastore="raw/in.csv")
    copied = PipelineData("copied")
    transfer = DataTransferStep(
        "copy", source_data_reference=source, destination_data_reference=copied, source_reference_type="file"
    )
    use = PythonScriptStep("train.py", source_directory="scripts", inputs=[transfer.get_output()])
    pipeline = Pipeline(None, [use])
    graph, sources = pipeline.to_graph()
    assert graph.topological_order() == ["copy", "train.py"]
    assert graph.step("copy").data_transfer == m.DataTransferSpec(source_reference_type="file")
    assert sources["copy"] is None
    assert pipeline.validate() == []
    with pytest.raises(ValueError, match="source_reference_type"):
        DataTransferStep("x", source, copied, source_reference_type="blob")
    with pytest.raises(ValueError, match="destination_data_reference is required"):
        DataTransferStep("x", source)


def test_estimator_step_argument_rules() -> None:
    est = Estimator(source_directory=".", entry_script="train.py")
    with pytest.raises(ValueError, match="estimator_entry_script_arguments is a required parameter"):
        EstimatorStep(estimator=est)
    with pytest.raises(ValueError, match="script_params"):
        EstimatorStep(
            estimator=Estimator(".", entry_script="t.py", script_params={"--a": 1}), estimator_entry_script_arguments=[]
        )
    assert EstimatorStep(estimator=est, estimator_entry_script_arguments=[]).name == "train.py"


def test_runconfig_environment_reaches_the_wire(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pandas>=2\n# comment\nscikit-learn\n")
    env = Environment.from_pip_requirements("train-env", requirements)
    env.version = "3"
    runconfig = RunConfiguration()
    runconfig.environment = env
    runconfig.environment_variables["MODE"] = "fast"
    graph, _ = Pipeline(None, [PythonScriptStep("t.py", runconfig=runconfig)]).to_graph()
    wire = graph.steps[0].runconfig
    assert wire.environment == m.EnvironmentSpec(
        name="train-env", version="3", pip_packages=("pandas>=2", "scikit-learn")
    )
    assert wire.environment_variables == {"MODE": "fast"}


def test_data_reference_and_dataset_modes() -> None:
    ref = DataReference("blobs", path_on_datastore="data").as_download(path_on_compute="tmp/data")
    named = FakeDataset("raw", None).as_named_input("raw").as_mount()
    graph, _ = Pipeline(None, [PythonScriptStep("t.py", inputs=[ref, named])]).to_graph()
    assert graph.steps[0].inputs == (
        m.DataReferenceInput(
            name="blobs", datastore="blobs", path_on_datastore="data", mode="download", path_on_compute="tmp/data"
        ),
        m.DatasetInput(name="raw", dataset_name="raw", dataset_version=None, mode="mount"),
    )


def test_public_surface_is_locked() -> None:
    assert amlpipe.pipeline.core.__all__ == [
        "InputPortBinding",
        "Pipeline",
        "PipelineData",
        "PipelineEndpoint",
        "PipelineIdVersion",
        "PipelineParameter",
        "PipelineRun",
        "PipelineStep",
        "PublishedPipeline",
        "Schedule",
        "ScheduleRecurrence",
        "StepRun",
        "TimeZone",
    ]
    assert amlpipe.pipeline.steps.__all__ == ["CommandStep", "DataTransferStep", "EstimatorStep", "PythonScriptStep"]
    assert amlpipe.data.__all__ == ["DataPath", "DataPathComputeBinding", "DataReference", "DatasetConsumptionConfig"]


def test_two_different_inputs_with_one_name_are_both_kept_and_reported() -> None:
    first = FakeDataset("titanic").as_named_input("data")
    second = FakeDataset("diabetes").as_named_input("data")
    pipeline = Pipeline(None, [PythonScriptStep("t.py", inputs=[first], arguments=["--other", second])])
    graph, _ = pipeline.to_graph()
    assert [i.dataset_name for i in graph.steps[0].inputs] == ["titanic", "diabetes"]  # type: ignore[union-attr]
    assert any("two inputs/outputs named 'data'" in problem for problem in pipeline.validate())


def test_the_same_input_in_inputs_and_arguments_is_one_input() -> None:
    data = FakeDataset("titanic").as_named_input("data")
    graph, _ = Pipeline(None, [PythonScriptStep("t.py", inputs=[data], arguments=["--data", data])]).to_graph()
    assert graph.steps[0].inputs == (m.DatasetInput(name="data", dataset_name="titanic", dataset_version=1),)


def test_an_unregistered_dataset_is_refused_at_conversion() -> None:
    from amlpipe.core.dataset import Dataset

    raw = Dataset.Tabular.from_delimited_files(path=[("blobs", "data/*.csv")]).as_named_input("raw")
    with pytest.raises(ValueError, match=r"register the dataset first \(ds.register\(ws, name\)\)"):
        Pipeline(None, [PythonScriptStep("t.py", inputs=[raw])]).to_graph()


def test_runconfig_pipeline_params_allowlist_is_shared_with_the_server() -> None:
    with pytest.raises(ValueError, match="'Anything' is not supported"):
        PythonScriptStep("t.py", runconfig_pipeline_params={"Anything": PipelineParameter("n", 1)})


def test_a_blank_command_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="command is blank"):
        CommandStep(command="   ")


def test_retry_settings_reach_the_graph_and_bad_values_are_refused() -> None:
    step = PythonScriptStep("train.py", name="train")
    assert Pipeline(None, [step]).to_graph()[0].steps[0].retry_settings is None  # azureml's default: no retries
    step.set_retry_settings(max_retries=3, backoff_seconds=5)
    (wired,) = Pipeline(None, [step]).to_graph()[0].steps
    assert wired.retry_settings == m.StepRetrySettings(max_retries=3, backoff_seconds=5.0)
    for bad in (
        {"max_retries": 11},
        {"max_retries": -1},
        {"max_retries": True},
        {"max_retries": 1, "backoff_seconds": 601},
    ):
        with pytest.raises(ValueError):
            step.set_retry_settings(**bad)


@pytest.mark.parametrize(
    "settings", [{"max_retries": 11}, {"max_retries": 1, "backoff_seconds": -1}, {"backoff_seconds": 1}]
)
def test_the_graph_schema_bounds_retry_settings(settings: dict[str, Any]) -> None:
    body = {"steps": [{"name": "s", "kind": "command", "command": "echo", "retry_settings": settings}]}
    with pytest.raises(GraphValidationError) as info:
        parse_graph(body)
    assert any((d.target or "").startswith("steps[0].retry_settings") for d in info.value.details)
