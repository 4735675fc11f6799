"""``examples/dp100``: the DP-100 module's pipeline runs end to end, as a user runs it.

The example is started as its own process (``python examples/dp100/pipeline.py``) from a folder
holding the app's config, against a fresh app: prepare data from a Tabular dataset → train with the
``reg_rate`` parameter → register the model; then published and started over REST with
``ParameterAssignments``. What it did is then checked through the SDK and the REST API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpipe.core import Workspace
from amlpipe.core.model import Model
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dp100" / "pipeline.py"


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    with real_app(storage, tmp_path_factory.mktemp("dp100"), "dp100") as started:
        yield started


def test_the_dp100_example_prepares_trains_registers_and_runs_again_over_rest(app: RealApp, tmp_path: Path) -> None:
    (tmp_path / ".amlpipe").mkdir()
    shutil.copy(app.config_path, tmp_path / ".amlpipe" / "config.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMLPIPE_", "AzureWebJobs"))}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    summary = json.loads(proc.stdout[proc.stdout.rindex("\n{") :])

    assert summary["statuses"] == ["Finished", "Finished"]
    first, second = summary["metrics"]
    assert first["prepare data"] == {"raw_rows": 1000, "processed_rows": 1000}
    assert first["train model"]["Regularization Rate"] == 0.01
    assert second["train model"]["Regularization Rate"] == 0.1
    for metrics in (first["train model"], second["train model"]):
        assert 0.6 < metrics["Accuracy"] <= 1.0 and 0.6 < metrics["AUC"] <= 1.0
    # Same script, same data: the REST run reuses the preparation; the new reg_rate retrains.
    assert summary["reused"] == {"prepare data": True, "train model": False}

    # One model version per training run, each traceable to its run.
    ws = Workspace.from_config(app.config_path)
    assert summary["model_versions"] == [1, 2]
    for run_id, training in zip(summary["runs"], summary["training_runs"], strict=True):
        assert training == f"{run_id}:train model:1"
        (registered,) = Model.list(ws, name="diabetes_model", run_id=training)
        assert registered.tags == {"Training context": "Pipeline"}
        assert 0.6 < float(registered.properties["AUC"]) <= 1.0
