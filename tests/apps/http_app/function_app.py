"""HTTP behaviours of the local host: routes, methods, return types, failures, auth levels."""

import json
import logging

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="hello", auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> str:
    return "hello"


@app.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"id": req.route_params["id"], "q": req.params.get("q"), "url": req.url}),
        mimetype="application/json",
    )


@app.route(route="items/new", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def new_item(req: func.HttpRequest) -> str:
    return "literal route wins"


@app.route(route="items/{id:int}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
def delete_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return req.route_params.get("path", "")


@app.route(route="products/{category:alpha}/{id:int?}", auth_level=func.AuthLevel.ANONYMOUS)
def products(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@app.route(route="echo", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_json()
    return func.HttpResponse(
        json.dumps({"body": body, "header": req.headers.get("x-custom"), "method": req.method}),
        status_code=201,
        headers={"X-Echo": "yes"},
        mimetype="application/json",
    )


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> str:
    logging.info("about to fail")
    raise RuntimeError("secret internal detail")


@app.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
async def slow(req: func.HttpRequest) -> str:
    import asyncio

    await asyncio.sleep(float(req.params.get("s", "5")))
    return "done"


@app.route(route="context", auth_level=func.AuthLevel.ANONYMOUS)
def with_context(req: func.HttpRequest, context: func.Context) -> str:
    same_thread_id = context.thread_local_storage.invocation_id == context.invocation_id
    return f"{context.function_name}:{bool(context.invocation_id)}:{same_thread_id}"


@app.route(route="secured")
def secured(req: func.HttpRequest) -> str:
    return "function level"


@app.route(route="adminonly", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin level"


@app.route(route="disabled", auth_level=func.AuthLevel.ANONYMOUS)
def disabled_fn(req: func.HttpRequest) -> str:
    return "should not be served when disabled"


@app.route(route="chatty", auth_level=func.AuthLevel.ANONYMOUS)
def chatty(req: func.HttpRequest) -> str:
    logging.info("chatty info line")
    logging.warning("chatty warning line")
    return "said things"


@app.route(route="user-timeout", auth_level=func.AuthLevel.ANONYMOUS)
def user_timeout(req: func.HttpRequest) -> str:
    raise TimeoutError("upstream API timed out")
