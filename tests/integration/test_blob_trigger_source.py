"""The indexed app declares the default datastore trigger's ``source`` that ``AMLPIPE_BLOB_TRIGGER_SOURCE``
names (indexed in a fresh process each time, as the Functions worker indexes it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from functions.schedule_watches import BLOB_TRIGGER_SOURCE_SETTING

ROOT = Path(__file__).resolve().parents[2]


def _indexed_trigger(source: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != BLOB_TRIGGER_SOURCE_SETTING}
    if source is not None:
        env[BLOB_TRIGGER_SOURCE_SETTING] = source
    script = (
        "import json, function_app\n"
        "f = next(f for f in function_app.app.get_functions() if f.get_function_name() == 'watch_default_datastore')\n"
        "print(json.dumps(json.loads(f.get_function_json())['bindings'][0]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    binding: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return binding


def test_the_indexed_function_declares_the_source_the_setting_names() -> None:
    assert _indexed_trigger("EventGrid")["source"] == "EventGrid"
    assert _indexed_trigger(None)["source"] == "LogsAndContainerScan"
