"""The studio in a real browser: Debian's Chromium, driven headless by Playwright, against the real app.

Sign in, watch a running DP-100 run finish in its graph, open a step's log and its metric chart, cancel
a run as an Operator, be refused as a Reader, and read the pipelines and schedules pages — at 1280×800
and in a narrow window, with the keyboard where a user would use it. Screenshots are saved under
``test-artifacts/studio/`` (or ``$AMLPIPE_TEST_ARTIFACTS/studio``) for people to look at.

Playwright never downloads a browser here: it launches the system Chromium (``make browser`` installs
Debian's package). Without one the module skips, and says why.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import playwright.sync_api as playwright_api
import pytest
import requests

from amlpipe.core import Experiment, Workspace
from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import Pipeline, PipelineEndpoint
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import RealApp, real_app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AMLPIPE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "studio"
BROWSER_NOTE = ROOT / ".venv" / "browser-unavailable"
#: Long enough for the page to find every state it is asked about; expect() polls, it never sleeps.
SLOW = 90_000

# Playwright is pinned in requirements-dev.txt: missing, the module errors rather than skips. Only a
# browser that truly cannot be installed skips these tests (the fixture below says why).
expect = playwright_api.expect


def chromium() -> str | None:
    """The Chromium to drive: ``$AMLPIPE_CHROMIUM``, else Debian's ``chromium`` on the PATH."""
    given = os.environ.get("AMLPIPE_CHROMIUM")
    if given:
        return given
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium()
    if path is None:
        reason = BROWSER_NOTE.read_text().strip() if BROWSER_NOTE.exists() else "run `make browser`"
        pytest.skip(f"the studio's browser tests need Chromium, and none is installed: {reason}")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    # A 1 s heartbeat: a cancel reaches a running step's process within a second.
    with real_app(storage, tmp_path_factory.mktemp("studio"), "studio", AMLPIPE_HEARTBEAT_SECONDS="1") as started:
        yield started


def _dp100_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dp100_pipeline", ROOT / "examples" / "dp100" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dp100(app: RealApp) -> str:
    """The DP-100 pipeline published as endpoint ``dp100`` (its dataset and compute registered); its id."""
    example = _dp100_module()
    ws = app.owner()
    example.prerequisites(ws)
    published = example.build_pipeline(ws).publish(name="dp100", description="DP-100 module 6", version="1.0")
    PipelineEndpoint.publish(ws, name="dp100", pipeline=published, description="DP-100 training")
    return str(published.id)


