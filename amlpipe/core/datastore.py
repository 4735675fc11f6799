"""Datastores (azureml.core.Datastore): named blob containers and S3 buckets of the workspace.

    ds = ws.get_default_datastore()                      # workspaceblobstore
    ds.upload(src_dir="data", target_path="data/", overwrite=True)
    blob = Datastore.register_azure_blob_container(ws, "blob_data", "training", "myaccount", account_key=key)
    blob.download("local_copy", prefix="data/training")
    s3 = Datastore.register_s3(ws, "s3_data", "my-bucket", region="eu-west-1",
                               access_key_id=key_id, secret_access_key=secret)
    s3.upload(src_dir="data", target_path="raw/")          # the same calls on a bucket

Credentials go to the service once, at registration; they are never read back. Uploads and downloads
move the bytes straight to and from storage: Blob storage with a container SAS the service grants for
an hour, an S3 bucket with per-object URLs it signs for an hour (read for Readers, read and write for
Contributors). ``register_s3`` is our addition to azureml's names: the service checks the bucket with
the given credentials before it stores anything.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from azure.storage.blob import ContainerClient

from amlpipe._client import api_path
from amlpipe.core.compute import _require_service
from amlpipe.data import _s3, _transfer
from amlpipe.data.data_reference import DataReference
from amlpipe.exceptions import ServiceException, UserErrorException

__all__ = ["AmazonS3Datastore", "AzureBlobDatastore", "Datastore"]

DEFAULT_DATASTORE = "workspaceblobstore"


def _get(workspace: Any, name: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = _require_service(workspace).get(api_path("datastores", name))
    except ServiceException as exc:
        if exc.status_code == 404:
            raise UserErrorException(f"Datastore '{name}' was not found in the workspace.") from exc
        raise
    return body


class Datastore:
    """A datastore of a workspace; ``Datastore(ws, name)`` gets a registered one (the default when None).

    Args:
        workspace: the workspace.
        name: the datastore's name; None means the workspace's default datastore.

    Raises:
        UserErrorException: there is no datastore ``name``.
    """

    def __new__(cls, workspace: Any = None, name: str | None = None, **kwargs: Any) -> Datastore:
        # azureml answers Datastore(ws, name) with the datastore's own type, so the body is read here
        # and handed to __init__ (which Python calls next with the same arguments).
        body = kwargs.get("_body")
        if cls is Datastore and body is None and workspace is not None:
            body = _get(workspace, name or DEFAULT_DATASTORE)
        if cls is Datastore:
            cls = _TYPES.get(str((body or {}).get("datastoreType", "AzureBlob")), AzureBlobDatastore)
        instance = super().__new__(cls)
        instance._prefetched = body
        return instance

    def __init__(self, workspace: Any, name: str | None = None, **kwargs: Any) -> None:
        body = kwargs.get("_body") or getattr(self, "_prefetched", None)
        if body is None:
            body = _get(workspace, name or DEFAULT_DATASTORE)
        self._prefetched: dict[str, Any] | None = None
        self.workspace = workspace
        self._load(body)

    def _load(self, body: dict[str, Any]) -> None:
        self.name: str = body["name"]
        self.datastore_type: str = body.get("datastoreType", "AzureBlob")
        self.credential_type: str = body.get("credentialType", "None")
        self.is_default: bool = bool(body.get("isDefault"))

    @classmethod
    def _from_json(cls, workspace: Any, body: dict[str, Any]) -> Datastore:
        kind = _TYPES.get(str(body.get("datastoreType", "AzureBlob")), AzureBlobDatastore)
        return kind(workspace, body["name"], _body=body)

    @staticmethod
    def get(workspace: Any, datastore_name: str) -> Datastore:
        """The datastore ``datastore_name``: an ``AzureBlobDatastore`` or an ``AmazonS3Datastore``.

        Raises:
            UserErrorException: there is none.
        """
        return Datastore._from_json(workspace, _get(workspace, datastore_name))

    @staticmethod
    def get_default(workspace: Any) -> AzureBlobDatastore:
        """The workspace's default datastore (``workspaceblobstore``)."""
        return _of_type(Datastore.get(workspace, DEFAULT_DATASTORE), AzureBlobDatastore)

    @staticmethod
    def list(workspace: Any) -> list[Datastore]:
        """Every datastore of the workspace, the default first."""
        body = _require_service(workspace).get("datastores")
        return [Datastore._from_json(workspace, item) for item in body["value"]]

    @staticmethod
    def register_azure_blob_container(
        workspace: Any,
        datastore_name: str,
        container_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
        blob_cache_timeout: int | None = None,
        grant_workspace_access: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
    ) -> AzureBlobDatastore:
        """Register an Azure Blob container as a datastore.

        Args:
            workspace: the workspace.
            datastore_name: letters, digits and underscores (case-insensitive, unique).
            container_name: the blob container.
            account_name: the storage account.
            sas_token: a SAS token for the container (stored encrypted; never returned).
            account_key: the account key (stored encrypted; never returned). Needed for
                ``upload``/``download`` through amlpipe, which mints short-lived SAS tokens from it.
            protocol: ``"https"`` (default) or ``"http"``.
            endpoint: the DNS suffix (default ``core.windows.net``), or the full account URL, e.g.
                ``http://127.0.0.1:10000/devstoreaccount1`` for Azurite.
            overwrite: replace an existing registration with a different definition.
            create_if_not_exists: create the container if it does not exist.

        Raises:
            UserErrorException: an invalid argument, or the name is taken and ``overwrite`` is False.
        """
        body: dict[str, Any] = {
            "datastoreType": "AzureBlob",
            "containerName": container_name,
            "accountName": account_name,
            "overwrite": overwrite,
            "createIfNotExists": create_if_not_exists,
        }
        for key, value in (("sasToken", sas_token), ("accountKey", account_key), ("protocol", protocol)):
            if value is not None:
                body[key] = value
        if endpoint is not None:
            body["endpoint"] = endpoint
        return _of_type(_register(workspace, datastore_name, body), AzureBlobDatastore)

    @staticmethod
    def register_s3(
        workspace: Any,
        datastore_name: str,
        bucket_name: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
    ) -> AmazonS3Datastore:
        """Register an S3 bucket (AWS, or an S3-compatible service) as a datastore. Our addition to azureml.

        The service checks the bucket with the given credentials before it stores anything; the key
        pair is stored encrypted and never returned (nor kept on the returned object).

        Args:
            workspace: the workspace.
            datastore_name: letters, digits and underscores (case-insensitive, unique).
            bucket_name: the bucket (AWS's naming rules).
            endpoint_url: an S3-compatible service's https URL, e.g. ``https://<id>.r2.cloudflarestorage.com``;
                None means AWS. A loopback URL (``http://127.0.0.1:9000``) only when the service runs on Azurite.
            region: the bucket's region (default ``us-east-1``).
            access_key_id: the access key id; give it with ``secret_access_key``, or neither for a public bucket.
            secret_access_key: the secret access key.
            overwrite: replace an existing registration with a different definition.
            create_if_not_exists: create the bucket if it does not exist.

        Raises:
            UserErrorException: an invalid argument, a bucket that is missing or refuses the credentials,
                an unreachable endpoint, or the name is taken and ``overwrite`` is False.
        """
        body: dict[str, Any] = {
            "datastoreType": "AmazonS3",
            "bucketName": bucket_name,
            "overwrite": overwrite,
            "createIfNotExists": create_if_not_exists,
        }
        for key, value in (
            ("endpointUrl", endpoint_url),
            ("region", region),
            ("accessKeyId", access_key_id),
            ("secretAccessKey", secret_access_key),
        ):
            if value is not None:
                body[key] = value
        return _of_type(_register(workspace, datastore_name, body), AmazonS3Datastore)

    def unregister(self) -> None:
        """Remove this registration (the container or bucket and its data stay)."""
        _require_service(self.workspace).delete(api_path("datastores", self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


_D = TypeVar("_D", bound=Datastore)


class UploadSummary(NamedTuple):
    """What an upload did: the reference ``upload`` returns, the files found, and the files written
    (the others existed and were kept, without ``overwrite``)."""

    reference: DataReference
    files: int
    uploaded: int


def _of_type(datastore: Datastore, kind: type[_D]) -> _D:
    if not isinstance(datastore, kind):
        raise ServiceException(
            f"The service answered a {datastore.datastore_type} datastore where {kind.__name__} was expected.",
            status_code=500,
        )
    return datastore


def _register(workspace: Any, name: str, body: dict[str, Any]) -> Datastore:
    try:
        answer = _require_service(workspace).put(api_path("datastores", name), body)
    except ServiceException as exc:
        if 400 <= exc.status_code < 500 and exc.status_code not in (401, 403):
            raise UserErrorException(exc.message) from exc
        raise
    return Datastore._from_json(workspace, answer)


class _FileDatastore(Datastore, ABC):
    """What every kind of datastore does with files: upload, download, and references to its paths."""

    @abstractmethod
    def _files(self, *, write: bool, overwrite: bool = False) -> AbstractContextManager[_transfer.Files]:
        """The datastore's files, for reading or (``write``) writing; each kind moves bytes its own way."""

    def upload(
        self,
        src_dir: str | os.PathLike[str],
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload every file under ``src_dir`` to ``target_path`` (existing files kept unless ``overwrite``).

        Inside a pipeline step each file gets the metadata ``amlpipe_run_id=<pipeline run id>``, so the
        run's own writes do not trigger a schedule that watches this datastore.

        Returns:
            A ``DataReference`` to ``target_path`` on this datastore.

        Raises:
            UserErrorException: ``src_dir`` is not a folder, or ``target_path`` is absolute or has ``..``.
        """
        return self._upload_dir(src_dir, target_path, overwrite=overwrite, show_progress=show_progress).reference

    def _upload_dir(
        self, src_dir: str | os.PathLike[str], target_path: str | None, *, overwrite: bool, show_progress: bool
    ) -> UploadSummary:
        """:meth:`upload`, saying how many files it found and how many it wrote (the CLI's summary)."""
        prefix = _transfer.blob_prefix(target_path, "target_path")
        source = Path(src_dir)
        if not source.is_dir():
            raise UserErrorException(f"src_dir '{src_dir}' is not a directory.")
        files = [(f, _join(prefix, "/".join(f.relative_to(source).parts))) for f in _transfer.walk(source)]
        uploaded = self._upload(files, overwrite=overwrite, show_progress=show_progress)
        return UploadSummary(self.path(prefix or None), files=len(files), uploaded=uploaded)

    def upload_files(
        self,
        files: list[str],
        relative_root: str | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload ``files``, named relative to ``relative_root`` (default: their common folder), under ``target_path``.

        Inside a pipeline step each file is tagged with the run, as :meth:`upload` does.

        Raises:
            UserErrorException: a file is missing or outside ``relative_root``, or ``target_path`` is unsafe.
        """
        prefix = _transfer.blob_prefix(target_path, "target_path")
        pairs = [(path, _join(prefix, name)) for path, name in _transfer.relative_names(files, relative_root)]
        self._upload(pairs, overwrite=overwrite, show_progress=show_progress)
        return self.path(prefix or None)

    def _upload(self, files: list[tuple[Path, str]], *, overwrite: bool, show_progress: bool) -> int:
        """Upload ``(local file, name)`` pairs; return how many were written (kept ones do not count)."""
        with self._files(write=True, overwrite=overwrite) as target:
            return _transfer.upload(target, files, show_progress=show_progress)

    def download(
        self,
        target_path: str | os.PathLike[str],
        prefix: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> int:
        """Download the files under ``prefix`` into ``target_path``, keeping their paths.

        Returns:
            How many files were downloaded (existing files are kept unless ``overwrite``).

        Raises:
            UserErrorException: ``prefix`` is unsafe, or a name would land outside ``target_path``.
        """
        clean = _transfer.blob_prefix(prefix, "prefix")
        with self._files(write=False) as source:
            root = Path(target_path)
            return _transfer.download(source, root, clean, overwrite=overwrite, show_progress=show_progress)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A ``DataReference`` to ``path`` on this datastore (its root when None)."""
        return DataReference(datastore=self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> DataReference:
        """A reference to the datastore's root, mounted."""
        return self.path().as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        """A reference to the datastore's root, downloaded."""
        return self.path().as_download(path_on_compute=path_on_compute)


class AzureBlobDatastore(_FileDatastore):
    """A blob container datastore (azureml.data.azure_storage_datastore.AzureBlobDatastore).

    ``upload``/``download`` move the bytes straight to and from Blob storage with a container SAS the
    service grants for an hour.
    """

    def _load(self, body: dict[str, Any]) -> None:
        super()._load(body)
        self.container_name: str = body.get("containerName", "")
        self.account_name: str = body.get("accountName", "")
        self.protocol: str = body.get("protocol", "https")
        self.endpoint: str = body.get("endpoint", "")
        # azureml exposes these; the service never returns a credential.
        self.account_key: str | None = None
        self.sas_token: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, container_name={self.container_name!r})"

    @contextmanager
    def _files(self, *, write: bool, overwrite: bool = False) -> Iterator[_transfer.Files]:
        access = _require_service(self.workspace).post(
            api_path("datastores", self.name, "sas"), {"permission": "write" if write else "read"}
        )
        url = access["containerUrl"] + (f"?{access['sasToken']}" if access["sasToken"] else "")
        with ContainerClient.from_container_url(url) as container:
            yield _transfer.BlobFiles(container, overwrite=overwrite)


class AmazonS3Datastore(_FileDatastore):
    """An S3 bucket datastore (AWS or an S3-compatible service); registered with ``Datastore.register_s3``.

    ``upload``/``download`` move the bytes straight to and from the bucket with URLs the service signs
    for an hour, one per object (the key pair never leaves the service). One uploaded file holds at
    most 5 GiB; ``overwrite=False`` keeps existing objects with a conditional PUT (``If-None-Match``).

    Attributes:
        bucket_name: the bucket.
        endpoint_url: the S3-compatible service's URL; None for AWS.
        region: the bucket's region; None means ``us-east-1``.
        credential_type: ``AccessKey`` or ``None`` (anonymous access). The key pair is never returned.
    """

    def _load(self, body: dict[str, Any]) -> None:
        super()._load(body)
        self.bucket_name: str = body.get("bucketName") or ""
        self.endpoint_url: str | None = body.get("endpointUrl")
        self.region: str | None = body.get("region")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, bucket_name={self.bucket_name!r})"

    @contextmanager
    def _files(self, *, write: bool, overwrite: bool = False) -> Iterator[_s3.S3Files]:
        files = _s3.S3Files(_require_service(self.workspace), self.name, overwrite=overwrite)
        try:
            yield files
        finally:
            files.close()

    def _upload(self, files: list[tuple[Path, str]], *, overwrite: bool, show_progress: bool) -> int:
        _s3.check_sizes(files)  # before anything is signed or sent
        with self._files(write=True, overwrite=overwrite) as target:
            target.prepare([name for _, name in files], _transfer.writer_metadata())  # one request per 1000
            return _transfer.upload(target, files, show_progress=show_progress)


_TYPES: dict[str, type[Datastore]] = {"AzureBlob": AzureBlobDatastore, "AmazonS3": AmazonS3Datastore}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name
