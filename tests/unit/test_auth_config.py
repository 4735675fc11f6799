"""The SDK's config search (as azureml searches .azureml/config.json) and its 0600 writer."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from amlpipe._config import find_config, load_config, write_config
from amlpipe.core.authentication import ServicePrincipalAuthentication
from amlpipe.exceptions import AuthenticationException, UserErrorException


def test_the_nearest_config_wins_and_amlpipe_folder_before_plain(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    write_config(tmp_path / ".amlpipe" / "config.json", {"endpoint": "http://top"})
    assert find_config(deep) == tmp_path / ".amlpipe" / "config.json"
    (tmp_path / "a" / "config.json").write_text(json.dumps({"endpoint": "http://a"}))
    assert load_config(deep).endpoint == "http://a"
    write_config(tmp_path / "a" / ".amlpipe" / "config.json", {"endpoint": "http://a-amlpipe"})
    assert load_config(deep).endpoint == "http://a-amlpipe"


def test_a_file_path_is_used_as_is(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mine.json", {"tenant_id": "t"})
    assert find_config(path) == path and load_config(path).tenant_id == "t"


def test_missing_config_is_a_user_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(UserErrorException, match=str(tmp_path)):
        load_config(tmp_path)


def test_config_is_written_owner_only(tmp_path: Path) -> None:
    path = write_config(tmp_path / ".amlpipe" / "config.json", {"service_principal_password": "p"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_repr_never_shows_the_password(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.json", {"service_principal_password": "hunter2-secret"})
    assert "hunter2-secret" not in repr(load_config(path))
    assert "hunter2-secret" not in repr(
        ServicePrincipalAuthentication("t", "id", "hunter2-secret", endpoint="http://x")
    )


def test_no_endpoint_anywhere_is_an_authentication_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMLPIPE_ENDPOINT", raising=False)
    with pytest.raises(AuthenticationException, match="AMLPIPE_ENDPOINT"):
        ServicePrincipalAuthentication("t", "id", "pw").get_authentication_header()


def test_endpoint_comes_from_the_nearest_config_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMLPIPE_ENDPOINT", "http://from-env:1/")
    assert ServicePrincipalAuthentication("t", "id", "pw").endpoint == "http://from-env:1"
    write_config(tmp_path / ".amlpipe" / "config.json", {"endpoint": "http://from-config:2"})
    assert ServicePrincipalAuthentication("t", "id", "pw").endpoint == "http://from-config:2"
