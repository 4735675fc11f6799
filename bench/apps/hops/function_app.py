"""Benchmark app: a constant HTTP function, and a chain of 50 queue functions forwarding by output binding."""

import json
import os
import time

import azure.functions as func

HOPS = 50
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="const", methods=["GET"])
def const(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="chain", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="hop-0", connection="AzureWebJobsStorage")
def start_chain(req: func.HttpRequest, out: func.Out[str]) -> str:
    out.set(json.dumps({"run": req.params.get("run", "0"), "t0": time.perf_counter()}))
    return "started"


def _make_hop(index: int) -> None:
    last = index == HOPS - 1

    if last:

        @app.function_name(f"hop_{index}")
        @app.queue_trigger(arg_name="msg", queue_name=f"hop-{index}", connection="AzureWebJobsStorage")
        def finish(msg: func.QueueMessage) -> None:
            body = json.loads(msg.get_body())
            elapsed = time.perf_counter() - body["t0"]
            with open(os.environ["BENCH_RESULTS"], "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"run": body["run"], "elapsed": elapsed}) + "\n")

    else:

        @app.function_name(f"hop_{index}")
        @app.queue_trigger(arg_name="msg", queue_name=f"hop-{index}", connection="AzureWebJobsStorage")
        @app.queue_output(arg_name="out", queue_name=f"hop-{index + 1}", connection="AzureWebJobsStorage")
        def forward(msg: func.QueueMessage, out: func.Out[bytes]) -> None:
            out.set(msg.get_body())


for _index in range(HOPS):
    _make_hop(_index)
