"""The ``amlpipe`` CLI as a user runs it (a subprocess) against the real app on the local host:
publish a pipeline file, list/show it, endpoints, submit with --param and --wait, logs (--follow),
cancel, metrics, --json, and the exit codes of a failed run (1), a 404 (3) and a Reader's cancel (4)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import PipelineRun
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration

PIPELINE = """\
from amlpipe.pipeline.core import Pipeline, PipelineData, PipelineParameter
from amlpipe.pipeline.steps import PythonScriptStep


def build(ws):
    data = PipelineData("handover", datastore=ws.get_default_datastore())
    produce = PythonScriptStep(
        name="produce", script_name="produce.py", source_directory="steps",
        outputs=[data], arguments=["--out", data], allow_reuse=False,
    )
    consume = PythonScriptStep(
        name="consume", script_name="consume.py", source_directory="steps", inputs=[data],
        arguments=["--in", data, "--greeting", PipelineParameter("greeting", default_value="hello")],
        allow_reuse=False,
    )
    return Pipeline(ws, steps=[consume])
"""

PRODUCE = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--out")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "data.txt"), "w") as f:
    f.write("payload")
print("produced the payload")
"""

CONSUME = """\
import argparse, os
from amlpipe.core import Run
p = argparse.ArgumentParser()
p.add_argument("--in", dest="src")
p.add_argument("--greeting")
a = p.parse_args()
print("read:", open(os.path.join(a.src, "data.txt")).read())
print("greeting:", a.greeting)
Run.get_context().log("rows", 3)
"""

FAILING = """\
from amlpipe.pipeline.core import Pipeline
from amlpipe.pipeline.steps import PythonScriptStep


def build(ws):
    return Pipeline(ws, steps=[PythonScriptStep("boom.py", name="boom", source_directory=".", allow_reuse=False)])
"""

# A step that prints, then waits for the file the test creates: the test decides when it ends.
GATED = """\
from amlpipe.pipeline.core import Pipeline, PipelineParameter
from amlpipe.pipeline.steps import PythonScriptStep


def build(ws):
    gate = PythonScriptStep(
        "gate.py", name="gate", source_directory=".", allow_reuse=False,
        arguments=["--release", PipelineParameter("release", default_value="none")],
    )
    return Pipeline(ws, steps=[gate])
"""

GATE = """\
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--release")
a = p.parse_args()
print("waiting for release", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(a.release) and time.monotonic() < deadline:
    time.sleep(0.05)
print("released" if os.path.exists(a.release) else "gave up", flush=True)
"""


QUIET = """\
from amlpipe.pipeline.core import Pipeline
from amlpipe.pipeline.steps import PythonScriptStep


def build(ws):
    print("building the quiet pipeline")  # goes to stderr: --json output stays JSON
    return Pipeline(ws, steps=[PythonScriptStep("quiet.py", name="quiet", source_directory=".", allow_reuse=False)])
"""


@dataclass
class Cli:
    """Runs ``python -m amlpipe.cli`` in a folder whose ``.amlpipe/config.json`` is the Owner's."""

    app: RealApp
    folder: Path
    pipelines: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amlpipe.cli", *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "amlpipe.cli", *args],
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLPIPE_")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def cli_app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    """The module's app: a short heartbeat, so a canceled step stops within a second."""
    folder = tmp_path_factory.mktemp("cli-app")
    with real_app(storage, folder, "cli", AMLPIPE_HEARTBEAT_SECONDS="0.5", AMLPIPE_KILL_GRACE_SECONDS="1") as app:
        yield app


