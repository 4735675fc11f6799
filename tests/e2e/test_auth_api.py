"""Auth on the real app over HTTP: the token endpoint, bearer checks (401/403), principals, the
external issuer, the SDK's ServicePrincipalAuthentication and the CLI."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.data.tables import TableServiceClient
from cryptography.hazmat.primitives.asymmetric import rsa

from amlpipe.core import Workspace
from amlpipe.core.authentication import ServicePrincipalAuthentication, TokenAuthentication
from amlpipe.exceptions import AuthenticationException
from amlpipe.host.testing import HostProcess
from shared.auth import Role, TokenIssuer
from tests.conftest import ROOT
from tests.e2e.conftest import real_app

pytestmark = pytest.mark.integration

SIGNING_KEY = secrets.token_urlsafe(48)


@dataclass
class App:
    host: HostProcess
    http: httpx.Client
    env: dict[str, str]
    config: dict[str, str]
    config_path: Path

    def token(self, client_id: str, client_secret: str) -> str:
        response = self.http.post(
            "/api/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    @property
    def owner_token(self) -> str:
        return self.token(self.config["service_principal_id"], self.config["service_principal_password"])

    def create(self, role: str, token: str | None = None) -> dict[str, Any]:
        response = self.http.post(
            "/api/principals",
            json={"displayName": f"test {role}", "role": role},
            headers=bearer(token or self.owner_token),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("auth")
    with (
        real_app(storage, folder, "auth", args=["--verbose"], AMLPIPE_TOKEN_SIGNING_KEY=SIGNING_KEY) as real,
        httpx.Client(base_url=real.url, timeout=30) as http,
    ):
        yield App(real.host, http, real.env, real.config, real.config_path)


# --- the token endpoint ------------------------------------------------------------------------


def test_client_credentials_give_a_short_lived_bearer_token(app: App) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": app.config["service_principal_id"],
        "client_secret": app.config["service_principal_password"],
    }
    for response in (app.http.post("/api/oauth2/token", data=form), app.http.post("/api/oauth2/token", json=form)):
        assert response.status_code == 200
        body = response.json()
        assert (
            body["token_type"] == "Bearer"
            and body["expires_in"] == 3600
            and set(body)
            == {
                "access_token",
                "token_type",
                "expires_in",
            }
        )
        assert response.headers["Cache-Control"] == "no-store"
        claims = jwt.decode(body["access_token"], SIGNING_KEY, algorithms=["HS256"], audience="amlpipe")
        assert claims["sub"] == app.config["service_principal_id"] and claims["roles"] == ["Owner"]
        assert claims["tid"] == app.config["tenant_id"]


@pytest.mark.parametrize("wrong", ["secret", "id"])
def test_an_invalid_client_is_401_invalid_client(app: App, wrong: str) -> None:
    client_id = str(uuid.uuid4()) if wrong == "id" else app.config["service_principal_id"]
    secret = "nope" if wrong == "secret" else app.config["service_principal_password"]
    response = app.http.post(
        "/api/oauth2/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}


def test_another_grant_is_400_unsupported_grant_type(app: App) -> None:
    response = app.http.post("/api/oauth2/token", data={"grant_type": "password", "username": "u", "password": "p"})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_a_malformed_token_request_is_400_invalid_request(app: App) -> None:
    response = app.http.post(
        "/api/oauth2/token", content=b"grant_type=client_credentials", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- bearer checks ------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(app: App) -> None:
    response = app.http.get("/api/principals")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="amlpipe"'
    assert response.json()["Error"]["Code"] == "Unauthorized"


def test_an_expired_token_is_401(app: App) -> None:
    tokens = TokenIssuer(SIGNING_KEY.encode(), tenant_id=app.config["tenant_id"])
    expired = tokens.issue(
        app.config["service_principal_id"], Role.OWNER, now=datetime.now(UTC) - timedelta(hours=2)
    ).access_token
    response = app.http.get("/api/principals", headers=bearer(expired))
    assert response.status_code == 401 and "expired" in response.json()["Error"]["Message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_tampered_token_is_401(app: App) -> None:
    reader = app.create("Reader")
    header, payload, signature = app.token(reader["id"], reader["secret"]).split(".")
    claims = jwt.decode(f"{header}.{payload}.{signature}", options={"verify_signature": False}) | {"roles": ["Owner"]}
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256").split(".")[1]
    response = app.http.get("/api/principals", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401


def test_a_token_signed_with_another_key_is_401(app: App) -> None:
    other = TokenIssuer(secrets.token_bytes(32), tenant_id=app.config["tenant_id"])
    token = other.issue(app.config["service_principal_id"], Role.OWNER).access_token
    response = app.http.get("/api/principals", headers=bearer(token))
    assert response.status_code == 401 and "Signature" in response.json()["Error"]["Message"]


def test_a_reader_on_an_owner_route_is_403(app: App) -> None:
    reader = app.create("Reader")
    response = app.http.get("/api/principals", headers=bearer(app.token(reader["id"], reader["secret"])))
    assert response.status_code == 403
    assert response.json()["Error"]["Code"] == "Forbidden" and "Owner" in response.json()["Error"]["Message"]


def test_health_stays_anonymous(app: App) -> None:
    assert app.http.get("/api/health").status_code == 200


# --- principals -----------------------------------------------------------------------------------


def test_principals_create_list_delete(app: App) -> None:
    owner = bearer(app.owner_token)
    created = app.create("Operator")
    assert created["role"] == "Operator" and created["secret"] and created["tenantId"] == app.config["tenant_id"]
    assert created["createdBy"] == app.config["service_principal_id"]

    listed = app.http.get("/api/principals", headers=owner).json()["value"]
    mine = [p for p in listed if p["id"] == created["id"]]
    assert mine and "secret" not in mine[0] and "SecretHash" not in json.dumps(listed)
    assert created["secret"] not in json.dumps(listed)
    assert app.http.get(f"/api/principals/{created['id']}", headers=owner).json()["role"] == "Operator"

    token = app.token(created["id"], created["secret"])
    assert app.http.delete(f"/api/principals/{created['id']}", headers=owner).status_code == 204
    assert app.http.delete(f"/api/principals/{created['id']}", headers=owner).status_code == 204
    assert app.http.get(f"/api/principals/{created['id']}", headers=owner).status_code == 404
    # Deleting a principal revokes its tokens at once, and its credentials no longer work.
    gone = app.http.get("/api/principals", headers=bearer(token))
    assert gone.status_code == 401 and "deleted" in gone.json()["Error"]["Message"]
    refused = app.http.post(
        "/api/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": created["id"], "client_secret": created["secret"]},
    )
    assert refused.status_code == 401


def test_an_owner_cannot_delete_itself(app: App) -> None:
    response = app.http.delete(f"/api/principals/{app.config['service_principal_id']}", headers=bearer(app.owner_token))
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "target"),
    [
        (b'{"role": "Admin"}', 400, "role"),
        (b'{"displayName": "x"}', 400, "role"),
        (b'{"role": "Reader", "extra": 1}', 400, "extra"),
        (b'{"role": "Reader",', 400, "body"),
        (b'{"role": "Reader", "displayName": "' + b"x" * (1024 * 1024) + b'"}', 413, "body"),
    ],
)
def test_bad_create_requests_are_4xx(app: App, body: bytes, status: int, target: str) -> None:
    headers = {**bearer(app.owner_token), "Content-Type": "application/json"}
    response = app.http.post("/api/principals", content=body, headers=headers)
    assert response.status_code == status and response.json()["Error"]["Target"] == target


def test_an_operator_may_not_create_principals(app: App) -> None:
    operator = app.create("Operator")
    response = app.http.post(
        "/api/principals", json={"role": "Owner"}, headers=bearer(app.token(operator["id"], operator["secret"]))
    )
    assert response.status_code == 403


# --- the SDK --------------------------------------------------------------------------------------


def test_service_principal_authentication_gets_a_working_header(app: App) -> None:
    auth = ServicePrincipalAuthentication(
        app.config["tenant_id"],
        app.config["service_principal_id"],
        app.config["service_principal_password"],
        endpoint=app.host.url,
    )
    header = auth.get_authentication_header()
    assert header["Authorization"].startswith("Bearer ")
    assert auth.get_authentication_header() == header  # cached until shortly before expiry
    assert app.http.get("/api/principals", headers=header).status_code == 200


def test_service_principal_authentication_finds_the_endpoint_in_the_config(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(app.config_path.parent.parent)
    auth = ServicePrincipalAuthentication(
        app.config["tenant_id"], app.config["service_principal_id"], app.config["service_principal_password"]
    )
    assert auth.endpoint == app.host.url and auth.get_authentication_header()


def test_wrong_credentials_or_tenant_raise_authentication_exception(app: App) -> None:
    wrong = ServicePrincipalAuthentication(
        app.config["tenant_id"], app.config["service_principal_id"], "wrong", endpoint=app.host.url
    )
    with pytest.raises(AuthenticationException, match="invalid_client") as caught:
        wrong.get_authentication_header()
    assert caught.value.status_code == 401
    other_tenant = ServicePrincipalAuthentication(
        str(uuid.uuid4()),
        app.config["service_principal_id"],
        app.config["service_principal_password"],
        endpoint=app.host.url,
    )
    with pytest.raises(AuthenticationException, match="tenant_id"):
        other_tenant.get_authentication_header()


# --- the CLI --------------------------------------------------------------------------------------


def cli(app: App, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amlpipe.cli", *args],
        env={**app.host.env, **app.env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_bootstrap_then_sp_create_list_delete(app: App, tmp_path: Path) -> None:
    config = tmp_path / ".amlpipe" / "config.json"
    made = cli(
        app, "bootstrap", "--app-dir", str(ROOT), "--config", str(config), "--endpoint", app.host.url, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    owner = json.loads(config.read_text())
    assert owner["endpoint"] == app.host.url and owner["tenant_id"] == app.config["tenant_id"]
    kept = cli(app, "bootstrap", "--app-dir", str(ROOT), "--config", str(config), cwd=tmp_path)
    assert kept.returncode == 0 and json.loads(config.read_text()) == owner

    created = cli(app, "sp", "create", "--role", "Operator", "--name", "ci", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    new_id, secret = fields["service_principal_id"].strip(), fields["service_principal_password"].strip()
    assert app.token(new_id, secret)

    written = tmp_path / "operator" / "config.json"
    second = cli(app, "sp", "create", "--role", "reader", "--write-config", str(written), cwd=tmp_path)
    assert second.returncode == 0 and "service_principal_password" not in second.stdout
    reader = json.loads(written.read_text())
    assert app.token(reader["service_principal_id"], reader["service_principal_password"])

    listed = cli(app, "sp", "list", cwd=tmp_path)
    assert new_id in listed.stdout and secret not in listed.stdout
    assert cli(app, "sp", "delete", new_id, cwd=tmp_path).returncode == 0
    assert new_id not in cli(app, "sp", "list", cwd=tmp_path).stdout

    bad = cli(app, "sp", "create", "--role", "Admin", cwd=tmp_path)
    assert bad.returncode == 2 and "Admin" in bad.stderr


# --- secrets stay secret --------------------------------------------------------------------------


def test_secrets_and_tokens_never_reach_the_log_or_the_table(app: App, storage: str) -> None:
    created = app.create("Contributor")
    token = app.token(created["id"], created["secret"])
    app.http.post(
        "/api/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": created["id"], "client_secret": created["secret"] + "x"},
    )
    app.http.get("/api/principals", headers=bearer(token))
    app.host.wait_for_log(f"Token issued to principal {created['id']}")
    log = app.host.log
    for value in (created["secret"], app.config["service_principal_password"], token, SIGNING_KEY):
        assert value not in log
    assert token.split(".")[2] not in log
    with TableServiceClient.from_connection_string(storage) as tables:
        entities = list(tables.get_table_client(f"{app.env['AMLPIPE_TABLE_PREFIX']}amlpipeprincipals").list_entities())
    dumped = json.dumps([{k: str(v) for k, v in e.items()} for e in entities])
    assert created["secret"] not in dumped and app.config["service_principal_password"] not in dumped


# --- an external issuer ---------------------------------------------------------------------------


@dataclass
class Issuer:
    url: str
    key: rsa.RSAPrivateKey
    issuer: str = "https://login.example.test/tenant-1/v2.0"
    audience: str = "api://amlpipe-e2e"

    def token(
        self, *, roles: list[str], key: rsa.RSAPrivateKey | None = None, changes: dict[str, Any] | None = None
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "ext",
            "oid": "ext-oid",
            "tid": "tenant-1",
        }
        claims |= {"iat": now, "exp": now + 600, "roles": roles, **(changes or {})}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {
        "kid": "test-key",
        "use": "sig",
        "alg": "RS256",
    }
    document = json.dumps({"keys": [jwk]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Issuer(url=f"http://127.0.0.1:{server.server_address[1]}/discovery/keys", key=key)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def issuer_app(storage: str, issuer: Issuer, name: str, **settings: str) -> Iterator[HostProcess]:
    """The app on its own tables and container, accepting ``issuer``'s tokens, plus ``settings``."""
    unique = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": storage,
        "AzureFunctionsWebHost__hostid": f"e2e-{name}-{unique}",
        "AMLPIPE_TABLE_PREFIX": f"x{unique}",
        "AMLPIPE_DEFAULT_CONTAINER": f"blobs-{unique}",
        "AMLPIPE_AUTH_ISSUER": issuer.issuer,
        "AMLPIPE_AUTH_AUDIENCE": issuer.audience,
        "AMLPIPE_AUTH_JWKS_URL": issuer.url,
        "NO_PROXY": "127.0.0.1,localhost",
        **settings,
    }
    host = HostProcess(ROOT, env=env).start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def external_app(storage: str, issuer: Issuer) -> Iterator[HostProcess]:
    with issuer_app(storage, issuer, "ext") as host:
        yield host


