"""SDK-type blob bindings: detection at indexing, model binding data, decoding (no I/O)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import azure.functions as func
import azure.storage.blob
import azurefunctions.extensions.bindings.blob as blob
import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.indexing import index_functions
from amlpipe.host.sdktypes import DeferredBinding, DeferredBindings, blob_binding_data, deferred_binding
from amlpipe.host.settings import AppSettings

DEV = "UseDevelopmentStorage=true"


def test_blob_binding_data_is_what_the_storage_extension_sends() -> None:
    data = blob_binding_data("AzureWebJobsStorage", "outputs", "runs/r1/model.pkl")
    assert (data.version, data.source, data.content_type) == ("1.0", "AzureStorageBlobs", "application/json")
    assert json.loads(data.content) == {
        "Connection": "AzureWebJobsStorage",
        "ContainerName": "outputs",
        "BlobName": "runs/r1/model.pkl",
    }
    # The connection as the binding names it: no default, no AzureWebJobs prefix (the host's own rule).
    assert json.loads(blob_binding_data(None, "c", "b").content)["Connection"] == ""
    assert json.loads(blob_binding_data("Storage", "c", "b").content)["Connection"] == "Storage"


@pytest.mark.parametrize("annotation", [blob.BlobClient, blob.ContainerClient, blob.StorageStreamDownloader])
def test_sdk_type_annotations_are_deferred_bindings(annotation: type) -> None:
    found = deferred_binding("blobTrigger", annotation, what="f")
    assert found is not None and found.pytype is annotation
    assert found.converter is blob.BlobClientConverter


@pytest.mark.parametrize("annotation", [None, bytes, str, func.InputStream, azure.storage.blob.BlobClient])
def test_other_annotations_are_not_deferred(annotation: Any) -> None:
    # The Azure SDK's own BlobClient is not the extension's SDK type: the worker binds it normally.
    assert deferred_binding("blobTrigger", annotation, what="f") is None


def test_an_sdk_type_the_binding_has_no_converter_for_is_refused() -> None:
    with pytest.raises(HostConfigError, match='type of binding "queueTrigger" does not match'):
        deferred_binding("queueTrigger", blob.BlobClient, what="Function 'f' parameter 'msg'")
    with pytest.raises(HostConfigError, match="does not match its Python annotation"):
        deferred_binding("blobTrigger", list[blob.BlobClient], what="f")


def _app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="client", path="data/sdk/{name}", connection="AzureWebJobsStorage")
    @app.blob_input(arg_name="container", path="data/sdk/{name}", connection="AzureWebJobsStorage")
    def sdk(client: blob.BlobClient, container: blob.ContainerClient) -> None:
        pass

    @app.blob_trigger(arg_name="stream", path="data/in/{name}", connection="AzureWebJobsStorage")
    def content(stream: func.InputStream) -> None:
        pass

    return app


def test_indexing_records_sdk_typed_trigger_and_input_parameters() -> None:
    functions = {f.name: f for f in index_functions(_app(), AppSettings({"AzureWebJobsStorage": DEV}))}
    deferred = functions["sdk"].deferred
    assert {name: b.pytype for name, b in deferred.items()} == {
        "client": blob.BlobClient,
        "container": blob.ContainerClient,
    }
    assert functions["content"].deferred == {}


def _decode(bindings: DeferredBindings, pytype: type, name: str, *, function: str = "f") -> Any:
    binding = DeferredBinding(pytype=pytype, converter=blob.BlobClientConverter)
    data = blob_binding_data("AzureWebJobsStorage", "data", name)
    metadata = {"BlobTrigger": f"data/{name}", "Properties": {"ETag": "0x1"}}
    return asyncio.run(bindings.decode(binding, data, function=function, parameter="client", trigger_metadata=metadata))


def test_decode_builds_a_sync_client_from_the_named_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", DEV)
    bindings = DeferredBindings()
    client = _decode(bindings, blob.BlobClient, "sdk/a.bin")
    assert type(client) is azure.storage.blob.BlobClient
    assert (client.container_name, client.blob_name) == ("data", "sdk/a.bin")
    container = _decode(bindings, blob.ContainerClient, "sdk/a.bin")
    assert type(container) is azure.storage.blob.ContainerClient and container.container_name == "data"


def test_decode_reuses_the_object_per_function_parameter_type_and_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker caches SDK objects for its lifetime: a later version of the same blob gets the same client.
    monkeypatch.setenv("AzureWebJobsStorage", DEV)
    bindings = DeferredBindings()
    first = _decode(bindings, blob.BlobClient, "sdk/a.bin")
    assert _decode(bindings, blob.BlobClient, "sdk/a.bin") is first
    assert _decode(bindings, blob.BlobClient, "sdk/b.bin") is not first
    assert _decode(bindings, blob.BlobClient, "sdk/a.bin", function="g") is not first


def test_decode_fails_when_the_connection_setting_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    with pytest.raises(ValueError, match="AzureWebJobsStorage does not exist"):
        _decode(DeferredBindings(), blob.BlobClient, "sdk/a.bin")


def test_decode_reads_the_setting_of_exactly_the_connection_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # connection="Storage" works for the host's own clients (AzureWebJobsStorage), not for the extension.
    monkeypatch.setenv("AzureWebJobsStorage", DEV)
    monkeypatch.delenv("Storage", raising=False)
    binding = DeferredBinding(pytype=blob.BlobClient, converter=blob.BlobClientConverter)
    decoding = DeferredBindings().decode(
        binding, blob_binding_data("Storage", "data", "a.bin"), function="f", parameter="client", trigger_metadata={}
    )
    with pytest.raises(ValueError, match="Storage account connection name Storage does not exist"):
        asyncio.run(decoding)
