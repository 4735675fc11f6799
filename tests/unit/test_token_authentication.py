"""``TokenAuthentication`` (tokens from a function or a ``token_command``) and the app's
``AMLPIPE_LOCAL_TOKENS`` switch: pure logic, no service."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, cast

import jwt
import pytest

from amlpipe._config import load_config
from amlpipe.core.authentication import TokenAuthentication
from amlpipe.exceptions import AuthenticationException, UserErrorException
from shared.auth.service import AuthService, local_tokens_from
from shared.errors import AmlPipeError


def token(expires_in: float) -> str:
    return jwt.encode({"exp": int(time.time() + expires_in), "sub": "someone"}, "k" * 32, algorithm="HS256")


def test_a_token_is_reused_until_shortly_before_its_exp_claim() -> None:
    calls: list[str] = []

    def get(audience: str) -> str:
        calls.append(audience)
        return token(3600)

    auth = TokenAuthentication(get, audience="https://app.example")
    first = auth.get_authentication_header()
    assert first == auth.get_authentication_header()
    assert calls == ["https://app.example"]
    assert first["Authorization"].startswith("Bearer ey")


def test_an_expired_token_is_asked_for_again() -> None:
    calls = 0

    def get(_: str) -> str:
        nonlocal calls
        calls += 1
        return token(-10)  # already expired: never reused

    auth = TokenAuthentication(get)
    auth.get_authentication_header()
    auth.get_authentication_header()
    assert calls == 2


def test_azurems_token_and_expiry_tuple_is_accepted() -> None:
    auth = TokenAuthentication(lambda _: ("opaque-token", time.time() + 3600))
    assert auth.get_authentication_header() == {"Authorization": "Bearer opaque-token"}


def test_no_token_is_an_authentication_error() -> None:
    with pytest.raises(AuthenticationException, match="no token"):
        TokenAuthentication(lambda _: "  ").get_authentication_header()


def test_a_token_command_prints_the_token(tmp_path: Path) -> None:
    minted = token(3600)
    auth = TokenAuthentication.from_command(f"{sys.executable} -c \"print('{minted}')\"")
    assert auth.get_authentication_header() == {"Authorization": f"Bearer {minted}"}


def test_a_failing_token_command_says_which_and_why() -> None:
    auth = TokenAuthentication.from_command(f"{sys.executable} -c \"import sys; sys.exit('not signed in')\"")
    with pytest.raises(AuthenticationException, match=r"failed \(1\): not signed in"):
        auth.get_authentication_header()
    with pytest.raises(AuthenticationException, match="could not run"):
        TokenAuthentication.from_command("/no/such/az account get-access-token").get_authentication_header()


def _private_config(folder: Path, body: str) -> Path:
    (folder / ".amlpipe").mkdir(parents=True)
    path = folder / ".amlpipe" / "config.json"
    path.write_text(body)
    path.chmod(0o600)
    return path


def test_the_config_may_name_a_token_command_instead_of_a_service_principal(tmp_path: Path) -> None:
    path = _private_config(tmp_path, '{"endpoint": "https://app.example", "token_command": "az account"}')
    config = load_config(path)
    assert config.token_command == "az account" and config.service_principal_id is None


def test_a_token_command_in_a_plain_config_json_found_upwards_is_refused(tmp_path: Path) -> None:
    # A config.json in a parent folder (a cloned repository, /tmp) must not run its command as you.
    (tmp_path / "config.json").write_text('{"endpoint": "https://x.example", "token_command": "touch pwned"}')
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(UserErrorException, match=r"runs only from a \.amlpipe/config\.json"):
        load_config(tmp_path / "a" / "b")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_token_command_in_a_config_others_may_write_is_refused(tmp_path: Path) -> None:
    path = _private_config(tmp_path, '{"endpoint": "https://x.example", "token_command": "az account"}')
    path.chmod(0o664)
    with pytest.raises(UserErrorException, match="writable only by you"):
        load_config(path)


def test_an_unparsable_token_command_is_an_authentication_error() -> None:
    with pytest.raises(AuthenticationException, match="cannot be parsed"):
        TokenAuthentication.from_command('az "unbalanced')


def test_a_token_command_error_never_shows_the_commands_arguments() -> None:
    auth = TokenAuthentication.from_command(f'{sys.executable} -c "import sys; sys.exit(3)" --client-secret=S3CRET')
    with pytest.raises(AuthenticationException) as failure:
        auth.get_authentication_header()
    assert "S3CRET" not in str(failure.value) and "failed (3)" in str(failure.value)


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("enabled", True), ("Disabled", False), (" disabled ", False)]
)
def test_local_tokens_are_on_unless_the_setting_says_disabled(value: str | None, enabled: bool) -> None:
    settings = {} if value is None else {"AMLPIPE_LOCAL_TOKENS": value}
    assert local_tokens_from(settings) is enabled


def test_a_bad_local_tokens_value_names_the_setting() -> None:
    with pytest.raises(AmlPipeError, match="AMLPIPE_LOCAL_TOKENS must be 'enabled' or 'disabled'"):
        local_tokens_from({"AMLPIPE_LOCAL_TOKENS": "off"})


def test_local_tokens_cannot_be_disabled_without_an_external_issuer() -> None:
    unused: Any = object()
    with pytest.raises(AmlPipeError, match="needs an external token issuer"):
        AuthService(principals=cast(Any, unused), tokens=cast(Any, unused), external=None, local_tokens=False)


def test_with_local_tokens_disabled_no_signing_key_is_read_or_kept_in_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.auth import keystore

    def refuse(*_: Any, **__: Any) -> bytes:
        raise AssertionError("the signing key was read or created in storage")

    monkeypatch.setattr(keystore, "signing_key", refuse)
    settings = {
        "AMLPIPE_LOCAL_TOKENS": "disabled",
        "AMLPIPE_TENANT_ID": "tenant-1",
        "AMLPIPE_AUTH_ISSUER": "https://login.example.test/tenant-1/v2.0",
        "AMLPIPE_AUTH_AUDIENCE": "api://amlpipe",
        "AMLPIPE_AUTH_JWKS_URL": "https://login.example.test/keys",
    }
    clients: Any = type("Clients", (), {"tables": object(), "blobs": object()})()
    service = AuthService.from_settings(settings, clients)
    assert service.local_tokens is False and service.tokens.tenant_id == "tenant-1"
