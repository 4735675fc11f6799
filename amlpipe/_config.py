"""Finding and reading the workspace config, ``.amlpipe/config.json`` (as azureml's ``.azureml/config.json``)::

    {"endpoint": "http://localhost:7071", "tenant_id": "...",
     "service_principal_id": "...", "service_principal_password": "..."}

or, for an app that accepts only its issuer's tokens (Entra ID; ``AMLPIPE_LOCAL_TOKENS=disabled``), a
command that prints a token, run when one is needed::

    {"endpoint": "https://<app>.azurewebsites.net",
     "token_command": "az account get-access-token --scope api://<app>/user_impersonation --query accessToken -o tsv"}

``find_config`` searches the starting folder, then each parent, for ``.amlpipe/config.json`` and then
``config.json``; the nearest wins.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from amlpipe.exceptions import UserErrorException
from shared.auth.bootstrap import write_config as write_config  # one implementation, re-exported

CONFIG_DIR = ".amlpipe"
CONFIG_FILE = "config.json"
ENDPOINT_ENV = "AMLPIPE_ENDPOINT"


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest config file from ``path`` (default: the current folder) upwards, or None.

    ``path`` may also name a config file directly.
    """
    start = Path(path) if path is not None else Path.cwd()
    if start.is_file():
        return start
    start = start.resolve()
    for folder in (start, *start.parents):
        for candidate in (folder / CONFIG_DIR / CONFIG_FILE, folder / CONFIG_FILE):
            if candidate.is_file():
                return candidate
    return None


@dataclass(frozen=True)
class WorkspaceConfig:
    """A parsed config file."""

    path: Path
    endpoint: str | None
    tenant_id: str | None
    service_principal_id: str | None
    service_principal_password: str | None
    token_command: str | None = None

    def __repr__(self) -> str:  # never show the password
        return f"WorkspaceConfig(path={self.path!s}, endpoint={self.endpoint!r}, tenant_id={self.tenant_id!r})"


def load_config(path: str | os.PathLike[str] | None = None) -> WorkspaceConfig:
    """Read the nearest config (see ``find_config``).

    Raises:
        UserErrorException: no config was found, or it is not a JSON object.
    """
    found = find_config(path)
    if found is None:
        where = Path(path) if path is not None else Path.cwd()
        raise UserErrorException(
            f"We could not find {CONFIG_DIR}/{CONFIG_FILE} or {CONFIG_FILE} in {where} or its parents. "
            "Run 'make start' (which writes one), or pass the path."
        )
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserErrorException(f"{found} is not a readable JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise UserErrorException(f"{found} must hold a JSON object.")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    command = text("token_command")
    if command is not None:
        _check_token_command_source(found)
    return WorkspaceConfig(
        path=found,
        endpoint=text("endpoint"),
        tenant_id=text("tenant_id"),
        service_principal_id=text("service_principal_id"),
        service_principal_password=text("service_principal_password"),
        token_command=command,
    )


def _check_token_command_source(found: Path) -> None:
    """A ``token_command`` is a program amlpipe runs as you: only from a file that is yours alone.

    Config files are searched for upwards from the current folder, so a ``config.json`` in a cloned
    repository, a shared folder or ``/tmp`` could otherwise run a stranger's command (git's
    ``safe.directory`` lesson). Only ``.amlpipe/config.json`` may hold one, and on POSIX only if it is
    owned by the current user and not writable by group or others.

    Raises:
        UserErrorException: the file may not hold a ``token_command``; says why and what to do.
    """
    if found.name != CONFIG_FILE or found.parent.name != CONFIG_DIR:
        raise UserErrorException(
            f"{found} has a token_command, which amlpipe runs only from a {CONFIG_DIR}/{CONFIG_FILE}: move it there."
        )
    if os.name == "posix":
        info = found.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise UserErrorException(
                f"{found} has a token_command, so it must be yours and writable only by you"
                f" (chmod 600 {found}); amlpipe will not run a command others can change."
            )


def default_endpoint() -> str | None:
    """The endpoint of the nearest config, else ``AMLPIPE_ENDPOINT``, else None."""
    found = find_config()
    if found is not None:
        try:
            endpoint = load_config(found).endpoint
        except UserErrorException:
            endpoint = None
        if endpoint:
            return endpoint
    return os.environ.get(ENDPOINT_ENV) or None
