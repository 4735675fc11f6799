"""Pipeline step figures on the real app: per-step overhead of a chain and fan-out throughput.

* Chain: 20 no-op PythonScriptSteps (``print('ok')``, ``allow_reuse=False``) linked with
  ``run_after``; overhead per step = (run EndTime - CreationTime) / 20 (the run's wire Status has
  no StartTime; also given: first step StartTime -> last step EndTime, / 20), and the wall time
  from submit to Finished. One warm-up run (not counted), then 3 measured runs: mean and best.
  Target ≤ 80 ms per step (floor ~40 ms).
* Fan-out: 200 independent no-op steps on the built-in ``local`` target (unlimited slots; the
  host's queue batch size bounds concurrency), steps per second with one host and with two hosts of
  the same app on the same storage and queues. Each fan-out run has a wall-time cap; when it is hit
  the figure is what completed by then.
* Fully reused 20-step chain: the same chain with ``allow_reuse=True``, run once (every step
  executes), then submitted again: every step is reused inside the orchestrator's one run message
  (no step message, no process). Figures: submit → Finished as the client sees it (polling every
  10 ms) and the run's CreationTime → EndTime, over 3 measured runs after one reused warm-up run.
  Target < 1 s.

Every measurement starts its own Azurite (free ports, temp dir), hosts with a unique table prefix
and queues, and an Owner bootstrapped into a temp config; everything is stopped in ``finally``.
Run alone with ``python -m bench.pipeline_steps`` (``python -m bench.pipeline_steps reused`` for the
reused chain only); results go to ``bench/results/pipeline_steps.json``.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from amlpipe.core.workspace import Workspace
from amlpipe.host.azurite import Azurite
from amlpipe.host.testing import HostProcess
from amlpipe.pipeline.core import Pipeline
from amlpipe.pipeline.steps import PythonScriptStep
from shared.auth.bootstrap import bootstrap

ROOT = Path(__file__).resolve().parent.parent
CHAIN = 20
CHAIN_RUNS = 3
FANOUT = 200
FANOUT_CAP_SECONDS = 180.0
TERMINAL = ("Finished", "Failed", "Canceled")
REUSED_RUNS = 3


@dataclass
class Stack:
    """A private Azurite, one or more hosts of the app on it, and an Owner's workspace."""

    hosts: list[HostProcess]
    workspace: Workspace
    config: dict[str, str]
    source: Path

    @property
    def url(self) -> str:
        return self.hosts[0].url

    def token(self) -> str:
        response = httpx.post(
            f"{self.url}/api/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.config["service_principal_id"],
                "client_secret": self.config["service_principal_password"],
            },
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@contextmanager
def stack(hosts: int = 1, **settings: str) -> Iterator[Stack]:
    """Azurite + ``hosts`` hosts of the app (same storage, settings and queues) + an Owner; ``settings``
    are extra app settings."""
    unique = uuid.uuid4().hex[:10]
    env = {
        "AzureFunctionsWebHost__hostid": f"bench-steps-{unique}",
        "AMLPIPE_TABLE_PREFIX": f"b{unique}",
        "AMLPIPE_RUN_QUEUE": f"runs-{unique}",
        "AMLPIPE_STEP_QUEUE": f"steps-{unique}",
        "AMLPIPE_SCHEDULE_QUEUE": f"fires-{unique}",
        "AMLPIPE_TOKEN_SIGNING_KEY": uuid.uuid4().hex * 2,
        **settings,
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        source = folder / "src"
        source.mkdir()
        (source / "noop.py").write_text("print('ok')\n")
        with Azurite(folder / "azurite") as azurite:
            env["AzureWebJobsStorage"] = azurite.connection_string
            started: list[HostProcess] = []
            try:
                for _ in range(hosts):
                    started.append(HostProcess(ROOT, env=env, args=["--shutdown-grace", "5"]).start(timeout=60))
                config_path = folder / ".amlpipe" / "config.json"
                bootstrap(config_path, endpoint=started[0].url, settings=env)
                config = json.loads(config_path.read_text())
                yield Stack(started, Workspace.from_config(str(config_path)), config, source)
            finally:
                for host in started:
                    try:
                        host.stop(timeout=20)
                    except Exception:  # noqa: BLE001 - stop() already killed it; stop the others too
                        pass


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _step(s: Stack, name: str, *, allow_reuse: bool = False) -> PythonScriptStep:
    return PythonScriptStep(
        name=name,
        script_name="noop.py",
        source_directory=str(s.source),
        compute_target="local",
        allow_reuse=allow_reuse,
    )


def _chain(s: Stack, length: int, *, allow_reuse: bool = False) -> Pipeline:
    steps = [_step(s, f"s{i:02d}", allow_reuse=allow_reuse) for i in range(length)]
    for before, after in zip(steps, steps[1:], strict=False):
        after.run_after(before)
    return Pipeline(s.workspace, steps=steps)


def _fanout(s: Stack, width: int) -> Pipeline:
    return Pipeline(s.workspace, steps=[_step(s, f"f{i:03d}") for i in range(width)])


def _execute(s: Stack, pipeline: Pipeline, name: str, *, timeout: float, interval: float) -> dict[str, Any]:
    """Publish ``pipeline``, submit it, poll until it ends (or ``timeout``); timings and its final body."""
    published = pipeline.publish(name=name, description="benchmark", version="1")
    headers = {"Authorization": f"Bearer {s.token()}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        submitted = time.perf_counter()
        with redirect_stdout(io.StringIO()):  # the SDK prints "Submitted PipelineRun ..."
            run = published.submit(s.workspace, "bench")
        deadline = submitted + timeout
        while True:
            body: dict[str, Any] = client.get(f"{s.url}/api/PipelineRuns/{run.id}").json()
            now = time.perf_counter()
            if body["Status"]["StatusCode"] in TERMINAL or now > deadline:
                break
            time.sleep(interval)
    return {"run_id": run.id, "wall_seconds": now - submitted, "body": body}


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    body = result["body"]
    status = body["Status"]
    steps = [x["Status"] for x in body.get("StepRuns", [])]
    counts: dict[str, int] = {}
    for x in steps:
        counts[x["StatusCode"]] = counts.get(x["StatusCode"], 0) + 1
    out: dict[str, Any] = {
        "run_id": result["run_id"],
        "status": status["StatusCode"],
        "submit_to_end_seconds": result["wall_seconds"],
        "steps_by_status": counts,
    }
    # The run's wire Status (azureml's shape) has CreationTime and EndTime but no StartTime, so the
    # run's span is CreationTime -> EndTime: it also counts the first orchestrator hop.
    start = status.get("StartTime") or status.get("CreationTime")
    if start and status.get("EndTime"):
        out["run_seconds"] = _seconds(start, status["EndTime"])
    started = [x["StartTime"] for x in steps if x.get("StartTime")]
    ended = [x["EndTime"] for x in steps if x.get("EndTime")]
    if started and ended:
        out["steps_span_seconds"] = _seconds(min(started), max(ended))
    timed = sorted((x["StartTime"], x["EndTime"]) for x in steps if x.get("StartTime") and x.get("EndTime"))
    if timed:
        # Inside a step (process, log blob, guarded writes) vs between steps (queue hops, decisions).
        out["mean_step_ms"] = statistics.mean(_seconds(a, b) for a, b in timed) * 1000
    if len(timed) > 1:
        gaps = [_seconds(prev[1], nxt[0]) for prev, nxt in zip(timed, timed[1:], strict=False)]
        out["mean_gap_ms"] = statistics.mean(gaps) * 1000
    return out


def chain() -> dict[str, Any]:
    with stack() as s:
        warm = _summary(_execute(s, _chain(s, CHAIN), "chain-warmup", timeout=300, interval=0.05))
        runs = []
        for i in range(CHAIN_RUNS):
            found = _summary(_execute(s, _chain(s, CHAIN), f"chain-{i}", timeout=300, interval=0.05))
            if found["status"] != "Finished":
                raise RuntimeError(f"chain run ended {found['status']}: {found}")
            found["ms_per_step"] = found["run_seconds"] * 1000 / CHAIN
            found["steps_span_ms_per_step"] = found["steps_span_seconds"] * 1000 / CHAIN
            runs.append(found)
    per_step = [r["ms_per_step"] for r in runs]
    walls = [r["submit_to_end_seconds"] for r in runs]
    return {
        "steps": CHAIN,
        "runs": runs,
        "warmup": warm,
        "mean_ms_per_step": statistics.mean(per_step),
        "best_ms_per_step": min(per_step),
        "mean_steps_span_ms_per_step": statistics.mean(r["steps_span_ms_per_step"] for r in runs),
        "mean_in_step_ms": statistics.mean(r["mean_step_ms"] for r in runs),
        "mean_between_steps_ms": statistics.mean(r["mean_gap_ms"] for r in runs),
        "mean_submit_to_finished_seconds": statistics.mean(walls),
        "best_submit_to_finished_seconds": min(walls),
    }


def reused_chain() -> dict[str, Any]:
    with stack() as s:
        pipeline = _chain(s, CHAIN, allow_reuse=True)
        executed = _summary(_execute(s, pipeline, "reused-chain", timeout=300, interval=0.05))
        if executed["status"] != "Finished":
            raise RuntimeError(f"the first chain run ended {executed['status']}: {executed}")
        warm = _summary(_execute(s, pipeline, "reused-chain", timeout=60, interval=0.01))
        runs = []
        for _ in range(REUSED_RUNS):
            found = _summary(_execute(s, pipeline, "reused-chain", timeout=60, interval=0.01))
            reused = found["steps_by_status"].get("Finished", 0)
            if found["status"] != "Finished" or reused != CHAIN:
                raise RuntimeError(f"a reused chain run ended {found['status']}: {found}")
            runs.append(found)
    walls = [r["submit_to_end_seconds"] for r in runs]
    spans = [r["run_seconds"] for r in runs]
    return {
        "steps": CHAIN,
        "executed": executed,
        "warmup": warm,
        "runs": runs,
        "mean_submit_to_finished_seconds": statistics.mean(walls),
        "best_submit_to_finished_seconds": min(walls),
        "worst_submit_to_finished_seconds": max(walls),
        "mean_run_seconds": statistics.mean(spans),
    }


def fanout(hosts: int) -> dict[str, Any]:
    with stack(hosts) as s:
        # Warm every host's worker (imports, snapshot cache) with a small fan-out first.
        _execute(s, _fanout(s, 8 * hosts), "fanout-warmup", timeout=120, interval=0.2)
        found = _summary(_execute(s, _fanout(s, FANOUT), "fanout", timeout=FANOUT_CAP_SECONDS, interval=0.5))
    done = found["steps_by_status"].get("Finished", 0)
    seconds = found.get("run_seconds") or found["submit_to_end_seconds"]
    found.update(
        hosts=hosts,
        width=FANOUT,
        completed=done,
        capped=found["status"] not in TERMINAL,
        steps_per_second=done / seconds,
        submit_to_end_steps_per_second=done / found["submit_to_end_seconds"],
    )
    return found


def _print_reused(r: dict[str, Any]) -> None:
    print(
        f"  Fully reused {CHAIN}-step chain: submit → Finished {r['mean_submit_to_finished_seconds']:.2f} s mean "
        f"(best {r['best_submit_to_finished_seconds']:.2f} s, worst {r['worst_submit_to_finished_seconds']:.2f} s; "
        f"run CreationTime → EndTime {r['mean_run_seconds']:.2f} s) over {REUSED_RUNS} runs; target < 1 s"
    )


def _save(figures: dict[str, Any]) -> None:
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / "pipeline_steps.json"
    previous: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **figures}, indent=2))


