"""``GET /api/health``: anonymous liveness with the version and whether storage is reachable."""

import json

import azure.functions as func

from shared import health

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_health(req: func.HttpRequest) -> func.HttpResponse:
    report = health.check()
    return func.HttpResponse(
        json.dumps(report.to_json()), status_code=200 if report.healthy else 503, mimetype="application/json"
    )
