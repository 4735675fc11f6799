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
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
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
    assert resolved.client_id is None and resolved.managed_identity


def test_without_the_credential_setting_the_account_is_not_managed_identity_only() -> None:
    resolved = StorageAccount.from_settings(identity())
    assert resolved.uses_identity and not resolved.managed_identity
    assert resolved != StorageAccount.from_settings(identity(AzureWebJobsStorage__credential="managedidentity"))


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


def test_each_setting_name_is_matched_on_its_own() -> None:
    # A documented name does not hide another one spelled in other case.
    resolved = StorageAccount.from_settings(
        {
            "AzureWebJobsStorage__accountName": "appstore1",
            "AZUREWEBJOBSSTORAGE__CLIENTID": "1234-abcd",
            "azurewebjobsstorage__credential": "managedidentity",
            "AzureWebJobsStorage__TABLESERVICEURI": "https://tables.contoso.example",
        }
    )
    assert resolved.client_id == "1234-abcd" and resolved.managed_identity
    assert resolved.table_url == "https://tables.contoso.example" and resolved.blob_url == ENDPOINTS["blob"]


def test_the_documented_spelling_wins_over_another_case_and_a_blank_one_does_not() -> None:
    both = {"AzureWebJobsStorage__accountName": "appstore1", "AZUREWEBJOBSSTORAGE__ACCOUNTNAME": "other22"}
    assert StorageAccount.from_settings(both).blob_url == ENDPOINTS["blob"]
    blank = {"AzureWebJobsStorage__accountName": " ", "AZUREWEBJOBSSTORAGE__ACCOUNTNAME": "other22"}
    assert StorageAccount.from_settings(blank).blob_url == "https://other22.blob.core.windows.net"
    # A connection string in any case still wins over identity settings in the documented case.
    assert StorageAccount.from_settings({"azurewebjobsstorage": AZURITE, **identity()}).connection_string == AZURITE


def test_an_unsupported_setting_in_another_case_is_still_refused() -> None:
    with pytest.raises(AmlPipeError, match="'AzureWebJobsStorage__clientSecret' is not supported"):
        StorageAccount.from_settings(identity(AZUREWEBJOBSSTORAGE__CLIENTSECRET="s3cret"))


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
def test_identity_settings_build_service_clients_on_the_endpoints_with_the_managed_identity(
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
        assert isinstance(credential, ManagedIdentityCredential)
        # One credential (one token cache) for the three services, and for every later client of its kind.
        assert clients.queues.credential is credential and clients.tables.credential is credential
        with StorageClients.from_settings(
            identity("other22", AzureWebJobsStorage__credential="ManagedIdentity")
        ) as others:
            assert others.blobs.credential is credential
        with StorageClients.from_settings(identity()) as unset:  # no __credential: DefaultAzureCredential
            assert isinstance(unset.blobs.credential, DefaultAzureCredential)
            assert unset.tables.credential is unset.blobs.credential
    assert no_network == []


@pytest.mark.usefixtures("fresh_credentials", "no_network")
def test_managedidentity_never_reads_a_service_principal_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stray variables that DefaultAzureCredential's EnvironmentCredential would authenticate with first.
    monkeypatch.setenv("AZURE_TENANT_ID", "99999999-8888-7777-6666-555555555555")
    monkeypatch.setenv("AZURE_CLIENT_ID", "another-principal")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret")
    with StorageClients.from_settings(identity(AzureWebJobsStorage__credential="managedidentity")) as clients:
        credential = clients.blobs.credential
        assert isinstance(credential, ManagedIdentityCredential)
        assert not isinstance(credential, DefaultAzureCredential)


@pytest.mark.usefixtures("fresh_credentials", "no_network")
def test_the_credential_kind_and_client_id_choose_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    class RecordingDefault(DefaultAzureCredential):
        def __init__(self, **kwargs: Any) -> None:
            made.append(("default", kwargs))
            super().__init__(**kwargs)

    class RecordingManaged(ManagedIdentityCredential):
        def __init__(self, **kwargs: Any) -> None:
            made.append(("managed", kwargs))
            super().__init__(**kwargs)

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", RecordingDefault)
    monkeypatch.setattr("azure.identity.ManagedIdentityCredential", RecordingManaged)
    user_assigned = identity(
        AzureWebJobsStorage__credential="managedidentity", AzureWebJobsStorage__clientId="1234-abcd"
    )
    with StorageClients.from_settings(user_assigned) as first, StorageClients.from_settings(user_assigned) as second:
        assert isinstance(first.blobs.credential, RecordingManaged)
        assert second.blobs.credential is first.blobs.credential
    with StorageClients.from_settings(identity(AzureWebJobsStorage__credential="managedidentity")) as system:
        assert isinstance(system.blobs.credential, RecordingManaged)
        assert system.blobs.credential is not first.blobs.credential
    with StorageClients.from_settings(identity(AzureWebJobsStorage__clientId="1234-abcd")) as unset:
        assert isinstance(unset.blobs.credential, RecordingDefault)
    with StorageClients.from_settings(identity()) as unset_system:
        assert isinstance(unset_system.blobs.credential, RecordingDefault)
        assert unset_system.blobs.credential is not unset.blobs.credential
    assert made == [
        ("managed", {"client_id": "1234-abcd"}),
        ("managed", {"client_id": None}),
        ("default", {"managed_identity_client_id": "1234-abcd"}),
        ("default", {"managed_identity_client_id": None}),
    ]


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
