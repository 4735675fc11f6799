"""Fuzzing the submit routes on the real app: whatever the body, the answer is never a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from amlpipe.core.workspace import Workspace
from amlpipe.pipeline.core import Pipeline, PipelineParameter, PublishedPipeline
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import FUZZ, PipelinesApp

pytestmark = pytest.mark.integration


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(["lr", "epochs", "other", ""]) | st.text(max_size=12)
submit_bodies = st.fixed_dictionaries(
    {},
    optional={
        "ExperimentName": st.sampled_from(["fuzz", "", "bad name"]) | st.text(max_size=30) | json_values,
        "ParameterAssignments": st.dictionaries(names, scalars, max_size=3) | json_values,
        "DataPathAssignments": st.dictionaries(
            names, st.fixed_dictionaries({"DataStoreName": st.text(max_size=8), "RelativePath": st.text(max_size=8)})
        )
        | json_values,
        "Description": json_values,
        "RunSource": json_values,
        "tags": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2) | json_values,
        "ContinueRunOnStepFailure": json_values,
        "ParentRunId": json_values,
        "Unknown": json_values,
    },
)


@pytest.fixture(scope="module")
def target(pipelines_app: PipelinesApp, tmp_path_factory: pytest.TempPathFactory) -> tuple[PublishedPipeline, str]:
    src: Path = tmp_path_factory.mktemp("fuzzsrc")
    (src / "train.py").write_text("print(1)\n")
    ws = Workspace.from_config(pipelines_app.config_path)
    step = PythonScriptStep(
        script_name="train.py",
        arguments=[PipelineParameter("lr", 0.1), PipelineParameter("epochs", 1)],
        source_directory=str(src),
    )
    return Pipeline(ws, steps=[step]).publish(name="fuzz"), pipelines_app.token()


def test_fuzzed_submit_bodies_never_get_a_5xx(
    pipelines_app: PipelinesApp, target: tuple[PublishedPipeline, str]
) -> None:
    published, token = target
    headers = {"Authorization": f"Bearer {token}"}

    @FUZZ
    @given(body=submit_bodies | json_values)
    def check(body: Any) -> None:
        response = requests.post(published.endpoint, json=body, headers=headers, timeout=30)
        assert response.status_code < 500, (body, response.text)
        if response.status_code != 200:
            assert set(response.json()["Error"]) >= {"Code", "Message"}

    check()


def test_fuzzed_graphs_to_the_ad_hoc_submit_never_get_a_5xx(
    pipelines_app: PipelinesApp, target: tuple[PublishedPipeline, str]
) -> None:
    published, token = target
    headers = {"Authorization": f"Bearer {token}"}
    real = requests.get(f"{pipelines_app.url}/api/pipelines/{published.id}/graph", headers=headers, timeout=30).json()
    step = real["steps"][0]
    steps = st.fixed_dictionaries(
        {"name": st.text(max_size=10), "kind": st.sampled_from(["python_script", "command", "bogus"])},
        optional={
            "script_name": st.sampled_from(["train.py", "../x.py", ""]) | json_values,
            "snapshot": st.just(step["snapshot"]) | json_values,
            "arguments": st.lists(
                st.fixed_dictionaries(
                    {
                        "kind": st.sampled_from(["literal", "parameter"]),
                        "name": st.text(max_size=5),
                        "value": st.text(max_size=5),
                    }
                ),
                max_size=2,
            )
            | json_values,
            "run_after": st.lists(st.text(max_size=5), max_size=2),
            "command": json_values,
        },
    )
    graphs = (
        st.fixed_dictionaries(
            {"steps": st.lists(steps, max_size=3)},
            optional={
                "parameters": st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.text(max_size=5),
                            "type": st.sampled_from(["int", "string", "datapath"]),
                            "default_value": scalars,
                        }
                    ),
                    max_size=2,
                ),
                "schema_version": json_values,
                "description": json_values,
            },
        )
        | json_values
    )

    @FUZZ
    @given(graph=graphs, experiment=st.sampled_from(["fuzz-adhoc", ""]))
    def check(graph: Any, experiment: str) -> None:
        body = {"ExperimentName": experiment, "Graph": graph}
        response = requests.post(f"{pipelines_app.url}/api/PipelineRuns/Submit", json=body, headers=headers, timeout=30)
        assert response.status_code < 500, (graph, response.text)

    check()
