"""SDK-type bindings (the worker's "deferred bindings"): a client instead of the blob's content.

A blob trigger or blob input whose parameter is annotated with an SDK type of
``azurefunctions-extensions-bindings-blob`` (``blob.BlobClient``, ``blob.ContainerClient``,
``blob.StorageStreamDownloader``) gets an Azure Storage SDK object; the host never reads the blob.
What the real pieces do, and what this module mirrors:

* **Detection** (worker ``bindings/meta.py``): the worker imports ``azurefunctions.extensions.base``
  when it is installed. A parameter is a deferred binding when the base registry supports its
  annotation (a subclass of the base ``SdkType``). The converter registered for the binding type
  (the blob extension registers ``blob`` and ``blobTrigger`` when the app imports it) must accept
  the annotation (``check_input_type_annotation``), else the function fails to load.
* **Host** (storage extension ``CreateParameterBindingData``): instead of content it sends model
  binding data: version ``1.0``, source ``AzureStorageBlobs``, content type ``application/json``
  and content ``{"Connection", "ContainerName", "BlobName"}``. ``Connection`` is the binding's
  ``connection`` as written (``""`` when it has none), not the setting the host resolved it to
  (azure-sdk-for-net PR 38284): the Python extension then reads the app setting of exactly that
  name, with no ``AzureWebJobs`` prefix, so ``connection="Storage"`` fails in the converter even
  where the host's own ``AzureWebJobsStorage`` lookup succeeds.
* **Worker**: ``converter.decode(Datum(data, "model_binding_data"), trigger_metadata=..., pytype=...)``
  builds the object, and the result is cached per (function, parameter, type, content): later
  invocations for the same blob name get the *same* object (a ``StorageStreamDownloader`` too, which
  then still holds the content it downloaded first).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from amlpipe.host.errors import HostConfigError

try:
    from azurefunctions.extensions import base as _base
except ImportError:  # as in the worker: without the base extension there are no deferred bindings
    _base = None

#: Binding types whose SDK types this host binds (the blob extension's ``blob`` and ``blobTrigger``).
SUPPORTED_BINDINGS = ("blobTrigger", "blob")
#: Model binding data of the Storage Blobs extension (``ParameterBindingData``).
BLOB_SOURCE = "AzureStorageBlobs"
BINDING_DATA_VERSION = "1.0"
BINDING_DATA_CONTENT_TYPE = "application/json"


class SdkTypeConverter(Protocol):
    """The part of an extension's converter (``azurefunctions.extensions.base.InConverter``) we call."""

    @classmethod
    def check_input_type_annotation(cls, pytype: type) -> bool: ...

    @classmethod
    def decode(cls, data: Any, *, trigger_metadata: Mapping[str, Any], pytype: type) -> Any: ...


@dataclass(frozen=True)
class ModelBindingData:
    """What the host sends for an SDK-type parameter (the gRPC ``ModelBindingData`` message)."""

    version: str
    source: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class DeferredBinding:
    """A parameter bound to an SDK type, and the extension converter that builds it."""

    pytype: type
    converter: type[SdkTypeConverter]


def blob_binding_data(connection: str | None, container: str, blob_name: str) -> ModelBindingData:
    """Model binding data for one blob; ``connection`` is the binding's connection name as written."""
    content = {"Connection": connection or "", "ContainerName": container, "BlobName": blob_name}
    return ModelBindingData(
        version=BINDING_DATA_VERSION,
        source=BLOB_SOURCE,
        content_type=BINDING_DATA_CONTENT_TYPE,
        content=json.dumps(content, separators=(",", ":")).encode("utf-8"),
    )


def deferred_binding(binding_type: str, annotation: Any, *, what: str) -> DeferredBinding | None:
    """The deferred binding for a parameter, or ``None`` when its annotation is not an SDK type.

    Raises:
        HostConfigError: the annotation is an SDK type the binding's converter does not accept (the
            worker's "does not match its Python annotation" load error).
    """
    registry = None if _base is None else _base.get_binding_registry()
    if registry is None or annotation is None or not registry.check_supported_type(annotation):
        return None
    converter = registry.get(binding_type)
    accepted = False
    if converter is not None:
        try:
            accepted = bool(converter.check_input_type_annotation(annotation))
        except TypeError:  # issubclass() of a generic alias such as list[BlobClient]
            accepted = False
    name = getattr(annotation, "__name__", repr(annotation))
    if not accepted:
        raise HostConfigError(
            f'{what}: type of binding "{binding_type}" does not match its Python annotation "{name}".'
        )
    if binding_type not in SUPPORTED_BINDINGS:
        raise HostConfigError(
            f"{what}: SDK type '{name}' on a '{binding_type}' binding is not supported by the local host "
            f"(supported: {', '.join(SUPPORTED_BINDINGS)})."
        )
    return DeferredBinding(pytype=annotation, converter=cast(type[SdkTypeConverter], converter))


class DeferredBindings:
    """Decodes model binding data into SDK objects, cached for the host's lifetime as the worker does."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, type, bytes], Any] = {}

    async def decode(
        self,
        binding: DeferredBinding,
        data: ModelBindingData,
        *,
        function: str,
        parameter: str,
        trigger_metadata: Mapping[str, Any],
    ) -> Any:
        """The SDK object for ``data``: the cached one for the same blob, else a new one.

        Raises:
            ValueError: the converter could not build the object (e.g. the connection setting is missing).
        """
        key = (function, parameter, binding.pytype, data.content)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        assert _base is not None  # a DeferredBinding exists only when the base extension does
        metadata = {name: _metadata_datum(value) for name, value in trigger_metadata.items()}
        # In a thread: a StorageStreamDownloader starts downloading when it is built.
        value = await asyncio.to_thread(
            binding.converter.decode,
            _base.Datum(data, "model_binding_data"),
            trigger_metadata=metadata,
            pytype=binding.pytype,
        )
        if value is not None:
            self._cache[key] = value
        return value


def _metadata_datum(value: Any) -> Any:
    """Trigger metadata as the worker hands it to converters: strings as ``string``, the rest as ``json``."""
    assert _base is not None
    if isinstance(value, str):
        return _base.Datum(value, "string")
    return _base.Datum(json.dumps(value, default=str), "json")
