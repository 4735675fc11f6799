"""The run context: the file ``<work>/.amlpipe/context.json`` that ``Run.get_context()`` in a step reads.

The worker writes it (:func:`write_run_context`) before the step's process starts and names it in
``$AMLPIPE_RUN_CONTEXT`` (:data:`CONTEXT_ENV`); the SDK reads it in ``amlpipe.core._run_context``::

    {"schema": 1, "id": "<run>:<step>:<attempt>", "pipeline_run_id", "step", "attempt", "experiment",
     "journal": "<file>", "artifacts_dir": "<folder>", "inputs": {"<name>": {"type", "path",
     "dataset_name", "dataset_version", "tabular": null | {"files": [...], "options": {...}}}}}

The schema is in ``docs/orchestration.md``. The SDK keeps its own copies of :data:`CONTEXT_ENV` and
:data:`CONTEXT_SCHEMA` (``amlpipe.core._run_base``, ``amlpipe.core._run_context``): importing this
package runs ``shared.orchestration``'s ``__init__``, which loads the graph model (pydantic), and a
step's ``from amlpipe.core import Run`` must stay light. Change both sides together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.orchestration.inputs import LocalInput

__all__ = ["CONTEXT_ENV", "CONTEXT_SCHEMA", "input_entry", "write_run_context"]

#: The environment variable that names a step's run-context file.
CONTEXT_ENV = "AMLPIPE_RUN_CONTEXT"
#: The context file's schema version (``Run.get_context()`` checks it).
CONTEXT_SCHEMA = 1


def input_entry(local: LocalInput) -> dict[str, Any]:
    """An input downloaded into the work folder as the run context's ``inputs[<name>]``."""
    tabular = None
    if local.type == "Tabular":
        tabular = {"files": [str(f) for f in local.files], "options": dict(local.tabular_options or {})}
    return {
        "type": local.type,
        "path": str(local.path),
        "dataset_name": local.dataset_name,
        "dataset_version": local.dataset_version,
        "tabular": tabular,
    }


def write_run_context(
    work: Path,
    *,
    run_id: str,
    step: str,
    attempt: int,
    experiment: str,
    inputs: Mapping[str, LocalInput],
) -> Path:
    """Write ``<work>/.amlpipe/context.json`` (with an empty journal and an artifacts folder); its path.

    ``Run.get_context()`` in the step reads it through ``$AMLPIPE_RUN_CONTEXT``. It sits outside
    ``src`` so it never mixes with the user's files.
    """
    folder = Path(os.path.abspath(work / ".amlpipe"))
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    journal = folder / "journal.jsonl"
    journal.touch()
    context = {
        "schema": CONTEXT_SCHEMA,
        "id": f"{run_id}:{step}:{attempt}",
        "pipeline_run_id": run_id,
        "step": step,
        "attempt": attempt,
        "experiment": experiment,
        "journal": str(journal),
        "artifacts_dir": str(artifacts),
        "inputs": {name: input_entry(local) for name, local in inputs.items()},
    }
    path = folder / "context.json"
    path.write_text(json.dumps(context, indent=2), encoding="utf-8")
    return path