def main() -> None:
    if sys.argv[1:] == ["reused"]:
        figures = {"reused_chain": reused_chain()}
        _print_reused(figures["reused_chain"])
        _save(figures)
        return
    figures = {
        "chain": chain(),
        "reused_chain": reused_chain(),
        "fanout_1_host": fanout(1),
        "fanout_2_hosts": fanout(2),
    }
    c = figures["chain"]
    print("Pipeline step benchmark (client, hosts, step processes and Azurite share this machine)")
    print(
        f"  Chain of {CHAIN} no-op steps: {c['mean_ms_per_step']:.0f} ms mean per step "
        f"(best {c['best_ms_per_step']:.0f}; first step start → last step end "
        f"{c['mean_steps_span_ms_per_step']:.0f}) over {CHAIN_RUNS} runs; submit → Finished "
        f"{c['mean_submit_to_finished_seconds']:.2f} s mean (best {c['best_submit_to_finished_seconds']:.2f} s)"
    )
    print(
        f"    per step: {c['mean_in_step_ms']:.0f} ms inside a step (Running -> Finished), "
        f"{c['mean_between_steps_ms']:.0f} ms between one step's end and the next one's start"
    )
    for key in ("fanout_1_host", "fanout_2_hosts"):
        f = figures[key]
        note = f" (capped at {FANOUT_CAP_SECONDS:.0f} s, run still {f['status']})" if f["capped"] else ""
        print(
            f"  Fan-out {FANOUT} wide, {f['hosts']} host(s): {f['completed']}/{FANOUT} steps, "
            f"{f['steps_per_second']:.1f} steps/s (run created → end), "
            f"{f['submit_to_end_steps_per_second']:.1f} steps/s submit → end ({f['submit_to_end_seconds']:.1f} s){note}"
        )
    _print_reused(figures["reused_chain"])
    _save(figures)


if __name__ == "__main__":
    main()
