"""The first Owner: ``make start`` creates one and writes its credentials to ``.amlpipe/config.json``.

Idempotent: a config whose principal exists in storage is left alone. A config whose principal is
gone (e.g. the Azurite data folder was wiped) is replaced, since its credentials can no longer work.
The file is written atomically with mode 0600 (its folder 0700): it holds a secret.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import storage
from shared.auth import keystore
from shared.auth.principals import BOOTSTRAP_CREATOR, TABLE, PrincipalStore
from shared.auth.roles import Role

log = logging.getLogger("amlpipe.auth")

DEFAULT_CONFIG = Path(".amlpipe") / "config.json"
DISPLAY_NAME = "amlpipe-owner"


@dataclass(frozen=True)
class BootstrapResult:
    path: Path
    created: bool
    principal_id: str


def bootstrap(
    config_path: Path, *, endpoint: str, settings: Mapping[str, str], display_name: str = DISPLAY_NAME
) -> BootstrapResult:
    """Make sure ``config_path`` holds working Owner credentials for the storage in ``settings``."""
    with storage.StorageClients.from_settings(settings) as clients:
        store = PrincipalStore(clients.tables, table_name=storage.table_name(TABLE, settings))
        tenant = keystore.tenant_id(clients.blobs, settings)
        existing = _read(config_path)
        if existing is not None:
            principal_id = str(existing.get("service_principal_id") or "")
            found = store.find_principal(principal_id)
            if found is not None and not found.disabled and existing.get("tenant_id") == tenant:
                return BootstrapResult(config_path, False, principal_id)
            log.warning("%s names a principal this storage does not know; creating a new Owner.", config_path)
        principal, secret = store.create_principal(
            display_name=display_name, role=Role.OWNER, created_by=BOOTSTRAP_CREATOR
        )
    write_config(
        config_path,
        {
            "endpoint": endpoint,
            "tenant_id": tenant,
            "service_principal_id": principal.id,
            "service_principal_password": secret,
        },
    )
    log.debug("Owner principal %s written to %s.", principal.id, config_path)
    return BootstrapResult(config_path, True, principal.id)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("%s is not readable JSON; replacing it.", path)
        return {}
    return data if isinstance(data, dict) else {}


def write_config(path: str | os.PathLike[str], config: Mapping[str, Any]) -> Path:
    """Write ``config`` as JSON to ``path`` atomically, readable by the owner only (0600); return the path.

    The one implementation: the SDK (``amlpipe._config.write_config``, ``amlpipe sp create``) re-exports
    it, because the SDK may import ``shared`` (it ships in the same distribution and already uses
    ``shared.graph``) while the engine must never import the SDK.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".config-", dir=target.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(config), handle, indent=2)
            handle.write("\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
