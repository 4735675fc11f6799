"""Shared end-to-end fixtures.

Sections are owned by the engineers who added them; add new fixtures in a section of your own.
"""

from __future__ import annotations

# --- pipelines, runs and OpenAPI: one real app for the whole session --------------------------
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from amlpipe.host.testing import HostProcess
from shared.auth.bootstrap import bootstrap
from tests.conftest import ROOT


@dataclass
class PipelinesApp:
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

    def principal_token(self, role: str) -> str:
        """A token of a new principal with ``role``."""
        response = requests.post(
            f"{self.url}/api/principals",
            json={"displayName": f"e2e {role}", "role": role},
            headers=self.headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return self.token(body["id"], body["secret"])


@pytest.fixture(scope="session")
def pipelines_app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelinesApp]:
    """One host of the real app for every pipelines/runs e2e test (tables under a unique prefix)."""
    unique = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": storage,
        "AzureFunctionsWebHost__hostid": f"e2e-pipelines-{unique}",
        "AMLPIPE_TABLE_PREFIX": f"p{unique}",
        "AMLPIPE_RUN_QUEUE": f"runs-{unique}",
        "AMLPIPE_STEP_QUEUE": f"steps-{unique}",
        "AMLPIPE_TOKEN_SIGNING_KEY": uuid.uuid4().hex * 2,
    }
    config_path = tmp_path_factory.mktemp("pipelines") / ".amlpipe" / "config.json"
    host = HostProcess(ROOT, env=env, args=["--shutdown-grace", "5"]).start()
    try:
        bootstrap(config_path, endpoint=host.url, settings=env)
        yield PipelinesApp(host, env, json.loads(config_path.read_text()), config_path)
    finally:
        host.stop(timeout=20)


# --- end of pipelines section -----------------------------------------------------------------
