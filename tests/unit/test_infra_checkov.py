"""checkov scans infra/: every Bicep file (main.bicep, eventgrid.bicep) parses, no check fails, and each
suppression is still needed.

checkov lives in a venv of its own (``.venv-checkov``, made by ``make infra-check`` from
infra/requirements-checks.txt) because its pins clash with the app's. Under ``make test`` and
``make infra-check`` (which set ``AMLPIPE_REQUIRE_CHECKOV``) and in CI a missing checkov fails these
tests; a bare ``pytest`` elsewhere (``make unit`` on a fresh clone) skips them and says why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@cache
def _scan() -> dict[str, Any] | str:
    """checkov's JSON report, or why there is none."""
    if not CHECKOV.exists():
        return f"checkov is not installed at {CHECKOV.relative_to(ROOT)}: run `make infra-check`"
    # --skip-download: no call to Prisma Cloud for guidelines (there is no network but the registries).
    command = [str(CHECKOV), "--directory", str(INFRA), "--framework", "bicep", "--output", "json", "--skip-download"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode not in (0, 1):  # 1: some check failed, reported in the JSON
        return f"checkov exited {done.returncode}: {done.stderr[-2000:]}"
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def scan() -> dict[str, Any]:
    report = _scan()
    if isinstance(report, str):
        if os.environ.get("AMLPIPE_REQUIRE_CHECKOV") or os.environ.get("CI"):
            pytest.fail(report)
        pytest.skip(report)
    return report


def suppressed_in_templates() -> set[str]:
    found: set[str] = set()
    for path in sorted(INFRA.glob("*.bicep")):
        found |= set(re.findall(r"checkov:skip=([A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    return found


def test_checkov_parses_every_resource_of_the_templates() -> None:
    summary = scan()["summary"]
    assert summary["parsing_errors"] == 0
    # A file checkov cannot parse may be left out silently: count what it saw. main.bicep alone counts
    # 15; eventgrid.bicep adds 7 (checkov has no check for Event Grid system topics or subscriptions,
    # so only the count shows it was read).
    assert summary["resource_count"] >= 20, summary
    assert summary["passed"] >= 15, summary


def test_checkov_finds_no_failed_check() -> None:
    failed = scan()["results"]["failed_checks"]
    lines = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})" for c in failed
    ]
    assert not failed, "checkov failed checks (fix them, or suppress with a reason):\n" + "\n".join(lines)


def test_every_suppression_is_needed_and_gives_its_reason() -> None:
    skipped = scan()["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == suppressed_in_templates(), "a checkov:skip no longer matches a check"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) >= 40, check["check_id"]