@pytest.fixture(scope="module")
def cli(cli_app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI in a project folder: the Owner's config, and the pipeline files, published once."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / ".amlpipe").mkdir()
    (folder / ".amlpipe" / "config.json").write_text(cli_app.config_path.read_text())
    (folder / "defs" / "steps").mkdir(parents=True)
    (folder / "defs" / "pipeline.py").write_text(PIPELINE)
    (folder / "defs" / "steps" / "produce.py").write_text(PRODUCE)
    (folder / "defs" / "steps" / "consume.py").write_text(CONSUME)
    (folder / "failing").mkdir()
    (folder / "failing" / "pipeline.py").write_text(FAILING)
    (folder / "failing" / "boom.py").write_text("import sys\nprint('about to fail')\nsys.exit('kaboom')\n")
    (folder / "gated").mkdir()
    (folder / "gated" / "pipeline.py").write_text(GATED)
    (folder / "gated" / "gate.py").write_text(GATE)
    (folder / "quiet").mkdir()
    (folder / "quiet" / "pipeline.py").write_text(QUIET)
    (folder / "quiet" / "quiet.py").write_text("x = 1\n")
    made = Cli(cli_app, folder)
    for name in ("defs", "failing", "gated", "quiet"):
        body = made.json("pipeline", "publish", f"{name}/pipeline.py", "--name", f"cli-{name}", "--version", "1")
        made.pipelines[name] = body["id"]
    return made


@pytest.fixture(scope="module")
def finished_run(cli: Cli) -> dict[str, Any]:
    """A run of the two-step pipeline submitted with --param and --wait --json (stdout is not a terminal)."""
    done = cli(
        "run", "submit", cli.pipelines["defs"], "-e", "cli-e2e", "--param", "greeting=bonjour", "--wait", "--json"
    )
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def test_publish_then_list_and_show_the_pipeline(cli: Cli) -> None:
    pipeline_id = cli.pipelines["defs"]
    listed = cli.json("pipeline", "list")
    assert pipeline_id in [p["id"] for p in listed]
    shown = cli.json("pipeline", "show", pipeline_id)
    assert shown["name"] == "cli-defs" and shown["version"] == "1" and shown["status"] == "Active"
    assert sorted(shown["steps"]) == ["consume", "produce"] and shown["endpoint"].endswith(pipeline_id)
    plain = cli("pipeline", "show", pipeline_id)
    assert plain.returncode == 0 and "id:" in plain.stdout and "consume" in plain.stdout


def test_submit_with_param_and_wait_shows_every_step_finished(cli: Cli, finished_run: dict[str, Any]) -> None:
    assert finished_run["status"] == "Finished" and finished_run["parameters"] == {"greeting": "bonjour"}
    steps = {s["name"]: s for s in finished_run["steps"]}
    assert {name: s["status"] for name, s in steps.items()} == {"produce": "Finished", "consume": "Finished"}
    assert all(s["attempt"] == 1 and s["reused"] is False and s["durationSeconds"] >= 0 for s in steps.values())

    plain = cli("run", "show", finished_run["id"])
    assert plain.returncode == 0, plain.stderr
    rows = {
        line.split()[0]: line.split() for line in plain.stdout.splitlines() if line.startswith(("produce", "consume"))
    }
    assert rows["produce"][1:3] == ["Finished", "no"] and rows["consume"][1:3] == ["Finished", "no"]
    assert "status:     Finished" in plain.stdout and "greeting=bonjour" in plain.stdout


def test_run_logs_of_a_step_and_of_every_step(cli: Cli, finished_run: dict[str, Any]) -> None:
    one = cli("run", "logs", finished_run["id"], "--step", "consume")
    assert one.returncode == 0, one.stderr
    assert "read: payload" in one.stdout and "greeting: bonjour" in one.stdout and "produced" not in one.stdout

    every = cli("run", "logs", finished_run["id"])
    assert "[produce] produced the payload" in every.stdout.splitlines()
    assert "[consume] greeting: bonjour" in every.stdout.splitlines()

    body = cli.json("run", "logs", finished_run["id"])
    logs = {s["step"]: s["log"] for s in body["steps"]}
    assert body["runId"] == finished_run["id"] and "produced the payload\n" in logs["produce"]

    missing = cli("run", "logs", finished_run["id"], "--step", "nope")
    assert missing.returncode == 3 and "no step 'nope'" in _one_error_line(missing)


def test_logs_as_json_list_a_step_that_printed_nothing_with_an_empty_log(cli: Cli) -> None:
    done = cli("run", "submit", cli.pipelines["quiet"], "-e", "cli-e2e-quiet", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["id"]
    assert f"Submitted run {run_id}." in done.stderr  # the id is kept even when waiting fails
    assert cli.json("run", "logs", run_id)["steps"] == [{"step": "quiet", "attempt": 1, "log": ""}]


def test_run_list_filters_by_experiment_and_status(cli: Cli, finished_run: dict[str, Any]) -> None:
    listed = cli.json("run", "list", "-e", "cli-e2e")
    assert finished_run["id"] in [r["id"] for r in listed]
    assert len(cli.json("run", "list", "-e", "cli-e2e", "--top", "1")) == 1
    assert finished_run["id"] not in [r["id"] for r in cli.json("run", "list", "-e", "cli-e2e", "--status", "failed")]
    plain = cli("run", "list", "--pipeline-id", cli.pipelines["defs"])
    assert plain.stdout.splitlines()[0].split() == ["RUN", "STATUS", "EXPERIMENT", "CREATED", "DURATION", "PIPELINE"]
    assert any(line.startswith(finished_run["id"]) and " Finished " in line for line in plain.stdout.splitlines())


def test_run_metrics(cli: Cli, finished_run: dict[str, Any]) -> None:
    everything = cli.json("run", "metrics", finished_run["id"])
    assert everything[f"{finished_run['id']}:consume:1"] == {"rows": 3}
    assert cli.json("run", "metrics", finished_run["id"], "--step", "consume") == {
        f"{finished_run['id']}:consume:1": {"rows": 3}
    }


def test_wait_on_a_failing_run_exits_1(cli: Cli) -> None:
    done = cli("run", "submit", cli.pipelines["failing"], "-e", "cli-e2e-fail", "--wait")
    assert done.returncode == 1, done.stderr
    assert "status:     Failed" in done.stdout
    assert any(line.split()[:2] == ["boom", "Failed"] for line in done.stdout.splitlines())
    run_id = done.stdout.split("run:", 1)[1].split()[0]
    assert "about to fail" in cli("run", "logs", run_id, "--step", "boom").stdout
    boom = PipelineRun.get(cli.app.owner(), run_id).find_step_run("boom")[0]
    assert boom.attempt == 1 and "kaboom" in (boom.status_detail or "")
    watched = cli("run", "show", run_id, "--watch", "--json")
    assert watched.returncode == 1 and json.loads(watched.stdout)["status"] == "Failed"


@dataclass
class _Lines:
    """The lines a child process writes to stdout, read by a thread as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def join(self) -> None:
        self._thread.join(timeout=10)


def test_logs_follow_prints_while_the_step_runs_and_returns_when_the_run_ends(cli: Cli, tmp_path: Path) -> None:
    release = tmp_path / "release"
    submitted = cli("run", "submit", cli.pipelines["gated"], "-e", "cli-e2e-follow", "-p", f"release={release}")
    assert submitted.returncode == 0, submitted.stderr
    with cli.popen("run", "logs", submitted.stdout.strip(), "--follow") as follower:
        out = _Lines(follower)
        try:
            wait_for(lambda: "[gate] waiting for release" in out.lines, timeout=60, what="the follower to print")
            assert follower.poll() is None  # still following: the run has not ended
            release.write_text("go")
            assert follower.wait(timeout=60) == 0
        finally:
            if follower.poll() is None:
                follower.kill()
            out.join()
    assert out.lines == ["[gate] waiting for release", "[gate] released"]


def test_cancel_a_running_run_and_a_reader_may_not(cli: Cli, tmp_path: Path) -> None:
    run_id = cli("run", "submit", cli.pipelines["gated"], "-e", "cli-e2e-cancel", "-p", f"release={tmp_path / 'never'}")
    run_id_text = run_id.stdout.strip()
    wait_for(
        lambda: any(s["status"] == "Running" for s in cli.json("run", "show", run_id_text)["steps"]),
        timeout=60,
        what="the gate step to run",
    )
    watcher = _OnTerminal(cli, "run", "show", run_id_text, "--watch")
    try:
        wait_for(lambda: "0/1 steps ended" in watcher.text, timeout=30, what="the live table")
        watcher.process.send_signal(signal.SIGINT)
    finally:
        code = watcher.wait()
    assert code == 130 and "Stopped waiting; run" in watcher.text and "does not cancel it" in watcher.text
    assert cli.json("run", "show", run_id_text)["status"] == "Running"

    reader = tmp_path / "reader" / "config.json"
    made = cli("sp", "create", "--role", "Reader", "--write-config", str(reader))
    assert made.returncode == 0, made.stderr
    refused = cli("run", "cancel", run_id_text, "--config", str(reader))
    assert refused.returncode == 4 and "403" in _one_error_line(refused)

    canceled = cli("run", "cancel", run_id_text)
    assert canceled.returncode == 0 and canceled.stdout.startswith(f"Run {run_id_text}:"), canceled.stderr
    watched = cli("run", "show", run_id_text, "--watch", "--json")
    assert watched.returncode == 1, watched.stderr
    body = json.loads(watched.stdout)
    assert body["status"] == "Canceled" and body["steps"][0]["status"] == "Canceled"


def test_not_found_exits_3_with_one_line(cli: Cli) -> None:
    missing = str(uuid.uuid4())
    for args in (("run", "show", missing), ("pipeline", "show", missing), ("pipeline", "endpoint", "show", "nope-x")):
        done = cli(*args)
        assert done.returncode == 3, done.stderr
        assert _one_error_line(done).startswith("error: 404 NotFound: ")
    unknown = cli("run", "submit", "no-such-target", "-e", "x")
    assert unknown.returncode == 3 and "no published pipeline or pipeline endpoint" in _one_error_line(unknown)


def test_endpoint_create_add_version_set_default_and_submit_by_name(cli: Cli) -> None:
    name = f"cli-ep-{uuid.uuid4().hex[:8]}"
    created = cli.json("pipeline", "endpoint", "create", name, "--pipeline-id", cli.pipelines["failing"])
    assert created["name"] == name and created["defaultVersion"] == "0"
    added = cli.json("pipeline", "endpoint", "add-version", name, "--pipeline-id", cli.pipelines["defs"])
    assert [v["pipelineId"] for v in added["versions"]] == [cli.pipelines["failing"], cli.pipelines["defs"]]
    assert added["defaultVersion"] == "0"
    chosen = cli.json("pipeline", "endpoint", "set-default", created["id"], "--version", "1")
    assert chosen["defaultVersion"] == "1"
    assert name in [e["name"] for e in cli.json("pipeline", "endpoint", "list")]
    shown = cli("pipeline", "endpoint", "show", name)
    assert shown.returncode == 0 and any(
        line.split() == ["1", cli.pipelines["defs"], "*"] for line in shown.stdout.splitlines()
    )

    run = cli.json("run", "submit", name, "-e", "cli-e2e-endpoint", "-p", "greeting=hi")
    assert run["pipelineEndpointId"] == created["id"]
    ended = cli("run", "show", run["id"], "--watch", "--json")
    assert ended.returncode == 0 and json.loads(ended.stdout)["status"] == "Finished", ended.stdout


class _OnTerminal:
    """``python -m amlpipe.cli ARGS`` with a pseudo-terminal (160 columns) as stdin, stdout and stderr;
    a thread collects what it writes."""

    def __init__(self, cli: Cli, *args: str) -> None:
        self._main, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))  # rows stay whole
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "amlpipe.cli", *args],
                cwd=cli.folder,
                stdin=child,
                stdout=child,
                stderr=child,
                env={**_env(), "TERM": "xterm"},
            )
        finally:
            os.close(child)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._main, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def wait(self, timeout: float = 30) -> int:
        """The exit code, once the child ended and everything it wrote was read."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=10)
            self._reader.join(timeout=10)
            os.close(self._main)
        return code


def test_show_watch_on_a_terminal_draws_the_live_table(cli: Cli, finished_run: dict[str, Any]) -> None:
    watcher = _OnTerminal(cli, "run", "show", finished_run["id"], "--watch")
    assert watcher.wait() == 0
    assert "produce" in watcher.text and "consume" in watcher.text and "2/2 steps ended" in watcher.text
    assert f"Run {finished_run['id']} Finished." in watcher.text


def test_login_checks_the_credentials_and_writes_a_private_config(cli: Cli, tmp_path: Path) -> None:
    config = cli.app.config
    target = tmp_path / "login" / "config.json"
    args = ("login", "--endpoint", cli.app.url, "--tenant-id", config["tenant_id"], "--sp-id")
    done = cli(*args, config["service_principal_id"], "--sp-password", config["service_principal_password"],
               "--write-config", str(target), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert config["service_principal_password"] not in done.stdout + done.stderr
    assert json.loads(done.stdout)["role"] == "Owner"
    assert json.loads(target.read_text())["service_principal_password"] == config["service_principal_password"]
    assert target.stat().st_mode & 0o777 == 0o600
    assert cli.json("config", "show", "--config", str(target))["config"] == str(target)

    refused = cli(
        *args, config["service_principal_id"], "--sp-password", "wrong", "--write-config", str(tmp_path / "x")
    )
    assert refused.returncode == 4 and "invalid_client" in _one_error_line(refused)
    assert not (tmp_path / "x").exists()


def test_the_step_log_route_reads_from_an_offset_and_the_sdk_reads_it_whole(
    cli: Cli, finished_run: dict[str, Any]
) -> None:
    app, run_id = cli.app, finished_run["id"]
    url = f"{app.url}/api/PipelineRuns/{run_id}/steps/consume/logs"
    whole = requests.get(url, headers=app.headers(), timeout=30).json()
    assert whole["runId"] == f"{run_id}:consume:1" and whole["attempt"] == 1 and whole["offset"] == 0
    assert whole["nextOffset"] == whole["size"] == len(whole["content"].encode())
    tail = requests.get(url, params={"offset": "5"}, headers=app.headers(), timeout=30).json()
    assert tail["content"] == whole["content"].encode()[5:].decode() and tail["nextOffset"] == whole["size"]
    past = requests.get(url, params={"offset": str(whole["size"] + 10)}, headers=app.headers(), timeout=30).json()
    assert past["content"] == "" and past["nextOffset"] == whole["size"] + 10

    assert requests.get(url, params={"offset": "-1"}, headers=app.headers(), timeout=30).status_code == 400
    assert requests.get(url, params={"attempt": "2"}, headers=app.headers(), timeout=30).status_code == 404
    missing = f"{app.url}/api/PipelineRuns/{run_id}/steps/nope/logs"
    assert requests.get(missing, headers=app.headers(), timeout=30).status_code == 404

    step = PipelineRun.get(app.owner(), run_id).find_step_run("consume")[0]
    assert step.get_job_log() == step.get_stdout_log() == whole["content"]
    assert step.attempt == 1 and step.read_log(5).text == tail["content"]


def test_disable_and_enable_a_pipeline_and_an_endpoint(cli: Cli) -> None:
    published = cli.json("pipeline", "publish", "gated/pipeline.py", "--name", "cli-toggle")
    disabled = cli.json("pipeline", "disable", published["id"])
    assert disabled["status"] == "Disabled"
    assert published["id"] not in [p["id"] for p in cli.json("pipeline", "list")]
    assert published["id"] in [p["id"] for p in cli.json("pipeline", "list", "--all")]
    refused = cli("run", "submit", published["id"], "-e", "cli-e2e-toggle")
    assert refused.returncode == 2, refused.stderr
    _one_error_line(refused)
    enabled = cli("pipeline", "enable", published["id"])
    assert enabled.returncode == 0 and enabled.stdout.strip().endswith("is Active.")

    name = f"cli-toggle-{uuid.uuid4().hex[:8]}"
    cli.json("pipeline", "endpoint", "create", name, "--pipeline-id", published["id"])
    assert cli.json("pipeline", "endpoint", "disable", name)["status"] == "Disabled"
    assert name not in [e["name"] for e in cli.json("pipeline", "endpoint", "list")]
    assert name in [e["name"] for e in cli.json("pipeline", "endpoint", "list", "--all")]
    assert cli.json("pipeline", "endpoint", "enable", name)["status"] == "Active"


def test_publish_into_an_endpoint_creates_it_then_makes_each_new_pipeline_its_default(cli: Cli) -> None:
    first = cli.json("pipeline", "publish", "quiet/pipeline.py", "--name", "cli-ep-quiet", "--endpoint", "cli-ep-new")
    endpoint = cli.json("pipeline", "endpoint", "show", "cli-ep-new")
    assert endpoint["versions"] == [{"version": "0", "pipelineId": first["id"]}] and endpoint["defaultVersion"] == "0"
    again = cli("pipeline", "publish", "quiet/pipeline.py", "--name", "cli-ep-quiet", "--endpoint", "cli-ep-new")
    assert again.returncode == 0 and "Pipeline endpoint cli-ep-new: default version 1." in again.stderr
    endpoint = cli.json("pipeline", "endpoint", "show", "cli-ep-new")
    assert endpoint["defaultVersion"] == "1" and len(endpoint["versions"]) == 2


def test_token_prints_a_bearer_token_the_service_accepts(cli: Cli) -> None:
    done = cli("token")
    assert done.returncode == 0 and done.stdout.count("\n") == 1 and done.stderr == ""
    answer = requests.get(
        f"{cli.app.url}/api/experiments", headers={"Authorization": f"Bearer {done.stdout.strip()}"}, timeout=30
    )
    assert answer.status_code == 200
    body = cli.json("token")
    assert body["tokenType"] == "Bearer" and isinstance(body["expiresOn"], int) and body["accessToken"]