@pytest.fixture(scope="module")
def slow_pipeline(app: RealApp, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A published one-step pipeline whose step prints a tick five times a second for two minutes."""
    folder = tmp_path_factory.mktemp("slow")
    (folder / "wait.py").write_text(
        "import time\nfor i in range(600):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.2)\nprint('done')\n"
    )
    step = PythonScriptStep(name="wait", script_name="wait.py", source_directory=str(folder))
    published = Pipeline(app.owner(), steps=[step]).publish(name="slow", description="waits", version="1")
    return str(published.id)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context at 1280×800; fails the test on any script error the page raised."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        shot(opened, f"{request.node.name}-last")
        context.close()
    assert not errors, f"the page raised: {errors}"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, app: RealApp, role: str | None = None) -> None:
    """Sign in with a service principal's id and secret (the Owner's, or a new principal with ``role``)."""
    if role is None:
        client_id, secret, role = app.config["service_principal_id"], app.config["service_principal_password"], "Owner"
    else:
        created = app.create_principal(role)
        client_id, secret = created["id"], created["secret"]
    page.goto(f"{app.url}/api/studio")
    page.fill("#client-id", client_id)
    page.fill("#client-secret", secret)
    page.press("#client-secret", "Enter")
    expect(page.locator("#who-role")).to_have_text(role)


def submit(app: RealApp, pipeline_id: str, experiment: str, token: str, **params: Any) -> str:
    response = requests.post(
        f"{app.url}/api/PipelineRuns/PipelineSubmit/{pipeline_id}",
        json={"ExperimentName": experiment, "ParameterAssignments": params},
        headers=app.headers(token),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["Id"])


def wait_step_running(app: RealApp, run_id: str, step: str, token: str) -> None:
    def running() -> bool:
        body = requests.get(f"{app.url}/api/PipelineRuns/{run_id}", headers=app.headers(token), timeout=30).json()
        return any(s["Name"] == step and s["Status"]["StatusCode"] == "Running" for s in body["StepRuns"])

    wait_for(running, timeout=60, interval=0.2, what=f"step {step!r} of run {run_id} to run")


def test_nothing_is_readable_before_sign_in_and_a_wrong_secret_is_refused(page: Any, app: RealApp) -> None:
    page.goto(f"{app.url}/api/studio")
    assert page.url.endswith("/api/studio/")  # redirected, so the page's relative links resolve
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator("#nav")).to_be_hidden()
    # The page's own API calls need a token like anyone else's.
    status = page.evaluate("async () => (await fetch('../experiments')).status")
    assert status == 401

    page.fill("#client-id", app.config["service_principal_id"])
    page.fill("#client-secret", "not-the-secret")
    page.click("#sign-in-sp button")
    expect(page.locator("#notice")).to_contain_text("Sign-in failed")
    expect(page.locator("h1")).to_have_text("Sign in")
    shot(page, "sign-in-refused")


def test_an_operator_watches_a_dp100_run_finish_opens_a_log_and_sees_a_metric_chart(
    page: Any, app: RealApp, dp100: str
) -> None:
    sign_in(page, app, "Operator")
    run_id = submit(app, dp100, "dp100-studio", app.token(), reg_rate=0.05)
    page.goto(f"{app.url}/api/studio/#/runs/{run_id}")

    # The graph: the dataset, the two steps, edges labelled with what passes between them.
    graph = page.locator("svg.graph")
    expect(graph.locator("[data-step]")).to_have_count(2)
    expect(graph.locator(".node.data")).to_contain_text("dataset raw_dataset")
    expect(graph.locator(".edge-label")).to_have_text(["raw_data", "prepped"])
    first_seen = page.locator(".run-status [data-status]").get_attribute("data-status")
    assert first_seen in ("NotStarted", "Queued", "Running"), f"the run had already ended ({first_seen}) on arrival"
    shot(page, "dp100-running")

    # Live: the page updates itself until the run ends; both steps turn Finished in the graph.
    expect(page.locator(".run-status [data-status]")).to_have_attribute("data-status", "Finished", timeout=SLOW)
    expect(graph.locator("[data-step='prepare data']")).to_have_attribute("data-status", "Finished")
    expect(graph.locator("[data-step='train model']")).to_have_attribute("data-status", "Finished")
    expect(page.locator("#run-trigger")).to_have_text("REST")

    # Open the training step from the keyboard: its log, its metrics, its chart and its files.
    graph.locator("[data-step='train model']").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-title")).to_have_text("train model")
    expect(page.locator("#step-log")).to_contain_text("Training a logistic regression model", timeout=SLOW)
    expect(page.locator("#step-metrics dd[data-metric='Regularization Rate']")).to_have_text("0.05")
    chart = page.locator("figure.metric-chart[data-metric='Fold accuracy']")
    expect(chart.locator("circle")).to_have_count(5)
    expect(page.locator(".step-panel")).to_contain_text("outputs/diabetes_model.pkl")
    assert page.url.endswith(f"#/runs/{run_id}/train%20model")  # a link that opens this step again
    shot(page, "dp100-finished-1280x800")

    page.set_viewport_size({"width": 400, "height": 800})
    expect(chart).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the narrow page scrolls sideways ({width}px wide)"
    shot(page, "dp100-finished-narrow")


def test_an_operator_tails_a_running_step_and_cancels_the_run_from_its_page(
    page: Any, app: RealApp, slow_pipeline: str
) -> None:
    sign_in(page, app, "Operator")
    token = app.token()
    run_id = submit(app, slow_pipeline, "studio-cancel", token)
    wait_step_running(app, run_id, "wait", token)
    page.goto(f"{app.url}/api/studio/#/runs/{run_id}/wait")
    expect(page.locator(".run-status [data-status]")).to_have_attribute("data-status", "Running")

    # The log grows on screen while the step runs (several polls, several chunks).
    log = page.locator("#step-log")
    expect(log).to_contain_text("tick 2", timeout=SLOW)
    expect(log).to_contain_text("tick 20", timeout=SLOW)
    assert log.inner_text().index("tick 2\n") < log.inner_text().index("tick 20")

    page.click("#cancel-run")
    expect(page.locator("#confirm-cancel")).to_be_focused()  # the confirmation takes focus
    # ... and keeps it while the page goes on polling (the run is read every 2 s; the log grows).
    ticks = log.inner_text().count("tick ")
    expect(log).to_contain_text(f"tick {ticks + 15}", timeout=SLOW)
    expect(page.locator("#confirm-cancel")).to_be_focused()
    shot(page, "cancel-confirm")
    page.keyboard.press("Enter")
    expect(page.locator(".run-status [data-status]")).to_have_attribute("data-status", "Canceled", timeout=SLOW)
    expect(page.locator("svg.graph [data-step='wait']")).to_have_attribute("data-status", "Canceled")
    expect(page.locator("#cancel-run")).to_have_count(0)
    expect(page.locator(".step-panel")).to_have_attribute("data-live", "done", timeout=SLOW)  # polling stopped
    expect(page.locator(".step-panel .badge")).to_have_attribute("data-status", "Canceled")  # facts kept up
    assert "done" not in log.inner_text().split()
    shot(page, "cancel-done")


def test_a_retried_steps_log_follows_its_new_attempt_from_the_first_byte(
    page: Any, app: RealApp, tmp_path: Path
) -> None:
    # Attempt 1 prints ~14 KB, then waits for the test's go-ahead and fails; attempt 2 prints two lines.
    gate, first_done = tmp_path / "go", tmp_path / "first-done"
    (tmp_path / "flaky.py").write_text(
        "import pathlib, sys, time\n"
        f"gate, first_done = pathlib.Path({str(gate)!r}), pathlib.Path({str(first_done)!r})\n"
        "if not first_done.exists():\n"
        "    for i in range(150):\n"
        "        print('first attempt line', i, 'x' * 80)\n"
        "    sys.stdout.flush()\n"
        "    while not gate.exists():\n"
        "        time.sleep(0.05)\n"
        "    first_done.write_text('1')\n"
        "    sys.exit('attempt 1 fails')\n"
        "print('SECOND-ATTEMPT-START')\nprint('SECOND-ATTEMPT-END')\n"
    )
    flaky = PythonScriptStep(name="flaky", script_name="flaky.py", source_directory=str(tmp_path))
    flaky.set_retry_settings(max_retries=1, backoff_seconds=0)
    pipeline_id = str(Pipeline(app.owner(), steps=[flaky]).publish(name="flaky", description="retried").id)
    sign_in(page, app, "Operator")
    token = app.token()
    run_id = submit(app, pipeline_id, "studio-retry", token)
    page.goto(f"{app.url}/api/studio/#/runs/{run_id}/flaky")
    log = page.locator("#step-log")
    expect(log).to_contain_text("first attempt line 149", timeout=SLOW)

    gate.write_text("go")
    expect(log).to_contain_text("SECOND-ATTEMPT-END", timeout=SLOW)
    expect(log).not_to_contain_text("first attempt line")
    expect(page.locator(".step-panel dd").nth(1)).to_have_text("2")  # Attempt
    expect(page.locator(".run-status [data-status]")).to_have_attribute("data-status", "Finished", timeout=SLOW)
    expect(page.locator(".step-panel")).to_have_attribute("data-live", "done", timeout=SLOW)
    expect(page.locator(".step-panel .badge")).to_have_attribute("data-status", "Finished")
    shot(page, "retried-step")


def test_a_bypassed_step_says_so_and_its_panel_stops_polling(page: Any, app: RealApp, tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("import sys\nprint('about to fail')\nsys.exit('kaboom')\n")
    (tmp_path / "after.py").write_text("print('never')\n")
    boom = PythonScriptStep(name="boom", script_name="boom.py", source_directory=str(tmp_path))
    after = PythonScriptStep(name="after", script_name="after.py", source_directory=str(tmp_path))
    after.run_after(boom)
    pipeline_id = str(Pipeline(app.owner(), steps=[after]).publish(name="bypass", description="bypassed").id)
    token = app.token()
    response = requests.post(
        f"{app.url}/api/PipelineRuns/PipelineSubmit/{pipeline_id}",
        json={"ExperimentName": "studio-bypass", "ContinueRunOnStepFailure": True},
        headers=app.headers(token),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    run_id = str(response.json()["Id"])
    ended = app.wait_run_ended(run_id)
    statuses = {s["Name"]: s["Status"]["StatusCode"] for s in ended["StepRuns"]}
    assert statuses == {"boom": "Failed", "after": "Bypassed"}
    sign_in(page, app, "Reader")
    page.goto(f"{app.url}/api/studio/#/runs/{run_id}/after")
    expect(page.locator("svg.graph [data-step='boom']")).to_have_attribute("data-status", "Failed")
    expect(page.locator("svg.graph [data-step='after']")).to_have_attribute("data-status", "Bypassed")
    expect(page.locator(".step-panel")).to_have_attribute("data-live", "done", timeout=SLOW)
    expect(page.locator("#step-log")).to_have_text("Bypassed: this step did not run.")
    shot(page, "bypassed-step")


def test_a_reader_sees_no_cancel_button_and_the_api_refuses_the_cancel(
    page: Any, app: RealApp, slow_pipeline: str
) -> None:
    token = app.token()
    run_id = submit(app, slow_pipeline, "studio-reader", token)
    try:
        wait_step_running(app, run_id, "wait", token)
        reader = app.create_principal("Reader")
        page.goto(f"{app.url}/api/studio/")
        page.fill("#bearer-token", app.token(reader["id"], reader["secret"]))  # the token form
        page.click("#sign-in-token button")
        expect(page.locator("#who-role")).to_have_text("Reader")
        page.goto(f"{app.url}/api/studio/#/runs/{run_id}")
        expect(page.locator(".run-status [data-status]")).to_have_attribute("data-status", "Running")
        expect(page.locator("svg.graph [data-step='wait']")).to_have_attribute("data-status", "Running")
        expect(page.locator("#cancel-run")).to_have_count(0)
        shot(page, "reader-run")

        # Even a hand-made request with the Reader's token is refused by the API.
        status, body = page.evaluate(
            """async (id) => {
                const { token } = JSON.parse(sessionStorage.getItem("amlpipe.studio.session"));
                const r = await fetch(`../PipelineRuns/${id}/cancel`, {
                    method: "POST", headers: { Authorization: `Bearer ${token}` } });
                return [r.status, await r.json()];
            }""",
            run_id,
        )
        assert status == 403 and body["Error"]["Code"], body
        running = requests.get(f"{app.url}/api/PipelineRuns/{run_id}", headers=app.headers(token), timeout=30)
        assert running.json()["CancelRequested"] is False
    finally:
        requests.post(f"{app.url}/api/PipelineRuns/{run_id}/cancel", headers=app.headers(token), timeout=30)


def test_pipelines_endpoints_and_schedules_are_listed_and_reached_by_keyboard(
    page: Any, app: RealApp, dp100: str
) -> None:
    ws = app.owner()
    from amlpipe.pipeline.core import Schedule, ScheduleRecurrence

    Schedule.create(
        ws,
        name="nightly-dp100",
        pipeline_id=dp100,
        experiment_name="dp100-nightly",
        recurrence=ScheduleRecurrence(frequency="Day", interval=1, start_time="2030-01-01T02:00:00"),
    )
    sign_in(page, app)
    page.reload()  # a fresh load: focus starts at the top of the page (the session survives the reload)
    expect(page.locator("#who-role")).to_have_text("Owner")
    # Keyboard only: the skip link first (it moves focus to the content, and stays on the page)...
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    before = page.url
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main" and page.url == before
    expect(page.locator("h1")).to_have_text("Experiments")
    # ... then, from the top, the navigation.
    page.reload()
    expect(page.locator("#who-role")).to_have_text("Owner")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Pipelines"
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Pipelines")
    expect(page.locator("#nav a[aria-current='page']")).to_have_text("Pipelines")
    endpoints = page.locator("table").first
    expect(endpoints).to_contain_text("dp100")
    expect(endpoints).to_contain_text("v0: dp100")
    expect(endpoints).to_contain_text("(default)")
    shot(page, "pipelines")

    page.click("#nav >> text=Schedules")
    row = page.locator("tr", has_text="nightly-dp100")
    expect(row).to_contain_text("Every 1 Day from 2030-01-01T02:00:00 UTC")
    expect(row.locator(".next-due")).to_contain_text("2030-01-01")
    shot(page, "schedules")

    # A list that changes under a keyboard user keeps their place: the focused run link stays focused.
    token = app.token()
    first = submit(app, dp100, "studio-list", token)
    page.goto(f"{app.url}/api/studio/#/experiments/studio-list")
    link = page.locator(f"a[href='#/runs/{first}']")
    link.focus()
    second = submit(app, dp100, "studio-list", token)
    expect(page.locator(f"a[href='#/runs/{second}']")).to_be_visible(timeout=SLOW)  # the table was rebuilt
    expect(link).to_be_focused()
    for run_id in (first, second):
        requests.post(f"{app.url}/api/PipelineRuns/{run_id}/cancel", headers=app.headers(token), timeout=30)


def test_the_studio_apis_a_page_needs_answer_over_http(app: RealApp, dp100: str) -> None:
    token = app.token()
    me = requests.get(f"{app.url}/api/me", headers=app.headers(token), timeout=30)
    assert me.status_code == 200 and me.json()["role"] == "Owner"
    assert me.json()["id"] == app.config["service_principal_id"]
    assert requests.get(f"{app.url}/api/me", timeout=30).status_code == 401

    ws = Workspace.from_config(app.config_path)
    run = Experiment(ws, "studio-graph").submit(_dp100_module().build_pipeline(ws))
    graph = requests.get(f"{app.url}/api/PipelineRuns/{run.id}/graph", headers=app.headers(token), timeout=30)
    assert graph.status_code == 200
    assert [s["name"] for s in graph.json()["steps"]] == ["prepare data", "train model"]
    missing = requests.get(f"{app.url}/api/PipelineRuns/{'0' * 32}/graph", headers=app.headers(token), timeout=30)
    assert missing.status_code == 404 and missing.json()["Error"]["Code"] == "NotFound"
    requests.post(f"{app.url}/api/PipelineRuns/{run.id}/cancel", headers=app.headers(token), timeout=30)

    page = requests.get(f"{app.url}/api/studio/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    again = requests.get(f"{app.url}/api/studio/", headers={"If-None-Match": page.headers["ETag"]}, timeout=30)
    assert again.status_code == 304 and again.content == b""
    # Sent byte for byte (http.client does not resolve "..", as requests would before sending).
    address = urlsplit(app.url)
    for probe in ("../function_app.py", "..%2Ffunction_app.py", "js/..%2F..%2Fhost.json", "tests/model.test.mjs",
                  ".hidden", "%2e%2e/local.settings.json", "js/app.js%00.html"):  # fmt: skip
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
        try:
            connection.request("GET", f"/api/studio/{probe}")
            answer = connection.getresponse()
            status, text = answer.status, answer.read().decode()
        finally:
            connection.close()
        assert status == 404, probe
        assert json.loads(text)["Error"]["Target"] == "path", probe
