"""Which storage account the app settings name (connection string or identity), and the clients built
for it: resolved from a settings mapping alone, built without a network call."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared import storage
from shared.errors import AmlPipeError
from shared.storage import StorageAccount, StorageClients

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
ENDPOINTS = {
    "blob": "https://appstore1.blob.core.windows.net",
    "queue": "https://appstore1.queue.core.windows.net",
    "table": "https://appstore1.table.core.windows.net",
}


def identity(name: str = "appstore1", **more: str) -> dict[str, str]:
    return {"AzureWebJobsStorage__accountName": name, **more}


# -- resolution: settings in, account out -------------------------------------------------------------


def test_a_connection_string_resolves_to_itself() -> None:
    resolved = StorageAccount.from_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert resolved == StorageAccount(connection_string="UseDevelopmentStorage=true")
    assert not resolved.uses_identity and resolved.blob_url is None


def test_the_connection_string_wins_over_identity_settings() -> None:
    # As the Functions host does: the exact setting wins over the prefixed ones.
    resolved = StorageAccount.from_settings({"AzureWebJobsStorage": AZURITE, **identity()})
    assert resolved.connection_string == AZURITE and not resolved.uses_identity


def test_an_account_name_gives_the_three_public_endpoints() -> None:
    resolved = StorageAccount.from_settings(identity(AzureWebJobsStorage__credential="managedidentity"))
    assert resolved.uses_identity and resolved.connection_string is None
    assert (resolved.blob_url, resolved.queue_url, resolved.table_url) == tuple(ENDPOINTS.values())
    assert resolved.client_id is None


def test_explicit_service_uris_are_used_as_given_without_a_trailing_slash() -> None:
    resolved = StorageAccount.from_settings(
        {
            "AzureWebJobsStorage__blobServiceUri": "https://blobs.contoso.example/",
            "AzureWebJobsStorage__queueServiceUri": "https://queues.contoso.example",
            "AzureWebJobsStorage__tableServiceUri": "https://tables.contoso.example/",
        }
    )
    assert resolved.blob_url == "https://blobs.contoso.example"
    assert resolved.queue_url == "https://queues.contoso.example"
    assert resolved.table_url == "https://tables.contoso.example"


def test_an_explicit_uri_wins_over_the_one_inferred_from_the_account_name() -> None:
    resolved = StorageAccount.from_settings(
        identity(AzureWebJobsStorage__tableServiceUri="https://appstore1.table.core.chinacloudapi.cn")
    )
    assert resolved.table_url == "https://appstore1.table.core.chinacloudapi.cn"
    assert resolved.blob_url == ENDPOINTS["blob"] and resolved.queue_url == ENDPOINTS["queue"]


def test_service_uri_is_an_alias_of_the_blob_uri_only() -> None:
    resolved = StorageAccount.from_settings(identity(AzureWebJobsStorage__serviceUri="https://b.contoso.example"))
    assert resolved.blob_url == "https://b.contoso.example"
    assert resolved.queue_url == ENDPOINTS["queue"] and resolved.table_url == ENDPOINTS["table"]
    both = StorageAccount.from_settings(
        identity(
            AzureWebJobsStorage__serviceUri="https://alias.contoso.example",
            AzureWebJobsStorage__blobServiceUri="https://blob.contoso.example",
        )
    )
    assert both.blob_url == "https://blob.contoso.example"


def test_client_id_names_the_user_assigned_identity() -> None:
    resolved = StorageAccount.from_settings(
        identity(AzureWebJobsStorage__credential="ManagedIdentity", AzureWebJobsStorage__clientId=" 1234-abcd ")
    )
    assert resolved.client_id == "1234-abcd"


def test_setting_names_match_case_insensitively_and_blank_values_count_as_unset() -> None:
    resolved = StorageAccount.from_settings(
        {"AZUREWEBJOBSSTORAGE": "  ", "azurewebjobsstorage__ACCOUNTNAME": "appstore1"}
    )
    assert resolved.uses_identity and resolved.blob_url == ENDPOINTS["blob"]


def test_the_connection_string_never_shows_in_a_repr() -> None:
    assert "a2V5" not in repr(StorageAccount.from_settings({"AzureWebJobsStorage": AZURITE}))


def test_accounts_are_values_that_key_caches() -> None:
    assert StorageAccount.from_settings(identity()) == StorageAccount.from_settings(identity())
    assert len({StorageAccount.from_settings(identity()), StorageAccount.from_settings(identity("other22"))}) == 2


def test_missing_settings_name_both_forms() -> None:
    with pytest.raises(AmlPipeError) as caught:
        StorageAccount.from_settings({"AzureWebJobsStorage": "", "FUNCTIONS_WORKER_RUNTIME": "python"})
    assert "'AzureWebJobsStorage'" in caught.value.message
    assert "'AzureWebJobsStorage__accountName'" in caught.value.message
    assert caught.value.status == 500


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"AzureWebJobsStorage": "just-a-word"}, "'AzureWebJobsStorage' is not a storage connection string"),
        ({"AzureWebJobsStorage": "AccountName=x;=novalue"}, "'AzureWebJobsStorage' is not a storage connection"),
        (identity("Not_An_Account"), "'AzureWebJobsStorage__accountName' must be a storage account name"),
        (identity("ab"), "'AzureWebJobsStorage__accountName' must be a storage account name"),
        (
            identity(AzureWebJobsStorage__blobServiceUri="http://appstore1.blob.core.windows.net"),
            "'AzureWebJobsStorage__blobServiceUri' must be an https URL",
        ),
        (
            identity(AzureWebJobsStorage__queueServiceUri="https://q.example?sv=2024&sig=abc"),
            "'AzureWebJobsStorage__queueServiceUri' must be an https URL of a storage service, without a query",
        ),
        (identity(AzureWebJobsStorage__serviceUri="not a url"), "'AzureWebJobsStorage__serviceUri' must be an https"),
        (
            {"AzureWebJobsStorage__blobServiceUri": "https://b.example"},
            "'AzureWebJobsStorage__queueServiceUri' is not set",
        ),
        (identity(AzureWebJobsStorage__credential="clientsecret"), "'AzureWebJobsStorage__credential' must be"),
        (
            identity(AzureWebJobsStorage__managedIdentityResourceId="/subscriptions/x"),
            "'AzureWebJobsStorage__managedIdentityResourceId' is not supported",
        ),
        (identity(AzureWebJobsStorage__clientSecret="s3cret"), "'AzureWebJobsStorage__clientSecret' is not supported"),
    ],
)
def test_malformed_settings_are_errors_that_name_the_setting(settings: dict[str, str], names: str) -> None:
    with pytest.raises(AmlPipeError) as caught:
        StorageAccount.from_settings(settings)
    assert names in caught.value.message
    assert "s3cret" not in caught.value.message and "sig=abc" not in caught.value.message


# -- clients: built for the account, without I/O ----------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail (and record) any connection, name lookup or subprocess (``az``) while the test runs."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"network or subprocess use during construction: {what}")

        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(subprocess, "Popen", refuse("Popen"))
    yield attempts
    assert attempts == []


@pytest.fixture
def fresh_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from no process-wide credential or clients (restored after the test)."""
    monkeypatch.setattr(storage, "_credentials", {})
    monkeypatch.setattr(storage, "_shared", {})


