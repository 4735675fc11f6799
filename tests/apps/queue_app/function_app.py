"""Queue behaviours of the local host: processing, outputs, retries, poison, shutdown, leases."""

import os
import time

import azure.functions as func
from _testjournal import record

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%IN_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def consume(msg: func.QueueMessage, out: func.Out[str]) -> None:
    body = msg.get_body().decode("utf-8")
    record(fn="consume", body=body, id=msg.id, dequeue_count=msg.dequeue_count, pid=os.getpid())
    if body.startswith("fail"):
        out.set(f"never:{body}")
        raise ValueError(f"refusing {body}")
    if body.startswith("sleep:"):
        time.sleep(float(body.split(":")[1]))
        record(fn="consume", finished=body, pid=os.getpid())
    out.set(f"processed:{body}")


@app.queue_trigger(arg_name="msg", queue_name="%STR_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def as_text(msg: str) -> list[str]:
    record(fn="as_text", body=msg, type=type(msg).__name__)
    return [f"first:{msg}", f"second:{msg}"]


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="%STR_QUEUE%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> str:
    out.set(req.get_body().decode("utf-8"))
    return "queued"


@app.queue_trigger(arg_name="msg", queue_name="%MIXED_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="doc", path="%RESULTS_CONTAINER%/{target}", connection="AzureWebJobsStorage")
def mixed(msg: func.QueueMessage, out: func.Out[str], doc: func.Out[str]) -> None:
    record(fn="mixed", body=msg.get_body().decode("utf-8"), dequeue_count=msg.dequeue_count)
    out.set("mixed-out")
    doc.set("mixed-doc")


@app.queue_trigger(arg_name="msg", queue_name="%INPUT_QUEUE%", connection="AzureWebJobsStorage")
@app.blob_input(
    arg_name="doc", path="%RESULTS_CONTAINER%/{name}", connection="AzureWebJobsStorage", data_type=func.DataType.STRING
)
def reader(msg: func.QueueMessage, doc) -> None:  # noqa: ANN001 - no annotation: data_type decides
    record(fn="reader", doc=doc, type=type(doc).__name__)