def test_an_external_token_with_an_owner_role_is_accepted(external_app: HostProcess, issuer: Issuer) -> None:
    response = httpx.get(f"{external_app.url}/api/principals", headers=bearer(issuer.token(roles=["amlpipe.Owner"])))
    assert response.status_code == 200, response.text


def test_an_external_reader_is_403_on_an_owner_route(external_app: HostProcess, issuer: Issuer) -> None:
    response = httpx.get(f"{external_app.url}/api/principals", headers=bearer(issuer.token(roles=["Reader"])))
    assert response.status_code == 403


@pytest.mark.parametrize("changes", [{"aud": "api://someone-else"}, {"iss": "https://login.example.test/evil/v2.0"}])
def test_an_external_token_for_another_audience_or_issuer_is_401(
    external_app: HostProcess, issuer: Issuer, changes: dict[str, str]
) -> None:
    response = httpx.get(
        f"{external_app.url}/api/principals", headers=bearer(issuer.token(roles=["Owner"], changes=changes))
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_external_token_signed_by_another_key_is_401(external_app: HostProcess, issuer: Issuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = httpx.get(
        f"{external_app.url}/api/principals", headers=bearer(issuer.token(roles=["Owner"], key=stranger))
    )
    assert response.status_code == 401


SIGNING_KEY = "a-signing-key-of-at-least-32-bytes!!"


@pytest.fixture(scope="module")
def entra_only_app(storage: str, issuer: Issuer) -> Iterator[HostProcess]:
    """The app as infra/ deploys it: AMLPIPE_LOCAL_TOKENS=disabled, the external issuer's tokens only."""
    settings = {"AMLPIPE_TOKEN_SIGNING_KEY": SIGNING_KEY, "AMLPIPE_TENANT_ID": "tenant-1"}
    with issuer_app(storage, issuer, "entra", AMLPIPE_LOCAL_TOKENS="disabled", **settings) as host:
        yield host


def test_with_local_tokens_disabled_the_token_endpoint_issues_none(entra_only_app: HostProcess) -> None:
    response = httpx.post(
        f"{entra_only_app.url}/api/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "anyone", "client_secret": "anything"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unauthorized_client"
    assert "AMLPIPE_LOCAL_TOKENS=disabled" in body["error_description"]
    assert "https://login.example.test/tenant-1/v2.0" in body["error_description"]
    assert "WWW-Authenticate" not in response.headers


def test_with_local_tokens_disabled_a_local_token_of_a_real_owner_is_refused(
    entra_only_app: HostProcess, issuer: Issuer
) -> None:
    # A principal the external Owner created, and a token signed with the app's own key: what anyone
    # able to read that key could forge. It must not get in.
    created = httpx.post(
        f"{entra_only_app.url}/api/principals",
        json={"displayName": "forged", "role": "Owner"},
        headers=bearer(issuer.token(roles=["Owner"])),
    )
    assert created.status_code == 201, created.text
    forged = TokenIssuer(SIGNING_KEY.encode(), tenant_id="tenant-1").issue(created.json()["id"], Role.OWNER)
    response = httpx.get(f"{entra_only_app.url}/api/principals", headers=bearer(forged.access_token))
    assert response.status_code == 401
    assert "accepts only tokens from https://login.example.test/tenant-1/v2.0" in response.json()["Error"]["Message"]


def test_with_local_tokens_disabled_the_sdk_works_with_the_issuers_tokens(
    entra_only_app: HostProcess, issuer: Issuer, tmp_path: Path
) -> None:
    auth = TokenAuthentication(lambda _audience: issuer.token(roles=["Reader"]))
    ws = Workspace(auth=auth, endpoint=entra_only_app.url)
    assert "workspaceblobstore" in ws.datastores

    # The same through a config file's token_command, as the CLI reads it.
    command = f'{sys.executable} -c "print({issuer.token(roles=["Reader"])!r})"'
    (tmp_path / ".amlpipe").mkdir()
    config = tmp_path / ".amlpipe" / "config.json"
    config.write_text(json.dumps({"endpoint": entra_only_app.url, "token_command": command}))
    config.chmod(0o600)  # a command amlpipe runs: only from a file that is yours alone
    from_config = Workspace.from_config(tmp_path)
    assert "workspaceblobstore" in from_config.datastores
