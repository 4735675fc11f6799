"""Shared end-to-end fixtures: the real app (function_app.py at the repo root) on the local host.

``real_app(...)`` starts one app with its own host id, table prefix, queue names and default
datastore container on the session's Azurite, bootstraps an Owner principal into a config file, and
always stops the host. Test modules that need an app of their own use it; ``pipelines_app`` is one
shared for the whole session.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from hypothesis import HealthCheck, settings

from amlpipe.core.authentication import ServicePrincipalAuthentication
from amlpipe.core.workspace import Workspace
from amlpipe.host.testing import HostProcess, wait_for
from shared.auth.bootstrap import bootstrap
from shared.orchestration.files import LOG_CONTAINER, log_blob_name
from shared.storage import StorageClients
from tests.conftest import ROOT

#: Hypothesis settings of the e2e fuzzers: bounded, and derandomized so CI runs the same cases.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@dataclass
class RealApp:
    """The real amlpipe app on the local host, with an Owner principal in ``config_path``."""

    host: HostProcess
    env: dict[str, str]
    config: dict[str, str]
    config_path: Path

    @property
    def url(self) -> str:
        return self.host.url

    def token(self, client_id: str | None = None, client_secret: str | None = None) -> str:
        """A bearer token (default: the Owner's)."""
        response = requests.post(
            f"{self.url}/api/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id or self.config["service_principal_id"],
                "client_secret": client_secret or self.config["service_principal_password"],
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token()}"}

    def create_principal(self, role: str) -> dict[str, Any]:
        """A new principal with ``role`` (its id and its secret, shown this once)."""
        response = requests.post(
            f"{self.url}/api/principals",
            json={"displayName": f"e2e {role}", "role": role},
            headers=self.headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def principal_token(self, role: str) -> str:
        """A token of a new principal with ``role``."""
        body = self.create_principal(role)
        return self.token(body["id"], body["secret"])

    def step_log(self, run_id: str, step: str, attempt: int = 1) -> str:
        """What a step's execution printed (its std_log blob); "" before it has any."""
        with StorageClients.from_settings(self.env) as clients:
            blob = clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, step, attempt))
            try:
                return blob.download_blob().readall().decode("utf-8")
            except ResourceNotFoundError:
                return ""

    def wait_run_ended(self, run_id: str, *, timeout: float = 90) -> dict[str, Any]:
        """The run's REST body once it is Finished, Failed or Canceled."""
        token = self.token()

        def terminal() -> dict[str, Any] | None:
            response = requests.get(f"{self.url}/api/PipelineRuns/{run_id}", headers=self.headers(token), timeout=30)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body if body["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled") else None

        ended: dict[str, Any] = wait_for(terminal, timeout=timeout, interval=0.2, what=f"run {run_id} to end")
        return ended

    def owner(self) -> Workspace:
        """The Owner's workspace, from the bootstrapped config."""
        return Workspace.from_config(self.config_path)

    def workspace_as(self, role: str) -> Workspace:
        """A workspace authenticated as a new principal with ``role``."""
        body = self.create_principal(role)
        auth = ServicePrincipalAuthentication(self.config["tenant_id"], body["id"], body["secret"], endpoint=self.url)
        return Workspace(auth=auth, endpoint=self.url)


#: The session-wide app's type, by the name its tests use.
PipelinesApp = RealApp


@contextmanager
def real_app(
    storage: str,
    folder: Path,
    name: str,
    *,
    args: Sequence[str] = ("--shutdown-grace", "5"),
    **app_settings: str,
) -> Iterator[RealApp]:
    """Start the real app named ``name`` with isolated tables, queues and default container (its blob
    trigger must not see other apps' blobs); stop it whatever happens."""
    unique = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": storage,
        "AzureFunctionsWebHost__hostid": f"e2e-{name}-{unique}",
        "AMLPIPE_TABLE_PREFIX": f"t{unique}",
        "AMLPIPE_RUN_QUEUE": f"runs-{unique}",
        "AMLPIPE_STEP_QUEUE": f"steps-{unique}",
        "AMLPIPE_SCHEDULE_QUEUE": f"fires-{unique}",
        "AMLPIPE_DEFAULT_CONTAINER": f"blobs-{unique}",
        "AMLPIPE_TOKEN_SIGNING_KEY": uuid.uuid4().hex * 2,
        **app_settings,
    }
    config_path = folder / ".amlpipe" / "config.json"
    host = HostProcess(ROOT, env=env, args=list(args)).start()
    try:
        bootstrap(config_path, endpoint=host.url, settings=env)
        yield RealApp(host, env, json.loads(config_path.read_text()), config_path)
    finally:
        host.stop(timeout=20)


@pytest.fixture(scope="session")
def pipelines_app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApp]:
    """One app for every pipelines/runs/registry-fuzz e2e test."""
    with real_app(storage, tmp_path_factory.mktemp("pipelines"), "pipelines") as app:
        yield app
