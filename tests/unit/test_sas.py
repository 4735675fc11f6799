"""How SAS tokens for the app's own account are signed: with the account key when the connection has
one, else with a user delegation key, fetched once and reused until a SAS would outlive it."""

from __future__ import annotations

import gc
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, ContainerSasPermissions, UserDelegationKey

from shared import sas
from shared.errors import AmlPipeError
from shared.sas import KEY_LIFETIME, KEY_REQUEST_OPTIONS, DelegationKeys, SasSigner, signer_for

KEYED = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5a2V5a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
OID, TID = "11111111-2222-3333-4444-555555555555", "99999999-8888-7777-6666-555555555555"


class TokenOnly:
    """A token credential (what DefaultAzureCredential is to the SDK): no account key."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise AssertionError("signing never needs a token here")


class FakeBlobs:
    """What ``SasSigner`` uses of a BlobServiceClient with a token credential: records key requests."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.credential: Any = TokenOnly()
        self.account_name: str | None = "appstore1"
        self.url = "https://appstore1.blob.core.windows.net/"
        self.requests: list[tuple[datetime, datetime]] = []
        self.options: list[dict[str, Any]] = []  # each request's keyword options (timeouts, retries)
        self.fail = fail

    def get_user_delegation_key(
        self, key_start_time: datetime, key_expiry_time: datetime, **options: Any
    ) -> UserDelegationKey:
        self.options.append(options)
        if self.fail is not None:
            raise self.fail
        self.requests.append((key_start_time, key_expiry_time))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = OID, TID
        key.signed_start = key_start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = key_expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = "ZGVsZWdhdGlvbi1rZXktdmFsdWUtMzItYnl0ZXMtbG9uZyE="
        return key


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def fields(token: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(token).items()}


def delegating(blobs: FakeBlobs, clock: Clock | None = None) -> SasSigner:
    return SasSigner(blobs, clock=clock or Clock())  # type: ignore[arg-type]


def read_for_an_hour(signer: SasSigner, at: datetime = NOW) -> str:
    start = at - timedelta(minutes=5)
    return signer.blob_sas("c", "a/b.txt", BlobSasPermissions(read=True), start=start, expiry=at + timedelta(hours=1))


def test_a_keyed_connection_signs_with_the_account_key() -> None:
    with BlobServiceClient.from_connection_string(KEYED) as blobs:
        signer = SasSigner(blobs)
        assert not signer.uses_delegation
        token = fields(read_for_an_hour(signer))
    assert token["sp"] == "r" and token["sr"] == "b" and token["sig"]
    assert not {"skoid", "sktid", "skt", "ske"} & set(token)


