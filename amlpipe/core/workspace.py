"""``Workspace``: the amlpipe service a user works with (azureml's ``azureml.core.Workspace``).

Here a workspace is one amlpipe Functions app: its ``endpoint`` and the credentials to call it.
``Workspace.from_config()`` reads ``.amlpipe/config.json`` (or ``config.json``), found by searching
the current folder and its parents, as azureml searches for ``.azureml/config.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amlpipe._client import ServiceClient
from amlpipe._config import load_config
from amlpipe.core.authentication import AbstractAuthentication, ServicePrincipalAuthentication, TokenAuthentication
from amlpipe.exceptions import UserErrorException

if TYPE_CHECKING:
    from amlpipe.core.compute import ComputeTarget
    from amlpipe.core.dataset import Dataset
    from amlpipe.core.datastore import AzureBlobDatastore, Datastore

DEFAULT_NAME = "amlpipe"


class Workspace:
    """An amlpipe service and the credentials to use it.

    Args:
        subscription_id: accepted for azureml compatibility (there are no subscriptions here).
        resource_group: accepted for azureml compatibility.
        workspace_name: a display name (default ``"amlpipe"``).
        auth: how to authenticate; ``ServicePrincipalAuthentication`` with the config's principal
            when created by ``from_config``.
        endpoint: the service URL, e.g. ``http://localhost:7071`` (default: ``auth.endpoint``).
    """

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: AbstractAuthentication | None = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id: str | None = None,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        _cloud: str = "AzureCloud",
        *,
        endpoint: str | None = None,
    ) -> None:
        if auth is None:
            raise UserErrorException(
                "Workspace needs auth=ServicePrincipalAuthentication(...), or use Workspace.from_config()."
            )
        if endpoint is None:
            endpoint = getattr(auth, "endpoint", None)
        if not endpoint:
            raise UserErrorException("Workspace needs endpoint='http://host:port' (the amlpipe service).")
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.name = workspace_name or DEFAULT_NAME
        self.sku = sku
        self.tags = dict(tags or {})
        self._auth = auth
        self._endpoint = endpoint.rstrip("/")
        self._client = ServiceClient(self._endpoint, auth)

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        auth: AbstractAuthentication | None = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """The workspace described by the nearest ``.amlpipe/config.json`` or ``config.json``.

        Args:
            path: a folder to start the search from, or a config file (default: the current folder).
            auth: credentials to use instead of the config's service principal.
            _file_name: a config file name to look for instead (azureml compatibility).
        """
        start = os.path.join(path or os.getcwd(), _file_name) if _file_name else path
        config = load_config(start)
        if config.endpoint is None:
            raise UserErrorException(f"{config.path} has no 'endpoint'.")
        if auth is None and config.token_command is not None:
            auth = TokenAuthentication.from_command(config.token_command)
        if auth is None:
            missing = [
                key
                for key in ("tenant_id", "service_principal_id", "service_principal_password")
                if getattr(config, key) is None
            ]
            if missing:
                raise UserErrorException(
                    f"{config.path} lacks {', '.join(missing)} (or a token_command); pass auth=... or fix the file."
                )
            assert config.tenant_id and config.service_principal_id and config.service_principal_password
            auth = ServicePrincipalAuthentication(
                config.tenant_id,
                config.service_principal_id,
                config.service_principal_password,
                endpoint=config.endpoint,
            )
        return cls(auth=auth, endpoint=config.endpoint)

    @property
    def endpoint(self) -> str:
        """The service's base URL."""
        return self._endpoint

    def get_default_datastore(self) -> AzureBlobDatastore:
        """The default datastore, ``workspaceblobstore``."""
        from amlpipe.core.datastore import Datastore

        return Datastore.get_default(self)

    @property
    def datastores(self) -> dict[str, Datastore]:
        """Every datastore, by name (the default included)."""
        from amlpipe.core.datastore import Datastore

        return {d.name: d for d in Datastore.list(self)}

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """Every compute target, by name (the built-in ``local`` is not listed)."""
        from amlpipe.core.compute import ComputeTarget

        return {c.name: c for c in ComputeTarget.list(self)}

    @property
    def datasets(self) -> dict[str, Dataset]:
        """The latest version of every registered dataset, by name."""
        from amlpipe.core.dataset import Dataset

        return Dataset.get_all(self)

    @property
    def experiments(self) -> dict[str, Any]:
        """Every experiment, by name."""
        from amlpipe.core.experiment import Experiment  # here: experiment imports this module

        return {e.name: e for e in Experiment.list(self)}

    def _graph_registry(self) -> _ApiRegistry:
        """What pipeline validation asks of the workspace, answered from the service.

        Each call returns a new object that fetches each list once, so one validation costs at most
        three requests and sees one consistent view.
        """
        return _ApiRegistry(self._client)

    def get_details(self) -> dict[str, Any]:
        return {"name": self.name, "endpoint": self._endpoint}

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', endpoint='{self._endpoint}')"


class _ApiRegistry:
    """``shared.graph.validate.Registry`` over the service API, each list fetched once."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client
        self._cache: dict[str, dict[str, int]] = {}

    def _names(self, path: str, value: Callable[[dict[str, Any]], int] = lambda _: 0) -> dict[str, int]:
        if path not in self._cache:
            items = self._client.get(path)["value"]
            self._cache[path] = {item["name"].lower(): value(item) for item in items}
        return self._cache[path]

    def has_compute_target(self, name: str) -> bool:
        """Whether ``name`` is ``local`` or a created target."""
        return name.lower() == "local" or name.lower() in self._names("computetargets")

    def has_dataset(self, name: str, version: int | None) -> bool:
        """Whether dataset ``name`` is registered (versions run 1..latest, none removed alone)."""
        latest = self._names("datasets", lambda item: int(item["version"])).get(name.lower())
        return latest is not None and (version is None or 1 <= version <= latest)

    def has_datastore(self, name: str) -> bool:
        """Whether ``name`` is a datastore (the default included)."""
        return name.lower() in self._names("datastores")
