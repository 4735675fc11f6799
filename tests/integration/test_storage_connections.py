"""The app's storage settings resolve to working clients on a real Azurite, in both forms.

- a connection string: the session's Azurite, as every other test uses it;
- an identity: an Azurite of this module's own, over HTTPS with ``--oauth basic`` (it checks a bearer
  token's issuer, audience and lifetime but not its signature, and hands out user delegation keys).
  Only the token source stands in for Entra ID: a credential that mints such tokens replaces the
  process's credential (``identity_credential``). Everything else (clients from the settings, the process-wide
  caches, user delegation SAS from the engine's stores, the health probe) runs as on Azure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobClient, BlobSasPermissions, ContainerClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import shared.registry as registry_package
from amlpipe.host.azurite import find_azurite
from shared import health, storage
from shared.graph.snapshot import build_snapshot
from shared.pipelines import stores as pipeline_stores
from shared.registry import default_registry
from shared.registry import models as model_registry
from shared.registry.model_spec import ModelMetadata
from shared.sas import signer_for
from shared.storage import StorageAccount, StorageClients

pytestmark = pytest.mark.integration

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at https://[^:]+:(\d+)")
TENANT, OBJECT_ID = str(uuid.uuid4()), str(uuid.uuid4())


def round_trip(clients: StorageClients, unique: str) -> None:
    """A table entity, a queue message and a blob, each written and read back."""
    table = clients.tables.create_table_if_not_exists(f"conn{unique}")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Value": 42})
    assert table.get_entity("p", "r")["Value"] == 42
    queue = clients.queues.get_queue_client(f"conn-{unique}")
    queue.create_queue()
    queue.send_message("hello")
    assert [m.content for m in queue.receive_messages()] == ["hello"]
    container = clients.blobs.create_container(f"conn-{unique}")
    container.upload_blob("a/b.txt", b"bytes")
    assert container.download_blob("a/b.txt").readall() == b"bytes"


def read_with_sas(clients: StorageClients, unique: str) -> dict[str, str]:
    """A one-hour read SAS of the blob ``round_trip`` wrote, checked by reading through it; its fields."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    token = signer_for(clients.blobs).blob_sas(
        f"conn-{unique}", "a/b.txt", BlobSasPermissions(read=True), start=start, expiry=start + timedelta(hours=1)
    )
    url = clients.blobs.get_blob_client(f"conn-{unique}", "a/b.txt").url
    response = requests.get(f"{url}?{token}", timeout=10)
    assert response.status_code == 200 and response.content == b"bytes"
    forged = token.replace("sp=r", "sp=rw")
    assert requests.get(f"{url}?{forged}", timeout=10).status_code == 403  # the signature covers it
    return {name: values[0] for name, values in parse_qs(token).items()}


# -- a connection string ----------------------------------------------------------------------------------


def test_connection_string_settings_resolve_to_working_keyed_clients(storage: str, unique: str) -> None:
    settings = {"AzureWebJobsStorage": storage, "AzureWebJobsStorage__accountName": "ignored1"}
    account = StorageAccount.from_settings(settings)
    assert not account.uses_identity
    with StorageClients.from_settings(settings) as clients:
        round_trip(clients, unique)
        assert not signer_for(clients.blobs).uses_delegation
        token = read_with_sas(clients, unique)
    assert "skoid" not in token


# -- an identity ------------------------------------------------------------------------------------------


@dataclass
class OAuthAzurite:
    ports: dict[str, int]
    ca_bundle: Path

    def settings(self, **more: str) -> dict[str, str]:
        """Identity-based settings with explicit service URIs (Azurite's path-style account URLs)."""
        return {
            f"AzureWebJobsStorage__{service}ServiceUri": f"https://127.0.0.1:{port}/devstoreaccount1"
            for service, port in self.ports.items()
        } | more


class EntraLikeCredential:
    """Mints bearer tokens with the claims Azurite's ``--oauth basic`` checks (it skips the signature)."""

    def __init__(self) -> None:
        self.requests = 0
        # What identity_credential was asked for: (client id, managed identity only).
        self.asked: list[tuple[str | None, bool]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        assert scopes == ("https://storage.azure.com/.default",), scopes
        self.requests += 1
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{TENANT}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": OBJECT_ID,
            "tid": TENANT,
        }
        return AccessToken(jwt.encode(claims, "not-checked-by-azurite-basic-oauth", algorithm="HS256"), now + 3600)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, private


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthAzurite]:
    """An Azurite of this module's own on free ports: HTTPS (a throwaway certificate) and OAuth."""
    folder = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed_certificate(folder)
    command = [
        find_azurite(), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--location", str(folder / "data"),
        "--blobHost", "127.0.0.1", "--blobPort", "0", "--queueHost", "127.0.0.1", "--queuePort", "0",
        "--tableHost", "127.0.0.1", "--tablePort", "0", "--oauth", "basic", "--cert", str(cert), "--key", str(key),
    ]  # fmt: skip
    # Azurite checks a copy's source by requesting it from itself: it must trust the certificate too.
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env
    )
    ports: dict[str, int] = {}
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                output.append(line)
                match = _LISTENING.search(line)
                if match:
                    ports[match.group(1).lower()] = int(match.group(2))
                    if len(ports) == 3:
                        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("Azurite with OAuth did not start:\n" + "".join(output))
        yield OAuthAzurite(ports, cert)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)  # it closes Azurite's output at the end