def test_an_identity_signs_with_a_user_delegation_key() -> None:
    blobs = FakeBlobs()
    signer = delegating(blobs)
    assert signer.uses_delegation
    token = fields(read_for_an_hour(signer))
    assert token["skoid"] == OID and token["sktid"] == TID and token["sks"] == "b" and token["sig"]
    assert token["sr"] == "b" and token["sp"] == "r"
    assert token["se"] == "2030-01-01T13:00:00Z"
    # The key covers the SAS: it starts earlier (clock skew) and lasts a day.
    ((start, expiry),) = blobs.requests
    assert start <= NOW - timedelta(minutes=5) and expiry == NOW + KEY_LIFETIME
    assert token["skt"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_container_sas_signs_with_the_same_key() -> None:
    blobs = FakeBlobs()
    signer = delegating(blobs)
    read_for_an_hour(signer)
    token = fields(
        signer.container_sas(
            "c",
            ContainerSasPermissions(read=True, list=True, write=True),
            start=NOW - timedelta(minutes=5),
            expiry=NOW + timedelta(hours=1),
        )
    )
    assert token["sr"] == "c" and token["sp"] == "rwl" and token["skoid"] == OID
    assert len(blobs.requests) == 1


def test_the_delegation_key_is_reused_until_a_sas_would_outlive_it() -> None:
    blobs, clock = FakeBlobs(), Clock()
    signer = delegating(blobs, clock)
    for hours in range(23):
        clock.now = NOW + timedelta(hours=hours)
        read_for_an_hour(signer, clock.now)
    assert len(blobs.requests) == 1
    clock.now = NOW + timedelta(hours=23, minutes=30)  # a one-hour SAS now ends after the key
    read_for_an_hour(signer, clock.now)
    assert len(blobs.requests) == 2
    assert blobs.requests[1][1] == clock.now + KEY_LIFETIME


def test_a_sas_longer_than_the_key_lifetime_gets_a_key_that_covers_it() -> None:
    blobs = FakeBlobs()
    expiry = NOW + timedelta(days=3)
    delegating(blobs).blob_sas("c", "b", BlobSasPermissions(read=True), start=NOW, expiry=expiry)
    assert blobs.requests[0][1] == expiry


def test_a_user_delegation_sas_cannot_last_more_than_seven_days() -> None:
    blobs = FakeBlobs()
    with pytest.raises(AmlPipeError, match="at most 7 days"):
        delegating(blobs).blob_sas(
            "c", "b", BlobSasPermissions(read=True), start=NOW, expiry=NOW + timedelta(days=7, hours=1)
        )
    assert blobs.requests == []


def test_a_refused_delegation_key_names_the_role_needed() -> None:
    refused = HttpResponseError(message="This request is not authorized to perform this operation.")
    refused.status_code = 403
    with pytest.raises(AmlPipeError, match="Storage Blob Data Owner") as caught:
        read_for_an_hour(delegating(FakeBlobs(fail=refused)))
    assert caught.value.__cause__ is refused


def test_a_connection_with_neither_key_nor_identity_cannot_sign() -> None:
    blobs = FakeBlobs()
    blobs.credential = None  # e.g. a connection string with a SAS token
    with pytest.raises(AmlPipeError, match="neither an account key nor an identity"):
        read_for_an_hour(delegating(blobs))


def test_an_endpoint_without_an_account_name_cannot_sign_with_delegation() -> None:
    blobs = FakeBlobs()
    blobs.account_name = None  # a custom domain: the SDK cannot tell the account
    with pytest.raises(AmlPipeError, match="account's name"):
        read_for_an_hour(delegating(blobs))


def test_every_signer_of_one_client_shares_its_delegation_key() -> None:
    blobs = FakeBlobs()
    keys = DelegationKeys()
    read_for_an_hour(SasSigner(blobs, keys=keys, clock=Clock()))  # type: ignore[arg-type]
    read_for_an_hour(SasSigner(blobs, keys=keys, clock=Clock()))  # type: ignore[arg-type]
    assert len(blobs.requests) == 1
    read_for_an_hour(delegating(blobs))  # a signer with keys of its own fetches its own
    assert len(blobs.requests) == 2


def test_signer_for_keeps_one_key_store_per_client_without_keeping_the_client() -> None:
    with BlobServiceClient.from_connection_string(KEYED) as one, BlobServiceClient.from_connection_string(KEYED) as two:
        assert signer_for(one)._keys is signer_for(one)._keys
        assert signer_for(one)._keys is not signer_for(two)._keys
    before = len(sas._keys)
    with BlobServiceClient.from_connection_string(KEYED) as three:
        signer_for(three)
        assert len(sas._keys) == before + 1
    del three
    gc.collect()
    assert len(sas._keys) == before  # a closed test client does not stay cached


# -- a slow or failing key request does not hold every SAS of the process ------------------------------


class SlowBlobs(FakeBlobs):
    """A key request that blocks until ``release`` is set (a Storage that does not answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def get_user_delegation_key(
        self, key_start_time: datetime, key_expiry_time: datetime, **options: Any
    ) -> UserDelegationKey:
        self.started.set()
        assert self.release.wait(10)
        return super().get_user_delegation_key(key_start_time, key_expiry_time, **options)


def test_the_key_request_is_bounded_no_retries_and_short_timeouts() -> None:
    blobs = FakeBlobs()
    read_for_an_hour(delegating(blobs))
    assert blobs.options == [KEY_REQUEST_OPTIONS]
    assert KEY_REQUEST_OPTIONS["retry_total"] == 0
    assert 0 < KEY_REQUEST_OPTIONS["timeout"] <= 10 and 0 < KEY_REQUEST_OPTIONS["read_timeout"] <= 10


def test_a_sas_waiting_for_a_slow_key_fetch_times_out_clearly_and_the_fetch_still_happens_once() -> None:
    blobs, keys = SlowBlobs(), DelegationKeys()
    first: list[str] = []
    fetcher = SasSigner(blobs, keys=keys, clock=Clock())  # type: ignore[arg-type]
    fetching = threading.Thread(target=lambda: first.append(read_for_an_hour(fetcher)))
    fetching.start()
    try:
        assert blobs.started.wait(10)
        waiting = SasSigner(blobs, keys=keys, clock=Clock(), key_wait=timedelta(seconds=0.2))  # type: ignore[arg-type]
        began = time.monotonic()
        with pytest.raises(AmlPipeError, match="Timed out waiting for the user delegation key") as caught:
            read_for_an_hour(waiting)
        assert time.monotonic() - began < 5
        assert caught.value.status == 503 and caught.value.code == "ServiceUnavailable"
    finally:
        blobs.release.set()
        fetching.join(10)
    assert first and fields(first[0])["skoid"] == OID
    read_for_an_hour(waiting)  # the key the first fetch got: no second request
    assert len(blobs.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        ServiceResponseError("Read timed out."),
        HttpResponseError(message="Server busy", response=None),
    ],
    ids=["no-answer", "server-busy"],
)
def test_a_key_request_that_times_out_is_a_503_and_the_next_sas_asks_again(failure: Exception) -> None:
    if isinstance(failure, HttpResponseError):
        failure.status_code = 503
    blobs = FakeBlobs(fail=failure)
    signer = delegating(blobs)
    with pytest.raises(AmlPipeError, match="did not answer in time; try again") as caught:
        read_for_an_hour(signer)
    assert caught.value.status == 503 and caught.value.__cause__ is failure
    blobs.fail = None
    read_for_an_hour(signer)
    assert len(blobs.options) == 2 and len(blobs.requests) == 1


def test_an_identity_without_a_token_is_a_503_naming_the_identity_not_a_missing_role() -> None:
    from azure.identity import CredentialUnavailableError

    failure = CredentialUnavailableError("ManagedIdentityCredential authentication unavailable")
    signer = delegating(FakeBlobs(fail=failure))
    with pytest.raises(AmlPipeError, match="could not get a token for Storage") as caught:
        read_for_an_hour(signer)
    assert caught.value.status == 503 and "Blob Data Owner" not in caught.value.message


class Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


def test_the_sdk_takes_the_options_and_does_not_retry_an_unreachable_endpoint() -> None:
    # A real client on a closed local port: the SDK's default retries would take more than a minute.
    with BlobServiceClient("https://127.0.0.1:9/appstore1", credential=Token()) as blobs:
        signer = SasSigner(blobs, keys=DelegationKeys())
        began = time.monotonic()
        with pytest.raises(AmlPipeError, match="did not answer in time") as caught:
            read_for_an_hour(signer, datetime.now(UTC))
        assert time.monotonic() - began < 10
        assert caught.value.status == 503
