"""Blob trigger behaviours of the local host: binding data, content, outputs, failures, SDK types.

The container comes from app setting BLOB_CONTAINER so every test watches its own container.
"""

import os

import _testjournal
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

app = func.FunctionApp()


@app.blob_trigger(arg_name="blob", path="%BLOB_CONTAINER%/in/{name}.txt", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="out", path="%BLOB_CONTAINER%/out/{name}.txt", connection="AzureWebJobsStorage")
def on_text(blob: func.InputStream, out: func.Out[str], context: func.Context) -> None:
    content = blob.read().decode("utf-8")
    _testjournal.record(
        function="on_text",
        name=blob.name,
        uri=blob.uri,
        length=blob.length,
        content=content,
        metadata=blob.metadata,
        etag=(blob.blob_properties or {}).get("ETag"),
        retry=context.retry_context.retry_count,
        pid=os.getpid(),
    )
    if content.startswith("fail"):
        raise RuntimeError("asked to fail")
    out.set(content.upper())


@app.blob_trigger(arg_name="data", path="%BLOB_CONTAINER%/raw/{stem}.{ext}", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="out", path="%BLOB_CONTAINER%/meta/{ext}/{stem}", connection="AzureWebJobsStorage")
async def on_bytes(data: bytes, out: func.Out[bytes]) -> None:
    _testjournal.record(function="on_bytes", type=type(data).__name__, length=len(data), pid=os.getpid())
    out.set(data[::-1])


@app.blob_trigger(arg_name="client", path="%BLOB_CONTAINER%/sdk/{name}", connection="AzureWebJobsStorage")
@app.blob_input(arg_name="container", path="%BLOB_CONTAINER%/sdk/{name}", connection="AzureWebJobsStorage")
def on_sdk(client: blob.BlobClient, container: blob.ContainerClient) -> None:
    _testjournal.record(
        function="on_sdk",
        name=f"{client.container_name}/{client.blob_name}",
        type=f"{type(client).__module__}.{type(client).__qualname__}",
        etag=client.get_blob_properties().etag,
        container_type=f"{type(container).__module__}.{type(container).__qualname__}",
        container=container.container_name,
        client=id(client),
        pid=os.getpid(),
    )