@pytest.fixture
def entra(oauth_azurite: OAuthAzurite, monkeypatch: pytest.MonkeyPatch) -> EntraLikeCredential:
    """The token source for identity-based clients, and trust in the module Azurite's certificate."""
    credential = EntraLikeCredential()

    def identity_credential(client_id: str | None = None, *, managed_identity: bool = False) -> EntraLikeCredential:
        credential.asked.append((client_id, managed_identity))
        return credential

    monkeypatch.setattr(storage, "identity_credential", identity_credential)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oauth_azurite.ca_bundle))  # azure-core's requests honours it
    return credential


def test_identity_settings_resolve_to_working_token_clients(
    oauth_azurite: OAuthAzurite, entra: EntraLikeCredential, unique: str
) -> None:
    settings = oauth_azurite.settings(
        AzureWebJobsStorage__credential="managedidentity", AzureWebJobsStorage__clientId="client-1"
    )
    account = StorageAccount.from_settings(settings)
    assert account.uses_identity and account.client_id == "client-1"
    with StorageClients.from_settings(settings) as clients:
        assert clients.blobs.credential is entra and clients.tables.credential is entra
        round_trip(clients, unique)
        assert signer_for(clients.blobs).uses_delegation
        token = read_with_sas(clients, unique)
    assert entra.requests >= 1 and entra.asked == [("client-1", True)]
    # A user delegation SAS: signed by the identity's key, not an account key.
    assert (token["skoid"], token["sktid"], token["sks"]) == (OBJECT_ID, TENANT, "b")


@pytest.fixture
def identity_app(
    oauth_azurite: OAuthAzurite, entra: EntraLikeCredential, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment of an app deployed with an identity-based connection, fresh process-wide caches."""
    for name in [name for name in os.environ if name.lower().startswith("azurewebjobsstorage")]:
        monkeypatch.delenv(name)
    for name, value in oauth_azurite.settings().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMLPIPE_TABLE_PREFIX", f"o{unique}")
    monkeypatch.setenv("AMLPIPE_DEFAULT_CONTAINER", f"blobs-{unique}")
    monkeypatch.setattr(storage, "_shared", {})
    monkeypatch.setattr(registry_package, "_default", {})
    monkeypatch.setattr(model_registry, "_default", {})
    monkeypatch.setattr(pipeline_stores, "_default", {})


@pytest.mark.usefixtures("identity_app")
def test_the_app_on_an_identity_hands_out_user_delegation_sas_that_work(
    entra: EntraLikeCredential, tmp_path: Path
) -> None:
    clients = storage.clients()
    assert clients.blobs.credential is entra and storage.clients() is clients

    # The default datastore's SAS (the SDK's uploads and downloads): write through it, read it back.
    access = default_registry().datastores.container_access("workspaceblobstore", write=True)
    assert "skoid" in parse_qs(access.sas_token)
    with ContainerClient.from_container_url(access.container_url, credential=access.sas_token) as container:
        container.upload_blob("data/one.csv", b"a,b\n1,2\n")
    assert clients.blobs.get_blob_client(access.container_url.rsplit("/", 1)[1], "data/one.csv").exists()

    # A model: write-only SAS per file, then a commit that copies with a read SAS as the source.
    store = model_registry.default_models()
    ticket = store.start_upload("identity-model", ["model.pkl"])
    for file in ticket.files:
        assert "skoid" in file.url
        with BlobClient.from_blob_url(file.url) as blob:
            blob.upload_blob(b"weights", overwrite=True)
    record, created = store.commit("identity-model", ticket.upload_id, ModelMetadata())
    assert created
    (file,) = store.files(record)
    assert requests.get(file.url, timeout=10).content == b"weights"

    # A snapshot: PUT to the staging SAS, then a commit that copies it (a read SAS as the source).
    snapshots = pipeline_stores.default_stores().snapshots
    (tmp_path / "main.py").write_text("print('hello')\n")
    snap = build_snapshot(tmp_path)
    upload = snapshots.begin_upload(snap.sha256)
    assert upload.upload_url is not None and "skoid" in upload.upload_url
    put = requests.put(upload.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 201, put.text
    assert snapshots.commit(snap.sha256, upload.staging_id).sha256 == hashlib.sha256(snap.data).hexdigest()

    # The health probe goes through the same settings.
    assert health.check().storage_reachable


def test_health_names_the_settings_when_storage_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.lower().startswith("azurewebjobsstorage")]:
        monkeypatch.delenv(name)
    report = health.check()
    assert not report.storage_reachable and "AzureWebJobsStorage__accountName" in (report.storage_error or "")
