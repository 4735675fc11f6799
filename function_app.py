"""The amlpipe Functions app: builds the FunctionApp and registers one blueprint per area."""

import azure.functions as func
import azurefunctions.extensions.bindings.blob  # noqa: F401 - registers the SDK-type blob bindings (blob.BlobClient)

from functions.auth import bp as auth_bp
from functions.endpoints import bp as endpoints_bp
from functions.health import bp as health_bp
from functions.models import bp as models_bp
from functions.openapi import bp as openapi_bp
from functions.orchestrator import bp as orchestrator_bp
from functions.pipelines import bp as pipelines_bp
from functions.registry import bp as registry_bp
from functions.runs import bp as runs_bp
from functions.schedule_firing import bp as schedule_firing_bp
from functions.schedule_watches import bp as schedule_watches_bp
from functions.schedules import bp as schedules_bp
from functions.studio import bp as studio_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health_bp)
app.register_functions(auth_bp)
app.register_functions(registry_bp)  # datastores, datasets, compute targets
app.register_functions(models_bp)
# pipelines, endpoints, runs, schedules and the OpenAPI document
app.register_functions(pipelines_bp)
app.register_functions(endpoints_bp)
app.register_functions(runs_bp)
app.register_functions(schedules_bp)  # schedules: the resource
app.register_functions(schedule_firing_bp)  # schedules: the planner timer and the firer
app.register_functions(schedule_watches_bp)  # schedules: datastore watches (blob trigger, poller)
app.register_functions(openapi_bp)
app.register_functions(studio_bp)  # the studio page and GET /api/me
app.register_functions(orchestrator_bp)  # runs pipelines: orchestrator and step worker
