"""What the latency benchmarks share: a summary of lags, and where the figures are written."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def lag_figures(lags: list[float]) -> dict[str, Any]:
    """p50, max and every lag (seconds, sorted); None figures when nothing was measured."""
    return {
        "p50_seconds": statistics.median(lags) if lags else None,
        "max_seconds": max(lags) if lags else None,
        "lags_seconds": sorted(lags),
    }


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write ``figures`` to ``bench/results/<name>.json`` (not versioned) and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2))
    return path
