"""A queue trigger with host.json messageEncoding 'none': plain-text messages."""

import azure.functions as func
from _testjournal import record

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="%IN_QUEUE%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def plain(msg: func.QueueMessage, out: func.Out[str]) -> None:
    record(fn="plain", body=msg.get_body().decode("utf-8"))
    out.set("plain-out")