@pytest.mark.usefixtures("fresh_credentials")
def test_identity_settings_build_service_clients_on_the_endpoints_with_default_azure_credential(
    no_network: list[str],
) -> None:
    with StorageClients.from_settings(identity(AzureWebJobsStorage__credential="managedidentity")) as clients:
        assert isinstance(clients.tables, TableServiceClient)
        assert isinstance(clients.blobs, BlobServiceClient)
        assert isinstance(clients.queues, QueueServiceClient)
        assert clients.blobs.url.rstrip("/") == ENDPOINTS["blob"]
        assert clients.queues.url.rstrip("/") == ENDPOINTS["queue"]
        assert clients.tables.url.rstrip("/") == ENDPOINTS["table"]
        assert clients.blobs.account_name == "appstore1"
        credential = clients.blobs.credential
        assert isinstance(credential, DefaultAzureCredential)
        # One credential (one token cache) for the three services, and for every later client.
        assert clients.queues.credential is credential and clients.tables.credential is credential
        with StorageClients.from_settings(identity("other22")) as others:
            assert others.blobs.credential is credential
    assert no_network == []


@pytest.mark.usefixtures("fresh_credentials", "no_network")
def test_client_id_reaches_default_azure_credential_as_the_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    class Recording(DefaultAzureCredential):
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", Recording)
    settings = identity(AzureWebJobsStorage__clientId="1234-abcd")
    with StorageClients.from_settings(settings) as first, StorageClients.from_settings(settings) as second:
        assert isinstance(first.blobs.credential, Recording) and second.blobs.credential is first.blobs.credential
    with StorageClients.from_settings(identity()) as system_assigned:
        assert system_assigned.blobs.credential is not first.blobs.credential
    assert made == [{"managed_identity_client_id": "1234-abcd"}, {"managed_identity_client_id": None}]


def test_connection_string_settings_build_keyed_clients(no_network: list[str]) -> None:
    with StorageClients.from_settings({"AzureWebJobsStorage": AZURITE}) as clients:
        assert clients.blobs.url.startswith("http://127.0.0.1:10000/devstoreaccount1")
        assert clients.queues.url.startswith("http://127.0.0.1:10001/devstoreaccount1")
        assert clients.tables.url.startswith("http://127.0.0.1:10002/devstoreaccount1")
        assert getattr(clients.blobs.credential, "account_key", None) == "a2V5"


@pytest.mark.usefixtures("fresh_credentials", "no_network")
def test_process_wide_clients_key_on_the_resolved_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.lower().startswith("azurewebjobsstorage")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "appstore1")
    first = storage.clients()
    assert storage.clients() is first and first.blobs.url.rstrip("/") == ENDPOINTS["blob"]
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "appstore2")
    second = storage.clients()
    assert second is not first and second.blobs.account_name == "appstore2"
    monkeypatch.setenv("AzureWebJobsStorage", AZURITE)  # the connection string wins from now on
    assert not isinstance(storage.clients().blobs.credential, DefaultAzureCredential)


def test_process_wide_clients_without_settings_raise_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.lower().startswith("azurewebjobsstorage")]:
        monkeypatch.delenv(name)
    with pytest.raises(AmlPipeError, match="AzureWebJobsStorage__accountName"):
        storage.clients()
