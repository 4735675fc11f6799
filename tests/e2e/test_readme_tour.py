"""The README's "5-minute tour", run as written against a fresh app: if the README drifts from what
the app and the CLI do, this fails.

Every ```bash and ```python block of the section runs in order in one bash process (variables carry
over; a python block runs as ``python - <<'PY'``), from a folder that looks like the repository root:
``examples/`` and ``.venv`` linked from the checkout, and ``.amlpipe/config.json`` the app's Owner's, as
``make start`` writes it. The only change made to the text is the app's address
(``http://localhost:7071`` → the test host's). Afterwards the retraining the upload starts must run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from amlpipe.host.testing import wait_for
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## The 5-minute tour"
DEV_URL = "http://localhost:7071"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def tour_blocks(readme: str) -> list[tuple[str, str]]:
    """The (language, code) of every fenced block of the tour section, in order.

    Raises:
        AssertionError: the section is missing or has no block, or a block is neither bash nor python.
    """
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else len(readme)]
    blocks = [(m.group(1), m.group(2)) for m in _FENCE.finditer(section)]
    assert blocks, f"the README's {SECTION!r} section has no code blocks"
    unknown = [language for language, _ in blocks if language not in ("bash", "python")]
    assert not unknown, f"tour blocks must be bash or python, not {unknown}"
    return blocks


def tour_script(blocks: list[tuple[str, str]], url: str) -> str:
    """One bash script running ``blocks`` in order, against ``url`` instead of the dev address."""
    parts = ["set -euo pipefail"]
    for language, code in blocks:
        if language == "bash":
            parts.append(code)
        else:
            parts.append(f"python - <<'PY'\n{code}PY")
    return "\n".join(parts).replace(DEV_URL, url) + "\n"


def test_the_tour_is_found_and_every_block_runs_in_order() -> None:
    # The extraction itself, without an app: a README that loses its tour (or a block) fails here first.
    blocks = tour_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    script = tour_script(blocks, "http://127.0.0.1:1")
    assert script.startswith("set -euo pipefail\n") and DEV_URL not in script
    assert [language for language, _ in blocks].count("python") >= 1
    for needed in ("amlpipe pipeline publish", "curl ", "--watch", "schedule create", "datastore upload"):
        assert needed in script, f"the tour no longer shows {needed!r}"


@pytest.fixture(scope="module")
def tour_app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    with real_app(storage, tmp_path_factory.mktemp("tour-app"), "tour") as app:
        yield app


def test_the_readme_tour_runs_as_written(tour_app: RealApp, tmp_path: Path) -> None:
    folder = tmp_path / "checkout"
    (folder / ".amlpipe").mkdir(parents=True)
    (folder / ".amlpipe" / "config.json").write_text(tour_app.config_path.read_text())
    (folder / "examples").symlink_to(ROOT / "examples")
    (folder / ".venv").symlink_to(Path(sys.prefix))
    script = tour_script(tour_blocks((ROOT / "README.md").read_text(encoding="utf-8")), tour_app.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLPIPE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` is the venv's
    done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the tour failed:\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"

    # What the tour says happens, happened: the REST runs finished, the upload started a retraining.
    headers = tour_app.headers()

    def runs(experiment: str) -> list[dict[str, object]]:
        answer = requests.get(
            f"{tour_app.url}/api/PipelineRuns", params={"experimentName": experiment}, headers=headers, timeout=30
        )
        answer.raise_for_status()
        found: list[dict[str, object]] = answer.json()["value"]
        return found

    def status(run: dict[str, object]) -> str:
        code = run.get("Status")
        return str(code.get("StatusCode") if isinstance(code, dict) else code)

    rest = runs("dp100-rest")
    assert len(rest) == 2, json.dumps(rest)[:2000]
    first = json.loads((folder / "run.json").read_text())["Id"]
    assert first in {r["Id"] for r in rest}

    def started() -> list[dict[str, object]] | None:
        return runs("dp100-on-data") or None

    def ended() -> list[dict[str, object]] | None:
        return [r for r in runs("dp100-on-data") if status(r) in ("Finished", "Failed", "Canceled")] or None

    first_seen = wait_for(started, timeout=60, interval=0.5, what="the run the upload started")
    assert first_seen is not None and len(first_seen) == 1
    done_runs = wait_for(ended, timeout=180, interval=0.5, what="the retraining to end")
    assert done_runs is not None and status(done_runs[0]) == "Finished", json.dumps(done_runs)[:2000]
