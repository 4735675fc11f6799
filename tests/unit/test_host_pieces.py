"""Pure pieces of the host: message encoding, back-off, poison names, keys, indexing."""

from __future__ import annotations

import azure.functions as func
import pytest

from amlpipe.host.errors import FunctionIndexError, HostConfigError
from amlpipe.host.indexing import index_functions
from amlpipe.host.keys import KeyStore, _hash
from amlpipe.host.queues import Backoff, poison_queue_name
from amlpipe.host.settings import AppSettings
from amlpipe.host.storage import decode_message, default_host_id, encode_message


def test_base64_round_trip_and_plain_text() -> None:
    assert encode_message("héllo", "base64") == "aMOpbGxv"
    assert decode_message("aMOpbGxv", "base64") == "héllo".encode()
    assert encode_message(b"raw", "none") == "raw"
    assert decode_message("raw text", "none") == b"raw text"


def test_non_base64_text_is_refused_when_encoding_is_base64() -> None:
    with pytest.raises(ValueError, match="not valid Base64"):
        decode_message("not base64!", "base64")


def test_backoff_grows_to_the_maximum_and_resets_on_a_hit() -> None:
    backoff = Backoff(maximum=2.0)
    delays = [backoff.miss() for _ in range(12)]
    assert delays[0] == pytest.approx(0.1)
    assert max(delays) <= 2.0 and delays[-1] == 2.0
    assert all(b >= a * 0.8 * 0.99 or b == 2.0 for a, b in zip(delays, delays[1:], strict=False))
    backoff.hit()
    assert backoff.miss() == pytest.approx(0.1)


def test_poison_queue_names() -> None:
    assert poison_queue_name("jobs") == "jobs-poison"
    assert poison_queue_name("jobs-poison") is None
    assert poison_queue_name("q" * 57) is None  # 'q'*57 + '-poison' is 64 characters


def test_host_id_is_stable_short_and_lower_case() -> None:
    first, second = default_host_id("/apps/one"), default_host_id("/apps/one")
    assert first == second and len(first) <= 32 and first == first.lower()
    assert default_host_id("/apps/two") != first


def test_key_levels() -> None:
    store = KeyStore(master=_hash("m"), host={"default": _hash("h")}, functions={"f": {"own": _hash("fk")}})
    assert store.authorizes("m", level="admin", function="f")
    assert not store.authorizes("h", level="admin", function="f")
    assert store.authorizes("h", level="function", function="f")
    assert store.authorizes("fk", level="function", function="F")
    assert not store.authorizes("fk", level="function", function="g")
    assert not store.authorizes("nope", level="function", function="f")
    assert KeyStore.from_json(store.to_json()) == store


def _app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.queue_trigger(arg_name="msg", queue_name="%Q%", connection="AzureWebJobsStorage")
    @app.queue_output(arg_name="out", queue_name="%Q%-next", connection="AzureWebJobsStorage")
    def relay(msg: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(msg.get_body().decode())

    @app.route(route="r/{id}")
    async def handler(req: func.HttpRequest, context: func.Context) -> str:
        return "x"

    return app


def test_indexing_resolves_tokens_and_reads_bindings() -> None:
    functions = {f.name: f for f in index_functions(_app(), AppSettings({"Q": "jobs"}))}
    relay = functions["relay"]
    assert relay.trigger_type == "queueTrigger" and relay.trigger["queue_name"] == "jobs"
    assert relay.full_name == "Host.Functions.relay"
    [out] = relay.outputs()
    assert out.type == "queue" and out.queue_name == "jobs-next"
    handler = functions["handler"]
    assert handler.is_async and handler.trigger["auth_level"] == "anonymous"
    assert handler.trigger["route"] == "r/{id}" and "context" in handler.parameters


def test_indexing_refuses_an_unbound_parameter() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    def bad(req: func.HttpRequest, stray: str) -> str:
        return "x"

    with pytest.raises(HostConfigError, match="parameter 'stray' has no binding"):
        index_functions(app, AppSettings({}))


def test_indexing_reports_duplicate_function_names() -> None:
    app = func.FunctionApp()

    @app.function_name("same")
    @app.route(route="a")
    def first(req: func.HttpRequest) -> str:
        return "a"

    @app.function_name("same")
    @app.route(route="b")
    def second(req: func.HttpRequest) -> str:
        return "b"

    with pytest.raises(FunctionIndexError, match="same"):
        index_functions(app, AppSettings({}))
